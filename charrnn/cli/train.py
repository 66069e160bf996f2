"""`charrnn train`: options -> Request -> prepare (the plan; `--plan` prints
it and stops) -> the plan's start-up lines -> run -> a summary table.
Progress is drawn by TqdmReporter."""

from __future__ import annotations

import json
import shlex
import signal
import sys
import time
from dataclasses import fields
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table
from tqdm import tqdm

from .. import cells, rundir
from ..errors import CharRNNError
from ..model import ModelConfig
from ..terminal import safe_for_terminal
from ..training import distributed
from ..training import size as size_rule
from ..training.config import DEFAULT_MAX_STEPS, TrainConfig, field_name, parse_duration
from ..training.launch import Request, prepare
from ..training.loop import TrainResult, run
from ..training.memory import freed_memory_kept
from ..training.plan import Options, RunPlan, describe_plan
from .options import (CellKind, DEVICE_HELP, DeviceName, Documents, Precision, Size, SplitMode, console, default_lrs,
                      err, given_options, kinds_help)  # fmt: skip

# Option defaults come from the config dataclasses, so they cannot drift.
_T = TrainConfig()
_M = ModelConfig(cells.DEFAULT, vocab_size=1)


class TqdmReporter:
    """Draws training progress on stderr: a tqdm bar (only on a terminal)
    and one line per evaluation (always)."""

    def __init__(self) -> None:
        self.bar: tqdm | None = None
        self.val = float("nan")
        self.smooth_loss: float | None = None
        self.deadline: float | None = None

    def start(self, total_steps, start_step, info):
        limit = info.get("time_limit_s")
        self.deadline = time.monotonic() + limit if limit and total_steps is None else None
        self.bar = tqdm(
            total=total_steps, initial=start_step, unit="step", file=sys.stderr, disable=None, dynamic_ncols=True
        )

    def step(self, step, loss, chars_per_s):
        self.smooth_loss = loss if self.smooth_loss is None else 0.95 * self.smooth_loss + 0.05 * loss
        self.bar.update(1)
        if step % 10 == 0:
            postfix = f"loss {self.smooth_loss:.3f} val {self.val:.3f} {chars_per_s / 1000:.1f}k chars/s"
            if self.deadline is not None:  # a time-limited run: tqdm has no total to give an ETA from
                postfix += f" ETA {tqdm.format_interval(max(0.0, self.deadline - time.monotonic()))}"
            self.bar.set_postfix_str(postfix, refresh=False)

    def evaluated(self, entry):
        self.val = entry["val_loss"]
        line = (
            f"step {entry['step']:>6}  train {entry['train_loss']:.4f}  val {entry['val_loss']:.4f}"
            f" ({entry['val_bpc']:.3f} bpc)  lr {entry['lr']:.2e}  grad {entry['grad_norm']:.2f}"
            f" (max {entry['grad_norm_max']:.2f})  {(entry['chars_per_s'] or 0) / 1000:.1f}k chars/s"
        )
        tqdm.write(line, file=sys.stderr)
        if "advice" in entry:
            tqdm.write(f"note: {safe_for_terminal(entry['advice'])}", file=sys.stderr)
        if "sample" in entry:
            tqdm.write(f"--- sample at step {entry['step']} ---\n{safe_for_terminal(entry['sample'])}\n---", file=sys.stderr)

    def note(self, message):
        err.print(message)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _panel(name: str):
    def option(help: str, *decls: str, **kw):
        return typer.Option(*decls, help=help, rich_help_panel=name, **kw)

    return option


_model, _optim, _data, _run = _panel("Model"), _panel("Optimisation"), _panel("Data"), _panel("Length and output")
PRECISION_HELP = (
    "Training arithmetic: fp32, or bf16 / fp16 autocast (fp16 with a gradient scaler, CUDA only)."
    " auto is bf16 on a CPU with native bf16 (AVX512-BF16 or AMX), fp32 elsewhere."
)


def train(
    ctx: typer.Context,
    corpus: Annotated[
        Optional[Path],
        typer.Argument(
            help="A UTF-8 text file, a directory of them (read recursively in sorted order), or a directory"
            " `charrnn prepare` wrote (mapped, not decoded again)."
            " Default: the shipped corpora/shakespeare.txt (or, with --resume, the run's own corpus).",
            show_default=False,
        ),
    ] = None,
    model: Annotated[CellKind, _model(f"Cell type: {kinds_help()}.")] = CellKind(_M.kind),
    layers: Annotated[int, _model("Number of stacked recurrent layers.", min=1)] = _M.layers,
    hidden: Annotated[int, _model("Hidden units per layer.", min=1)] = _M.hidden,
    embedding: Annotated[int, _model("Size of the character embedding.", min=1)] = _M.embedding,
    dropout: Annotated[float, _model("Dropout between layers and before the head.", min=0.0, max=0.99)] = _M.dropout,
    weight_drop: Annotated[float, _model(
        "DropConnect on the recurrent weights (AWD-LSTM): each training window zeroes this fraction of W_hh's"
        " entries (scaling the rest up, as dropout does). Adds to what --size auto chose. Not for mingru and minlstm,"
        " which have no W_hh.", min=0.0, max=0.99)] = _M.weight_drop,  # fmt: skip
    embed_dropout: Annotated[float, _model(
        "Variational (locked) dropout on the character embedding: each training window zeroes this fraction of every"
        " stream's embedding features, the same ones at every step. Adds to what --size auto chose.",
        min=0.0, max=0.99)] = _M.embed_dropout,  # fmt: skip
    documents: Annotated[Documents, _model(
        "Read the corpus as documents, each line (lines) or each file (files) one: each starts from a fresh state"
        " and ends with a marker the model learns to predict, and sample, eval, score, inspect and export follow"
        " (docs/train.md).")] = Documents.none,  # fmt: skip
    size: Annotated[Size, _model(
        "Where no model option is given and the budget, corpus and machine match a measured recipe, auto takes the"
        " recipe's model and training settings (docs/train.md); else, where none of --layers, --hidden and --dropout is"
        f" given, it sizes the model from the corpus (an {cells.DEFAULT.upper()}: {size_rule.describe_rule()}; kinds"
        " not measured as fixed). fixed keeps the defaults shown. The start-up lines say what auto chose.")] = Size.auto,  # fmt: skip
    seq_len: Annotated[int, _optim("Characters per stream per step (truncated BPTT length).", min=1)] = _T.seq_len,
    batch_size: Annotated[int, _optim("Number of parallel contiguous streams.", min=1)] = _T.batch_size,
    lr: Annotated[
        Optional[float], _optim(f"Peak learning rate (AdamW). Default: {default_lrs()}.", min=0.0, show_default=False)
    ] = None,
    min_lr_frac: Annotated[float, _optim("Final learning rate, as a fraction of --lr.", min=0.0, max=1.0)] = _T.min_lr_frac,
    warmup_steps: Annotated[int, _optim("Linear learning-rate warm-up steps.", min=0)] = _T.warmup_steps,
    weight_decay: Annotated[float, _optim("AdamW weight decay (matrices only).", min=0.0)] = _T.weight_decay,
    grad_clip: Annotated[float, _optim("Clip the global gradient norm to this.", min=0.0)] = _T.grad_clip,
    beta2: Annotated[float, _optim(
        "AdamW's second-moment decay: lower adapts each weight's step size faster to recent gradients.",
        min=0.0, max=0.9999)] = _T.beta2,  # fmt: skip
    seed: Annotated[int, _optim("Random seed (initialisation and dropout).", min=0, max=2**63 - 1)] = _T.seed,
    val_frac: Annotated[Optional[float], _data(
        "Fraction of the corpus for validation (after train). Default: 0.05, or up to 0.1 to hold at least 8192"
        " characters.", show_default=False)] = None,  # fmt: skip
    test_frac: Annotated[float, _data("Fraction of the corpus held out for testing (the end).")] = _T.test_frac,
    split: Annotated[Optional[SplitMode], _data(
        "How val and test are cut from the corpus: contiguous (its end: a directory's last files alphabetically),"
        " blocks (the same sizes, interleaved through the corpus in up to 256 places) or files (whole files drawn by"
        " --seed, near the fractions' sizes). Default: files for a directory of 10 or more files where one is short"
        " enough for val, else contiguous.", show_default=False)] = None,  # fmt: skip
    encoding: Annotated[str, _data("Text encoding of the corpus files.")] = _T.encoding,
    max_steps: Annotated[
        Optional[int], _run(f"Stop after this many steps in all (default {DEFAULT_MAX_STEPS} if no other limit).", min=1)
    ] = None,
    epochs: Annotated[Optional[int], _run("Stop after this many epochs in all.", min=1)] = None,
    time_limit: Annotated[
        Optional[str], _run("Stop after this much time, e.g. 90s, 10m, 1h30m; the learning-rate schedule fits it.")
    ] = None,
    eval_every: Annotated[Optional[int], _run(
        "Evaluate and save every N steps. Default: once per epoch, at most 500 steps apart.",
        min=1, show_default=False)] = None,  # fmt: skip
    eval_chars: Annotated[Optional[int], _run(
        "Characters of the val split each evaluation scores: a fixed sample, spread over the split; the last"
        " evaluation scores them all. 0: the whole split every time. Default: the whole split, or a sixteenth of"
        " the characters trained between evaluations where that is less (about 5% of the time). Fixed for a run.", min=0,
        show_default=False)] = None,  # fmt: skip
    patience: Annotated[Optional[int], _run(
        "Stop after N evaluations without a new best val loss; 0 never stops early. Default: 5 for a run planned"
        " for 10 or more epochs (a small corpus), else 0.", min=0, show_default=False)] = None,  # fmt: skip
    sample_every: Annotated[
        Optional[int], _run("Print and log a 200-character sample every N steps (a multiple of --eval-every).", min=1)
    ] = None,
    out: Annotated[
        Optional[Path], _run("Run directory for checkpoints and metrics. Default: checkpoints/<corpus>-<model>.")
    ] = None,
    resume: Annotated[
        Optional[Path], _run("Continue a run exactly, from a checkpoint or a run directory (meaning its last).")
    ] = None,
    init_from: Annotated[
        Optional[Path], _run("Fine-tune: start a new run from a trained model's weights (a checkpoint, a run directory"
                             " meaning its best, or an export). Its shape is kept; the learning rate defaults lower.")
    ] = None,  # fmt: skip
    force: Annotated[bool, _run("Replace a run already in --out.", "--force")] = False,
    device: Annotated[DeviceName, _run(DEVICE_HELP)] = DeviceName.auto,
    precision: Annotated[Precision, _run(PRECISION_HELP)] = Precision(_T.precision),
    deterministic: Annotated[bool, _run(
        "Bit-for-bit repeatable on a busy machine: one CPU thread, PyTorch's deterministic algorithms, oneDNN's"
        " and cuDNN's deterministic modes. Slower (see docs/reliability.md).", "--deterministic/--no-deterministic")] = False,
    plan: Annotated[bool, _run(
        "Print the run's plan (the model, every setting settled, the device, the start) and exit, writing nothing.",
        "--plan")] = False,
    json_out: Annotated[bool, _run("With --plan: print the plan as JSON.", "--json")] = False,
) -> None:
    """Train a model on a corpus, saving `last` and `best` checkpoints."""
    if json_out and not plan:
        raise CharRNNError("--json prints the plan: give it with --plan")
    given = frozenset(field_name(name) for name in given_options(ctx) - {"plan", "json_out"})
    values = {field_name(name): getattr(v, "value", v) for name, v in ctx.params.items()}
    values["time_limit_s"] = parse_duration(time_limit) if time_limit is not None else None
    values["documents"] = "" if documents is Documents.none else documents.value
    if values["split"] is None:  # not given: the plan picks the corpus's default (training/defaults.py)
        del values["split"]
    options = Options(_from(TrainConfig, values), _from(ModelConfig, values | {"vocab_size": 1}), given, size.value)
    request = Request(options, corpus, out, force, resume, init_from)
    try:
        prepared = prepare(request)
        if plan:
            _show_plan(prepared.plan, json_out)
            return
        if distributed.is_main_process():
            for line in prepared.plan.lines():
                err.print(line)
        # Process-wide, for the run: every step reuses the last one's buffers (training/memory.py).
        with freed_memory_kept():
            result = run(prepared.plan, prepared.corpus, prepared.checkpoint, TqdmReporter())
    finally:
        distributed.teardown()
    if not result.is_main:
        return  # under torchrun, rank 0 reports for all
    _summary(result)
    if result.interrupted:
        raise typer.Exit(result.exit_code)


def _from(cls, values: dict):
    """A config dataclass from the options named as its fields: an option
    is its field's name (field_name maps the two that differ)."""
    return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})


def _show_plan(plan: RunPlan, as_json: bool) -> None:
    """The plan on stdout: a table, or JSON for scripts."""
    if as_json:
        print(json.dumps(plan.to_dict(), indent=2, ensure_ascii=False))
        return
    table = Table(title="run plan", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for name, value in describe_plan(plan):
        table.add_row(name, value)
    console.print(table)


def _summary(result: TrainResult) -> None:
    table = Table(title="training run", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    last = result.last_entry or {}
    rows = [
        ("run directory", str(result.out_dir)),
        ("stopped by", result.stop_reason.replace("_", " ") + (f" ({signal.Signals(result.signal).name})"
                                                               if result.interrupted else "")),
        ("steps", f"{result.step:,}"),
        ("parameters", f"{result.parameters:,}"),
        ("training time", f"{result.elapsed_s:,.1f} s"),
    ]
    if last:
        rows += [
            ("last train loss", f"{last['train_loss']:.4f} nats/char"),
            ("last val loss", f"{last['val_loss']:.4f} nats/char ({last['val_bpc']:.4f} bits/char)"
                              + (f" on {last['val_chars']:,} characters" if "val_chars" in last else "")),
            ("chars/s (last interval)", f"{last['chars_per_s'] or 0:,.0f}"),
        ]
    if last and "val_loss_full" in last:
        rows.append(("last val loss, whole split", f"{last['val_loss_full']:.4f} nats/char on"
                                                   f" {last['val_chars_full']:,} characters"))
    if result.best_val_loss is not None:
        rows.append(("best val loss", f"{result.best_val_loss:.4f} nats/char"))
    for k, v in rows:
        table.add_row(k, v)
    err.print(table)
    if (result.out_dir / rundir.BEST).exists():
        print(f"charrnn sample {shlex.quote(str(result.out_dir))}")
    if result.interrupted:
        err.print(f"interrupted; continue with: charrnn train --resume {shlex.quote(str(result.out_dir))}")
