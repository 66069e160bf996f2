"""`charrnn inspect`: checkpoint + text -> recording -> report -> terminal,
npz, LSTMVis, JSON or an HTML page. The rendering on the terminal is here;
everything else is the library's (charrnn/inspection/)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from rich.table import Table
from rich.text import Text

from .. import files
from ..errors import CharRNNError
from ..inspection import analysis, lstmvis, page
from ..inspection.features import parse_feature
from ..inspection.languages import FEATURE_SETS
from ..clamp import parse_unit
from ..inspection.record import Recording, select_layers, select_units
from ..api import load
from ..inspection.session import Inspection, Selection
from ..inspection.source import TextSource
from ..sample import SampleConfig
from ..terminal import safe_for_terminal
from .options import DeviceName, DeviceOpt, ForceOpt, NewestCheckpointArg, SeedOpt, TemperatureOpt, TopKOpt, TopPOpt
from .options import Dtype, Unknown, console, err, unknown_opt

UnknownTextOpt = unknown_opt("Characters of --text or --file")
AblateWith = Enum("AblateWith", {"zero": "zero", "mean": "mean"}, type=str)
FeatureSet = Enum("FeatureSet", {name: name for name in ("auto", *FEATURE_SETS)}, type=str)


@dataclass(frozen=True)
class Outputs:
    """What `inspect` was asked to write or show."""

    out: Path | None
    lstmvis: Path | None
    unit: str | None
    report: Path | None
    html: Path | None
    html_chars: int
    ablate: tuple[str, ...] = ()
    ablate_with: str = "zero"
    features: str = "auto"

    @property
    def wants_analysis(self) -> bool:  # for a report, a page, an ablation, or when nothing else was asked
        asked = self.report is not None or self.html is not None or bool(self.ablate)
        return asked or (self.out, self.unit, self.lstmvis) == (None,) * 3

    def check_replaceable(self, force: bool) -> None:
        for flag, path in (("--out", self.out), ("--report", self.report), ("--html", self.html)):
            if path is not None:
                files.check_replaceable(path, force, flag)
        if self.lstmvis is not None and self.lstmvis.is_dir() and any(self.lstmvis.iterdir()) and not force:
            raise CharRNNError(f"{self.lstmvis} is not empty: --force writes into it")


OLD_DTYPE_NAMES = {"float32": "fp32", "float16": "fp16"}  # what --dtype took before it named dtypes as export does


def _dtype(value: str) -> str:
    name = OLD_DTYPE_NAMES.get(value, value)
    if name not in Dtype.__members__:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(Dtype.__members__)}")
    return name


def inspect(
    checkpoint: NewestCheckpointArg = None,
    text: Annotated[Optional[str], typer.Option(help="Text to record.")] = None,
    file: Annotated[Optional[Path], typer.Option(help="Record this UTF-8 file.")] = None,
    generate_n: Annotated[
        Optional[int], typer.Option("--generate", help="Record N characters the model samples itself.", min=1)
    ] = None,
    prime: Annotated[str, typer.Option(help="With --generate: text read before sampling (recorded too).")] = "",
    temperature: TemperatureOpt = 1.0,
    top_k: TopKOpt = None,
    top_p: TopPOpt = None,
    seed: SeedOpt = None,
    layers: Annotated[Optional[str], typer.Option(help="Layers to record, e.g. 0,1 (default all).")] = None,
    units: Annotated[Optional[str], typer.Option(help="Units to record, e.g. 0-63,100 (default all).")] = None,
    max_chars: Annotated[int, typer.Option(help="Record at most this many characters.", min=1)] = 100_000,
    dtype: Annotated[Optional[str], typer.Option(
        help="Storage type of the recorded tensors: fp32 or fp16 (npz has no bf16; float32 and float16, the names"
        " inspect once took, still work). Default: fp32 when writing --out or --lstmvis, else fp16, which the"
        " analysis needs no more than and which halves the memory.", metavar="fp32|fp16",
        parser=_dtype, show_default=False)] = None,  # fmt: skip
    out: Annotated[Optional[Path], typer.Option(help="Write everything to this .npz (with a JSON manifest).")] = None,
    lstmvis: Annotated[
        Optional[Path], typer.Option(help="Write an LSTMVis project directory (needs h5py: charrnn[lstmvis]).")
    ] = None,
    unit: Annotated[
        Optional[str], typer.Option(help="Colour the text on the terminal by one unit, e.g. l1.c:42; or loss: each"
                                    " character by the probability the model gave it, and the least likely ones.")
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
    features: Annotated[FeatureSet, typer.Option(
        help="Which features the finder looks for: ones that know C's or Python's strings, comments and brackets,"
             " prose's quotes, or the generic ones; auto picks by the text.")] = FeatureSet.auto,  # fmt: skip
    ablate: Annotated[Optional[list[str]], typer.Option(
        help="Hold a unit (e.g. l1.h:42) at 0 over the text and report the rise in loss inside and outside each"
             " feature (repeatable).")] = None,  # fmt: skip
    ablate_with: Annotated[AblateWith, typer.Option(
        help="What an ablated unit is held at, here and in the finder's ablation column: zero, or its mean over"
             " the text.")] = AblateWith.zero,  # fmt: skip
    force: ForceOpt = False,
    unknown: UnknownTextOpt = Unknown.error,
    device: DeviceOpt = DeviceName.auto,
) -> None:
    """Record every unit on every character, find the interpretable ones, and show them.
    The sampling options apply to --generate."""
    outputs = Outputs(out, lstmvis, unit, report, html, html_chars, tuple(ablate or ()), ablate_with.value,
                      features.value)  # fmt: skip
    outputs.check_replaceable(force)
    extra = dict(parse_feature(spec) for spec in feature or [])
    sampling = SampleConfig(length=generate_n or 0, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
    source = TextSource(text, file, generate_n, prime, sampling, skip_unknown=unknown is Unknown.skip)
    stored = dtype or ("fp32" if out is not None or lstmvis is not None else "fp16")  # what is kept needs full precision
    selection = Selection(layers, units, stored, max_chars)
    model = load(checkpoint, device.value)
    _check_ablations(outputs, model.config, selection)  # a typo refused now, not after the recording
    with model.inspect(source, selection) as inspection:
        if inspection.skipped:
            err.print(f"note: left out {inspection.skipped:,} characters the model has never seen", markup=False)
        _write_outputs(inspection, outputs, extra, top)


def _check_ablations(o: Outputs, config, selection: Selection) -> None:
    for spec in o.ablate:
        unit = parse_unit(spec, config, "--ablate")
        recorded = unit.layer in select_layers(selection.layers, config.layers) and unit.index in select_units(
            selection.units, config.hidden)  # fmt: skip
        if o.ablate_with == "mean" and not recorded:
            raise CharRNNError(f"--ablate-with mean: {unit.name} is not recorded, so it has no mean (see --units, --layers)")


def _write_outputs(inspection: Inspection, o: Outputs, extra: dict, top: int) -> None:
    rec = inspection.recording
    if o.out is not None:
        rec.save_npz(o.out)
        err.print(f"wrote {o.out}: {len(rec.tensors)} tensors of {len(rec.text):,} characters")
    if o.lstmvis is not None:
        lstmvis.export(rec, o.lstmvis)
        err.print(f"wrote an LSTMVis project to {o.lstmvis}")
    if o.unit is not None:
        _show_surprise(rec) if o.unit == "loss" else _show_unit(rec, o.unit)
    if not o.wants_analysis:
        return
    result = inspection.report(extra, top, o.ablate, o.ablate_with, o.features)
    if o.report is not None:
        files.write_bytes_atomic(o.report, json.dumps(result.to_dict(), indent=1).encode())
        err.print(f"wrote {o.report}")
    if o.html is not None:
        files.write_bytes_atomic(o.html, page.render(rec, result.to_dict(), o.html_chars).encode())
        err.print(f"wrote {o.html}")
    if o.report is None and o.html is None:
        _print_report(result)
    elif result.ablations:
        _print_ablations(result.ablations)


def _print_report(result: analysis.Report) -> None:
    table = Table(title=f"units that track each feature ({result.feature_set} features; r on the held-out half;"
                        " control: random init)",
                  caption=f"ablated: the rise in loss (nats/char) with the unit held, where the feature is active /"
                          f" where not, on {result.ablated_chars:,} held-out characters")  # fmt: skip
    for col in ("feature", "tensor", "unit", "r", "r control", "ablated"):
        table.add_column(col, justify="left" if col in ("feature", "tensor") else "right")
    for name, rows in result.features.items():
        for i, row in enumerate(rows[:3]):
            table.add_row(name if i == 0 else "", row.tensor, str(row.unit), f"{row.r:+.2f}", f"{row.r_control:+.2f}",
                          _effect(row.ablation))  # fmt: skip
    console.print(table)
    if result.ablations:
        _print_ablations(result.ablations)
    if result.probes:
        probes = Table(title="sparse L1 probes (held-out accuracy; units with non-zero weight)")
        for col in ("feature", "accuracy", "majority baseline", "units", "strongest"):
            probes.add_column(col)
        for name, p in result.probes.items():
            strongest = ", ".join(f"{tensor}:{unit}" for tensor, unit, _ in p.units[:3])
            probes.add_row(name, f"{p.accuracy:.3f}", f"{p.baseline:.3f}", str(len(p.units)), strongest)
        console.print(probes)
    if result.gradient_flow:
        flow = Table(title="gradient flow: mean |d loss(t) / d h(t-k)|")
        lags = [k for k in (1, 2, 5, 10, 20, 50) if k <= len(next(iter(result.gradient_flow.values())))]
        flow.add_column("layer")
        for k in lags:
            flow.add_column(f"k={k}", justify="right")
        for name, norms in result.gradient_flow.items():
            flow.add_row(name, *(f"{norms[k - 1]:.2e}" for k in lags))
        console.print(flow)
    if result.saturation:
        sat = Table(title="gate saturation (fraction of time, mean over units)")
        for col in ("gate", "left (< 0.1)", "right (> 0.9)"):
            sat.add_column(col, justify="right")
        for name, s in result.saturation.items():
            sat.add_row(name, f"{s.left_mean:.3f}", f"{s.right_mean:.3f}")
        console.print(sat)


def _effect(effect) -> str:
    if effect is None:
        return "-"
    if effect.does_nothing:
        return "does nothing"
    return " / ".join("-" if v is None else f"{v:+.3f}" for v in (effect.inside, effect.outside))


def _print_ablations(ablations) -> None:
    for a in ablations:
        table = Table(title=f"{a.unit} held at {a.value:+.3f}: loss {a.loss:.4f} -> {a.ablated_loss:.4f} nats/char"
                            f" on {a.chars:,} characters")  # fmt: skip
        for col in ("feature", "rise where active", "rise where not"):
            table.add_column(col, justify="left" if col == "feature" else "right")
        for name, e in a.features.items():
            table.add_row(name, *("-" if v is None else f"{v:+.4f}" for v in (e.inside, e.outside)))
        console.print(table)


def _show_unit(rec: Recording, spec: str) -> None:
    """The text, each character's background coloured by one unit."""
    name, column = rec.unit(spec)
    values = rec.tensors[name][:, column].astype(np.float32)
    scale = float(np.abs(values).max()) or 1.0
    shown = Text()
    for ch, v in zip(rec.text, values):
        piece = ch if ch == "\n" else safe_for_terminal(ch)
        shown.append(piece, style=f"on {_diverging(v / scale)}" if ch != "\n" else None)
    legend = Text(f"{name}:{rec.units[name][column]}  ")
    for v in (-1.0, -0.5, 0.0, 0.5, 1.0):
        legend.append(f" {v * scale:+.2f} ", style=f"on {_diverging(v)}")
    console.print(legend)
    console.print(shown)
    contexts = analysis.top_contexts(rec, name, column)
    table = Table(title=f"where {spec} is highest and lowest")
    for col in ("", "value", "context (the character in brackets)"):
        table.add_column(col)
    for side in ("highest", "lowest"):
        for i, c in enumerate(contexts[side]):
            context = safe_for_terminal(f"{c['before']}[{c['char']}]{c['after']}".replace("\n", "\u21b5"))
            table.add_row(side if i == 0 else "", f"{c['value']:+.3f}", context)
    console.print(table)


def _show_surprise(rec: Recording) -> None:
    """The text, each character coloured by the probability the model gave
    it (red: it did not expect it; blue: it was sure), then the least
    likely characters with what the model expected there."""
    shown = Text(safe_for_terminal(rec.text[:1]))
    for ch, p in zip(rec.text[1:], rec.char_probs()[1:]):
        piece = ch if ch == "\n" else safe_for_terminal(ch)
        shown.append(piece, style=f"on {_diverging(1 - 2 * float(p))}" if ch != "\n" else None)
    legend = Text("probability the model gave each character  ")
    for p in (0.0, 0.25, 0.5, 0.75, 1.0):
        legend.append(f" {p:.2f} ", style=f"on {_diverging(1 - 2 * p)}")
    console.print(legend)
    console.print(shown)
    table = Table(title="the least likely characters")
    for col in ("probability", "context (the character in brackets)", "the model expected"):
        table.add_column(col)
    for row in analysis.surprises(rec):
        context = safe_for_terminal(f"{row['before'][-24:]}[{row['char']}]".replace("\n", "\u21b5"))
        expected = "  ".join(f"{_visible(c)} {q:.2f}" for c, q in row["guesses"])
        table.add_row(f"{row['prob']:.4f}", context, expected)
    console.print(table)


def _visible(ch: str) -> str:
    """A guessed character, seen even when it is a space or a newline."""
    return {" ": "\u2423", "\n": "\u21b5"}.get(ch) or safe_for_terminal(ch)


def _diverging(x: float) -> str:
    """-1 blue, 0 white, +1 red."""
    x = max(-1.0, min(1.0, x))
    fade = int(255 * (1 - abs(x)))
    return f"rgb({255},{fade},{fade})" if x >= 0 else f"rgb({fade},{fade},{255})"
