"""`charrnn train`: options -> TrainConfig and ModelConfig -> new_run or
resume_run -> a summary table. Progress is drawn by TqdmReporter."""

from __future__ import annotations

import shlex
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table
from tqdm import tqdm

from .. import cells, rundir
from ..data import shipped_corpus
from ..errors import CharRNNError
from ..model import ModelConfig
from ..terminal import safe_for_terminal
from ..training import distributed
from ..training.config import DEFAULT_MAX_STEPS, TrainConfig, parse_duration
from ..training.loop import TrainResult
from ..training.memory import keep_freed_memory
from ..training import size as size_rule
from ..training.runs import finetune_run, new_run, resume_run
from .options import CellKind, DEVICE_HELP, DeviceName, Precision, Size, default_lrs, err, given_options, kinds_help

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
        err.print(f"corpus: {info['corpus']} ({info['corpus_chars']:,} characters, {info['vocab_size']} distinct)")
        err.print(
            f"model: {info['parameters']:,} parameters on {info['device']} ({info['precision']});"
            f" {info['steps_per_epoch']:,} steps per epoch"
        )
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
            help="A UTF-8 text file, or a directory of them (read recursively in sorted order)."
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
    size: Annotated[Size, _model(
        "Where none of --layers, --hidden and --dropout is given, auto sizes the model from the corpus (an"
        f" {cells.DEFAULT.upper()}: {size_rule.describe_rule()}; kinds not measured as fixed); fixed keeps the defaults"
        " shown. The start-up line says what auto chose.")] = Size.auto,  # fmt: skip
    seq_len: Annotated[int, _optim("Characters per stream per step (truncated BPTT length).", min=1)] = _T.seq_len,
    batch_size: Annotated[int, _optim("Number of parallel contiguous streams.", min=1)] = _T.batch_size,
    lr: Annotated[
        Optional[float], _optim(f"Peak learning rate (AdamW). Default: {default_lrs()}.", min=0.0, show_default=False)
    ] = None,
    min_lr_frac: Annotated[float, _optim("Final learning rate, as a fraction of --lr.", min=0.0, max=1.0)] = _T.min_lr_frac,
    warmup_steps: Annotated[int, _optim("Linear learning-rate warm-up steps.", min=0)] = _T.warmup_steps,
    weight_decay: Annotated[float, _optim("AdamW weight decay (matrices only).", min=0.0)] = _T.weight_decay,
    grad_clip: Annotated[float, _optim("Clip the global gradient norm to this.", min=0.0)] = _T.grad_clip,
    seed: Annotated[int, _optim("Random seed (initialisation and dropout).", min=0, max=2**63 - 1)] = _T.seed,
    val_frac: Annotated[Optional[float], _data(
        "Fraction of the corpus for validation (after train). Default: 0.05, or up to 0.1 to hold at least 8192"
        " characters.", show_default=False)] = None,  # fmt: skip
    test_frac: Annotated[float, _data("Fraction of the corpus held out for testing (the end).")] = _T.test_frac,
    encoding: Annotated[str, _data("Text encoding of the corpus files.")] = _T.encoding,
    max_steps: Annotated[
        Optional[int], _run(f"Stop after this many steps in all (default {DEFAULT_MAX_STEPS} if no other limit).", min=1)
    ] = None,
    epochs: Annotated[Optional[int], _run("Stop after this many epochs in all.", min=1)] = None,
    time_limit: Annotated[
        Optional[str], _run("Stop after this much time, e.g. 90s, 10m, 1h30m; the learning-rate schedule fits it.")
    ] = None,
    eval_every: Annotated[Optional[int], _run(
        "Evaluate on the whole val split and save, every N steps. Default: once per epoch, at most 500 steps apart.",
        min=1, show_default=False)] = None,  # fmt: skip
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
        " and cuDNN's deterministic modes. Slower (see the README's Reliability section).", "--deterministic/--no-deterministic")] = False,
) -> None:
    """Train a model on a corpus, saving `last` and `best` checkpoints."""
    limit = parse_duration(time_limit) if time_limit is not None else None
    options = dict(
        seq_len=seq_len, batch_size=batch_size, lr=lr, min_lr_frac=min_lr_frac, warmup_steps=warmup_steps,
        weight_decay=weight_decay, grad_clip=grad_clip, max_steps=max_steps, epochs=epochs, time_limit_s=limit,
        eval_every=eval_every, sample_every=sample_every, val_frac=val_frac, test_frac=test_frac, seed=seed,
        device=device.value, encoding=encoding, precision=precision.value, deterministic=deterministic,
        patience=patience,
    )  # fmt: skip
    keep_freed_memory()  # process-wide: every step reuses the last one's buffers (training/memory.py)
    try:
        if resume is not None and init_from is not None:
            raise CharRNNError("--resume continues a run and --init-from starts a new one: give one of them")
        asked = given_options(ctx)
        _check_size(asked, size, resume, init_from)
        if resume is not None:
            given = asked - {"resume", "corpus"}
            as_field = {name: "time_limit_s" if name == "time_limit" else name for name in given}
            overrides = {as_field[name]: options.get(as_field[name]) for name in given}
            result = resume_run(resume, overrides, corpus, reporter=TqdmReporter())
        elif init_from is not None:
            values = {"kind": model.value, "layers": layers, "hidden": hidden, "embedding": embedding, "dropout": dropout,
                      "weight_drop": weight_drop, "embed_dropout": embed_dropout}  # fmt: skip
            given = {field: values[field] for field in values if ("model" if field == "kind" else field) in asked}
            result = finetune_run(corpus or shipped_corpus(), init_from, TrainConfig(**options), given, out, force,
                                  reporter=TqdmReporter())  # fmt: skip
        else:
            shape = ModelConfig(model.value, 1, embedding, hidden, layers, dropout, weight_drop, embed_dropout)  # vocab size comes with the corpus
            config = TrainConfig(**options)
            fit_size = size == Size.auto and not asked & SIZE_OPTIONS
            result = new_run(corpus or shipped_corpus(), config, shape, out, force, reporter=TqdmReporter(),
                             fit_size=fit_size)  # fmt: skip
    finally:
        distributed.teardown()
    if not result.is_main:
        return  # under torchrun, rank 0 reports for all
    _summary(result)
    if result.interrupted:
        raise typer.Exit(result.exit_code)


SIZE_OPTIONS = {"layers", "hidden", "dropout"}


def _check_size(given: set[str], size, resume: Path | None, init_from: Path | None) -> None:
    """--size only sizes a new model, and an explicit auto is not half-ignored."""
    if "size" in given and (resume is not None or init_from is not None):
        raise CharRNNError(f"--size sizes a new model; {'--resume' if resume else '--init-from'} keeps its model's")
    if "size" in given and size == Size.auto and given & SIZE_OPTIONS:
        named = ", ".join(f"--{name}" for name in sorted(given & SIZE_OPTIONS))
        raise CharRNNError(f"--size auto sizes the model itself: drop {named}, or --size auto")


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
            ("last val loss", f"{last['val_loss']:.4f} nats/char ({last['val_bpc']:.4f} bits/char)"),
            ("chars/s (last interval)", f"{last['chars_per_s'] or 0:,.0f}"),
        ]
    if result.best_val_loss is not None:
        rows.append(("best val loss", f"{result.best_val_loss:.4f} nats/char"))
    for k, v in rows:
        table.add_row(k, v)
    err.print(table)
    if (result.out_dir / rundir.BEST).exists():
        print(f"charrnn sample {shlex.quote(str(result.out_dir))}")
    if result.interrupted:
        err.print(f"interrupted; continue with: charrnn train --resume {shlex.quote(str(result.out_dir))}")
