"""`charrnn inspect`: record every unit, find the interpretable ones, show
them. The command's thin layer over activations.py, analysis.py, html.py
and lstmvis.py; registered on the app in cli.py."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import torch
import typer
from rich.table import Table

from . import activations, analysis
from . import checkpoint as ckpt
from .cli import DeviceName, DeviceOpt, _newest_run, app, console, err
from .errors import CharRNNError
from .model import CharRNN, split_name
from .sample import SampleConfig, generate
from .terminal import safe_for_terminal
from .train import resolve_device

SPILL_BYTES = 1 << 29  # recordings larger than this (512 MiB) stream to disk


class Dtype(str, Enum):
    float32 = "float32"
    float16 = "float16"


@app.command("inspect")
def inspect_cmd(
    checkpoint: Annotated[
        Optional[Path], typer.Argument(help="A checkpoint file or run directory. Default: the newest run.")
    ] = None,
    text: Annotated[Optional[str], typer.Option(help="Text to record.")] = None,
    file: Annotated[Optional[Path], typer.Option(help="Record this UTF-8 file.")] = None,
    generate_n: Annotated[
        Optional[int], typer.Option("--generate", help="Record N characters the model samples itself.", min=1)
    ] = None,
    prime: Annotated[str, typer.Option(help="With --generate: text read before sampling (recorded too).")] = "",
    temperature: Annotated[float, typer.Option(help="With --generate: sampling temperature.")] = 1.0,
    top_k: Annotated[Optional[int], typer.Option(help="With --generate: sample among the k most likely.")] = None,
    top_p: Annotated[Optional[float], typer.Option(help="With --generate: nucleus sampling.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="With --generate: random seed.")] = None,
    layers: Annotated[Optional[str], typer.Option(help="Layers to record, e.g. 0,1 (default all).")] = None,
    units: Annotated[Optional[str], typer.Option(help="Units to record, e.g. 0-63,100 (default all).")] = None,
    max_chars: Annotated[int, typer.Option(help="Record at most this many characters.", min=1)] = 100_000,
    dtype: Annotated[Dtype, typer.Option(help="Storage type of the recorded tensors.")] = Dtype.float32,
    out: Annotated[Optional[Path], typer.Option(help="Write everything to this .npz (with a JSON manifest).")] = None,
    lstmvis: Annotated[
        Optional[Path], typer.Option(help="Write an LSTMVis project directory (needs h5py: charrnn[lstmvis]).")
    ] = None,
    unit: Annotated[
        Optional[str], typer.Option(help="Colour the text by one unit, e.g. l1.c:42 (shown on the terminal).")
    ] = None,
    report: Annotated[Optional[Path], typer.Option(help="Write the analysis as JSON to this file.")] = None,
    html: Annotated[
        Optional[Path], typer.Option(help="Write one self-contained HTML page: text coloured by a chosen unit, analysis.")
    ] = None,
    html_chars: Annotated[int, typer.Option(help="Characters shown on the HTML page.", min=1)] = 3000,
    feature: Annotated[
        Optional[list[str]], typer.Option(help="Extra feature NAME=REGEX, active inside matches (repeatable).")
    ] = None,
    top: Annotated[int, typer.Option(help="Units reported per feature.", min=1)] = 5,
    force: Annotated[bool, typer.Option("--force", help="Let --out and --report replace existing files.")] = False,
    device: DeviceOpt = DeviceName.auto,
) -> None:
    """Record every unit on every character, find the interpretable ones, and show them."""
    for path in (out, report, html):
        if path is not None and path.exists() and not force:
            raise CharRNNError(f"{path} exists: --force replaces it")
    if lstmvis is not None and lstmvis.is_dir() and any(lstmvis.iterdir()) and not force:
        raise CharRNNError(f"{lstmvis} is not empty: --force writes into it")
    extra = dict(analysis.parse_feature(spec) for spec in feature or [])
    state = ckpt.load_checkpoint(checkpoint if checkpoint is not None else _newest_run())
    sampling = SampleConfig(length=generate_n or 0, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
    body = _inspect_text(state, text, file, generate_n, prime, sampling, device)[:max_chars]
    model = state.model.cpu()
    chosen_layers = activations.select_layers(layers, state.config.layers)
    chosen_units = activations.select_units(units, state.config.hidden)
    size = len(body) * len(chosen_units) * len(chosen_layers) * 6 * np.dtype(dtype.value).itemsize
    with tempfile.TemporaryDirectory(prefix="charrnn-inspect-") as spill:
        # Past SPILL_BYTES the tensors stream to disk instead of memory.
        spill_dir = Path(spill) if size > SPILL_BYTES else None
        record = activations.record(
            model, state.vocab, body, chosen_layers, chosen_units, np.dtype(dtype.value), spill=spill_dir
        )
        outputs = _Outputs(out, lstmvis, unit, report, html, html_chars)
        _inspect_outputs(record, state, outputs, extra, top)


@dataclass(frozen=True)
class _Outputs:
    """What `inspect` was asked to write or show."""

    out: Path | None
    lstmvis: Path | None
    unit: str | None
    report: Path | None
    html: Path | None
    html_chars: int

    @property
    def analysis(self) -> bool:  # the analysis runs for a report, a page, or when nothing else was asked
        return self.report is not None or self.html is not None or (self.out, self.unit, self.lstmvis) == (None,) * 3


def _inspect_outputs(record, state, o: _Outputs, extra: dict, top: int) -> None:
    out, lstmvis, unit, report, html = o.out, o.lstmvis, o.unit, o.report, o.html
    if out is not None:
        record.save_npz(out)
        err.print(f"wrote {out}: {len(record.tensors)} tensors of {len(record.text):,} characters")
    if lstmvis is not None:
        from . import lstmvis as lstmvis_export

        lstmvis_export.export(record, lstmvis)
        err.print(f"wrote an LSTMVis project to {lstmvis}")
    if unit is not None:
        _show_unit(record, unit)
    if o.analysis:
        layers = sorted({split_name(name)[0] for name in record.tensors})
        units = next(iter(record.units.values()))
        dtype = next(iter(record.tensors.values())).dtype
        result = _analyse(record, state.model, state, extra, top, layers, units, dtype)
        if report is not None:
            ckpt.write_bytes_atomic(report, json.dumps(result, indent=1).encode())
            err.print(f"wrote {report}")
        if html is not None:
            from . import html as html_page

            ckpt.write_bytes_atomic(html, html_page.render(record, result, o.html_chars).encode())
            err.print(f"wrote {html}")
        if report is None and html is None:
            _print_analysis(result)


def _inspect_text(state, text, file, generate_n, prime, sampling: SampleConfig, device) -> str:
    given = [x is not None for x in (text, file, generate_n)]
    if sum(given) != 1:
        raise CharRNNError("give exactly one of --text, --file or --generate")
    if text is not None:
        return text
    if file is not None:
        try:
            return file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise CharRNNError(f"cannot read --file {file}: {e}") from None
    model = state.model.to(resolve_device(device.value))
    return prime + "".join(chars[0] for chars in generate(model, state.vocab, prime, sampling))


def _analyse(record, model, state, extra, top, layers, units, dtype) -> dict:
    torch.manual_seed(0)
    control_model = CharRNN(state.config)  # same architecture, random initialisation
    control = activations.record(control_model, state.vocab, record.text, layers, units, dtype)
    features = {name: f(record.text) for name, f in {**analysis.BUILTIN_FEATURES, **extra}.items()}
    found = analysis.find_units(record, control, features, top)
    binary = [name for name, f in features.items() if set(np.unique(f)) <= {0.0, 1.0} and 0 < f.mean() < 1]
    horizon = min(50, len(record.text) - 2)
    return {
        "chars": len(record.text),
        "loss": float(np.nanmean(record.loss)) if len(record.text) > 1 else None,
        "features": {name: [f.to_dict() for f in rows] for name, rows in found.items()},
        "probes": {name: analysis.l1_probe(record, features[name]).to_dict() for name in binary},
        "contexts": {
            f"{row.tensor}:{row.unit}": analysis.top_contexts(record, row.tensor, list(record.units[row.tensor]).index(row.unit))
            for rows in found.values()
            for row in rows[:1]
        },
        "saturation": analysis.saturation(record),
        "gradient_flow": analysis.gradient_flow(model, state.vocab, record.text, horizon) if horizon >= 1 else {},
    }


def _print_analysis(result: dict) -> None:
    table = Table(title="units that track each feature (r on the held-out half; control: random init)")
    for col in ("feature", "tensor", "unit", "r", "r control"):
        table.add_column(col, justify="right" if col in ("unit", "r", "r control") else "left")
    for name, rows in result["features"].items():
        for i, row in enumerate(rows[:3]):
            table.add_row(name if i == 0 else "", row["tensor"], str(row["unit"]), f"{row['r']:+.2f}", f"{row['r_control']:+.2f}")
    console.print(table)
    if result["probes"]:
        probes = Table(title="sparse L1 probes (held-out accuracy; units with non-zero weight)")
        for col in ("feature", "accuracy", "majority baseline", "units", "strongest"):
            probes.add_column(col)
        for name, p in result["probes"].items():
            strongest = ", ".join(f"{u['tensor']}:{u['unit']}" for u in p["units"][:3])
            probes.add_row(name, f"{p['accuracy']:.3f}", f"{p['baseline']:.3f}", str(len(p["units"])), strongest)
        console.print(probes)
    if result["gradient_flow"]:
        flow = Table(title="gradient flow: mean |d loss(t) / d h(t-k)|")
        lags = [k for k in (1, 2, 5, 10, 20, 50) if k <= len(next(iter(result["gradient_flow"].values())))]
        flow.add_column("layer")
        for k in lags:
            flow.add_column(f"k={k}", justify="right")
        for name, norms in result["gradient_flow"].items():
            flow.add_row(name, *(f"{norms[k - 1]:.2e}" for k in lags))
        console.print(flow)
    if result["saturation"]:
        sat = Table(title="gate saturation (fraction of time, mean over units)")
        for col in ("gate", "left (< 0.1)", "right (> 0.9)"):
            sat.add_column(col, justify="right")
        for name, s in result["saturation"].items():
            sat.add_row(name, f"{s['left_mean']:.3f}", f"{s['right_mean']:.3f}")
        console.print(sat)


def _show_unit(record, spec: str) -> None:
    """The text, each character's background coloured by one unit."""
    from rich.text import Text

    name, _, index = spec.partition(":")
    if name not in record.tensors or not index.isdigit():
        raise CharRNNError(f"--unit must be TENSOR:UNIT with TENSOR one of {', '.join(record.tensors)}, not {spec!r}")
    columns = list(record.units[name])
    if int(index) not in columns:
        raise CharRNNError(f"unit {index} of {name} was not recorded")
    values = record.tensors[name][:, columns.index(int(index))].astype(np.float32)
    scale = float(np.abs(values).max()) or 1.0
    shown = Text()
    for ch, v in zip(record.text, values):
        piece = ch if ch == "\n" else safe_for_terminal(ch)
        shown.append(piece, style=f"on {_diverging(v / scale)}" if ch != "\n" else None)
    legend = Text(f"{name}:{index}  ")
    for v in (-1.0, -0.5, 0.0, 0.5, 1.0):
        legend.append(f" {v * scale:+.2f} ", style=f"on {_diverging(v)}")
    console.print(legend)
    console.print(shown)
    contexts = analysis.top_contexts(record, name, columns.index(int(index)))
    table = Table(title=f"where {spec} is highest and lowest")
    for col in ("", "value", "context (the character in brackets)"):
        table.add_column(col)
    for kind in ("highest", "lowest"):
        for i, c in enumerate(contexts[kind]):
            context = safe_for_terminal(f"{c['before']}[{c['char']}]{c['after']}".replace("\n", "\u21b5"))
            table.add_row(kind if i == 0 else "", f"{c['value']:+.3f}", context)
    console.print(table)


def _diverging(x: float) -> str:
    """-1 blue, 0 white, +1 red."""
    x = max(-1.0, min(1.0, x))
    fade = int(255 * (1 - abs(x)))
    return f"rgb({255},{fade},{fade})" if x >= 0 else f"rgb({fade},{fade},{255})"
