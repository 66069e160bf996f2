"""The `charrnn` command line: parses options into config dataclasses, calls
the library, and renders results. No tensor math here.

Bad input never shows a traceback: library errors (`CharRNNError`) and
usage errors both end as one line on stderr with exit code 1.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
import traceback
from dataclasses import replace
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from rich.console import Console
from rich.table import Table
from tqdm import tqdm
from typer.core import TyperGroup

from . import checkpoint as ckpt
from . import distributed
from .data import describe_chars, load_corpus, split_corpus
from .errors import CharRNNError
from .evaluate import score
from .model import CellKind, ModelConfig
from .sample import SampleConfig, generate
from .terminal import safe_for_terminal
from .train import DEFAULT_LR, DEFAULT_MAX_STEPS, RESUMABLE_OVERRIDES, TrainConfig, format_lr, parse_duration, prepare_out_dir, resolve_device, resume_config, train

DEFAULT_CORPUS = Path(__file__).resolve().parent.parent / "corpora" / "shakespeare.txt"
CHECKPOINTS = Path("checkpoints")

# markup=False everywhere: paths, corpus and model text are data, never markup.
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)
console = Console(highlight=False, markup=False)

# Option defaults come from the config dataclasses, so they cannot drift.
_T = TrainConfig()
_M = ModelConfig(CellKind.lstm, vocab_size=1)


def _default_lrs() -> str:
    """'8e-3 for lstm, 2e-3 for gru and rnn': the per-kind defaults, grouped."""
    kinds: dict[float, list[str]] = {}
    for kind, lr in DEFAULT_LR.items():
        kinds.setdefault(lr, []).append(kind.value)
    return ", ".join(f"{format_lr(lr)} for {' and '.join(ks)}" for lr, ks in kinds.items())


class _OneLineErrors(TyperGroup):
    """Runs commands without click's standalone handling, so that every kind
    of bad input ends the same way: `error: ...` on one line, exit 1."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except CharRNNError as e:
            _fail(str(e))
        except typer.TyperException as e:  # usage errors: bad option value, unknown option
            _fail(e.format_message() if hasattr(e, "format_message") else str(e))
        except typer.Abort:
            _fail("aborted")
        except OSError as e:  # a disk or permission problem while writing
            _fail(f"{e.strerror or e}: {e.filename}" if e.filename else str(e))
        sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str) -> None:
    # print, not rich: the message may hold user text that must not be markup
    print(f"error: {safe_for_terminal(message)}", file=sys.stderr)
    sys.exit(1)


app = typer.Typer(
    cls=_OneLineErrors,
    help="Train, sample and inspect character-level RNN, GRU and LSTM language models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class DeviceName(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


class Precision(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


class Unknown(str, Enum):
    error = "error"
    skip = "skip"


# Parameters shared by several commands, declared once.
DEVICE_HELP = "Where to run: auto picks cuda, then mps, then cpu."
PRECISION_HELP = (
    "Training arithmetic: fp32, or bf16 / fp16 autocast (fp16 with a gradient scaler, CUDA only)."
    " auto is bf16 on a CPU with native bf16 (AVX512-BF16 or AMX), fp32 elsewhere."
)
DeviceOpt = Annotated[DeviceName, typer.Option(help=DEVICE_HELP)]
CheckpointArg = Annotated[
    Path, typer.Argument(help="A checkpoint file, or a run directory (meaning its best checkpoint).")
]
EncodingOpt = Annotated[str, typer.Option(help="Text encoding of the text file.")]


def main() -> None:
    # Under torchrun, every ending goes through exit_without_shutdown (see there).
    try:
        app()
    except SystemExit as e:
        if distributed.joined():
            distributed.exit_without_shutdown(e.code)
        raise
    except BaseException as e:  # a crash, or a second Ctrl-C
        if distributed.joined():
            if isinstance(e, KeyboardInterrupt):
                distributed.exit_without_shutdown(130)
            traceback.print_exc()
            distributed.exit_without_shutdown(1)
        raise


# --------------------------------------------------------------------------
# train


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

    def evaluated(self, record):
        self.val = record["val_loss"]
        line = (
            f"step {record['step']:>6}  train {record['train_loss']:.4f}  val {record['val_loss']:.4f}"
            f" ({record['val_bpc']:.3f} bpc)  lr {record['lr']:.2e}  grad {record['grad_norm']:.2f}"
            f" (max {record['grad_norm_max']:.2f})  {(record['chars_per_s'] or 0) / 1000:.1f}k chars/s"
        )
        tqdm.write(line, file=sys.stderr)
        if "advice" in record:
            tqdm.write(f"note: {safe_for_terminal(record['advice'])}", file=sys.stderr)
        if "sample" in record:
            tqdm.write(f"--- sample at step {record['step']} ---\n{safe_for_terminal(record['sample'])}\n---", file=sys.stderr)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _panel(name: str):
    def option(help: str, *decls: str, **kw):
        return typer.Option(*decls, help=help, rich_help_panel=name, **kw)

    return option


_model, _optim, _data, _run = _panel("Model"), _panel("Optimisation"), _panel("Data"), _panel("Length and output")


def _explicit(ctx: typer.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


@app.command("train")
def train_cmd(
    ctx: typer.Context,
    corpus: Annotated[
        Optional[Path],
        typer.Argument(
            help="A UTF-8 text file, or a directory of them (read recursively in sorted order)."
            " Default: the shipped corpora/shakespeare.txt (or, with --resume, the run's own corpus).",
            show_default=False,
        ),
    ] = None,
    model: Annotated[CellKind, _model("Cell type: rnn (Elman, tanh), gru or lstm.")] = _M.kind,
    layers: Annotated[int, _model("Number of stacked recurrent layers.", min=1)] = _M.layers,
    hidden: Annotated[int, _model("Hidden units per layer.", min=1)] = _M.hidden,
    embedding: Annotated[int, _model("Size of the character embedding.", min=1)] = _M.embedding,
    dropout: Annotated[float, _model("Dropout between layers and before the head.", min=0.0, max=0.99)] = _M.dropout,
    seq_len: Annotated[int, _optim("Characters per stream per step (truncated BPTT length).", min=1)] = _T.seq_len,
    batch_size: Annotated[int, _optim("Number of parallel contiguous streams.", min=1)] = _T.batch_size,
    lr: Annotated[
        Optional[float], _optim(f"Peak learning rate (AdamW). Default: {_default_lrs()}.", min=0.0, show_default=False)
    ] = None,
    min_lr_frac: Annotated[float, _optim("Final learning rate, as a fraction of --lr.", min=0.0, max=1.0)] = _T.min_lr_frac,
    warmup_steps: Annotated[int, _optim("Linear learning-rate warm-up steps.", min=0)] = _T.warmup_steps,
    weight_decay: Annotated[float, _optim("AdamW weight decay (matrices only).", min=0.0)] = _T.weight_decay,
    grad_clip: Annotated[float, _optim("Clip the global gradient norm to this.", min=0.0)] = _T.grad_clip,
    seed: Annotated[int, _optim("Random seed (initialisation and dropout).", min=0, max=2**63 - 1)] = _T.seed,
    val_frac: Annotated[float, _data("Fraction of the corpus for validation (after train).")] = _T.val_frac,
    test_frac: Annotated[float, _data("Fraction of the corpus held out for testing (the end).")] = _T.test_frac,
    encoding: Annotated[str, _data("Text encoding of the corpus files.")] = _T.encoding,
    max_steps: Annotated[
        Optional[int], _run(f"Stop after this many steps in all (default {DEFAULT_MAX_STEPS} if no other limit).", min=1)
    ] = None,
    epochs: Annotated[Optional[int], _run("Stop after this many epochs in all.", min=1)] = None,
    time_limit: Annotated[
        Optional[str], _run("Stop after this much time, e.g. 90s, 10m, 1h30m; the learning-rate schedule fits it.")
    ] = None,
    eval_every: Annotated[int, _run("Evaluate on the whole val split and save, every N steps.", min=1)] = _T.eval_every,
    sample_every: Annotated[
        Optional[int], _run("Print and log a 200-character sample every N steps (a multiple of --eval-every).", min=1)
    ] = None,
    out: Annotated[
        Optional[Path], _run("Run directory for checkpoints and metrics. Default: checkpoints/<corpus>-<model>.")
    ] = None,
    resume: Annotated[
        Optional[Path], _run("Continue a run exactly, from a checkpoint or a run directory (meaning its last).")
    ] = None,
    force: Annotated[bool, _run("Replace a run already in --out.", "--force")] = False,
    device: Annotated[DeviceName, _run(DEVICE_HELP)] = DeviceName.auto,
    precision: Annotated[Precision, _run(PRECISION_HELP)] = Precision(_T.precision),
) -> None:
    """Train a model on a corpus, saving `last` and `best` checkpoints."""
    limit = parse_duration(time_limit) if time_limit is not None else None
    options = dict(
        seq_len=seq_len, batch_size=batch_size, lr=lr, min_lr_frac=min_lr_frac, warmup_steps=warmup_steps,
        weight_decay=weight_decay, grad_clip=grad_clip, max_steps=max_steps, epochs=epochs, time_limit_s=limit,
        eval_every=eval_every, sample_every=sample_every, val_frac=val_frac, test_frac=test_frac, seed=seed, device=device.value,
        encoding=encoding, precision=precision.value,
    )  # fmt: skip
    try:
        if resume is not None:
            result = _resume(ctx, resume, corpus, options)
        else:
            shape = ModelConfig(model, 1, embedding, hidden, layers, dropout)  # vocab size comes with the corpus
            result = _new_run(corpus, out, force, TrainConfig(**options), shape)
    finally:
        distributed.teardown()
    if not result.is_main:
        return  # under torchrun, rank 0 reports for all
    _summary(result)
    if result.interrupted:
        raise typer.Exit(130)


def _new_run(corpus: Path | None, out: Path | None, force: bool, config: TrainConfig, shape: ModelConfig):
    corpus_path = corpus if corpus is not None else _default_corpus()
    data = load_corpus(corpus_path, config.encoding)
    out_dir = prepare_out_dir(out, CHECKPOINTS / f"{corpus_path.stem or 'corpus'}-{shape.kind.value}", force)
    mconf = replace(shape, vocab_size=data.vocab.size)
    return train(data, config, out_dir, model_config=mconf, reporter=TqdmReporter())


def _default_corpus() -> Path:
    if not DEFAULT_CORPUS.is_file():
        raise CharRNNError(
            f"the shipped corpus {DEFAULT_CORPUS} is not in this installation"
            " (it comes with a source checkout: pip install -e .); give a corpus path"
        )
    return DEFAULT_CORPUS


def _resume(ctx: typer.Context, path: Path, corpus: Path | None, options: dict):
    """Continue a run. Only the options that say how long and where to run
    (RESUMABLE_OVERRIDES) may be given; the checkpoint fixes the rest."""
    given = {name for name in ctx.params if _explicit(ctx, name)} - {"resume", "corpus"}
    as_field = {name: "time_limit_s" if name == "time_limit" else name for name in given}
    fixed = sorted(f"--{n.replace('_', '-')}" for n in given if as_field[n] not in RESUMABLE_OVERRIDES)
    if fixed:
        raise CharRNNError(f"{', '.join(fixed)} cannot change when resuming: the run fixes them")
    state = ckpt.load_checkpoint(path, prefer=_resume_target(path))
    if state.run is None:
        raise CharRNNError(f"{state.path} holds weights only, no training state to resume")
    _refuse_rewinding(state)
    # The device is where to run now, not where the run began: auto unless given.
    overrides = {"device": "auto"} | {as_field[n]: options[as_field[n]] for n in given}
    try:
        config = resume_config(state.run.train_config, overrides)
    except TypeError as e:
        raise CharRNNError(f"{state.path} holds an unreadable train config: {e}") from None
    corpus_path = corpus if corpus is not None else Path(state.run.corpus.get("path", ""))
    data = load_corpus(corpus_path, config.encoding)
    added, removed = state.vocab.diff(data.vocab)
    if added or removed:
        raise CharRNNError(
            f"corpus {corpus_path} has a different character set from the run's:"
            f" added {describe_chars(added) or 'none'}; removed {describe_chars(removed) or 'none'}"
        )
    if distributed.is_main_process():
        err.print(f"resuming {state.path} at step {state.run.step:,}")
        if data.info.sha256 != state.run.corpus.get("sha256"):
            err.print(f"note: {corpus_path} is not the text the run began on; training goes on with it")
    return train(data, config, state.path.parent, resume=state, reporter=TqdmReporter())


def _resume_target(path: Path) -> str:
    """A run directory resumes from its last checkpoint, or from best if a
    kill during the very first save left no last."""
    only_best = path.is_dir() and not (path / ckpt.LAST).exists() and (path / ckpt.BEST).exists()
    return ckpt.BEST if only_best else ckpt.LAST


def _refuse_rewinding(state: ckpt.Checkpoint) -> None:
    """Resuming an older checkpoint of a run would replace its newer last."""
    last = state.path.parent / ckpt.LAST
    if state.path.name == ckpt.LAST or not last.exists():
        return
    newer = ckpt.load_checkpoint(last).run
    if newer is not None and newer.step > state.run.step:
        raise CharRNNError(
            f"{last} is newer (step {newer.step:,}) than {state.path} (step {state.run.step:,}):"
            f" resuming would replace it; copy {state.path.name} into a new directory to branch from it"
        )


def _summary(result) -> None:
    table = Table(title="training run", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    rec = result.last_record or {}
    rows = [
        ("run directory", str(result.out_dir)),
        ("stopped by", result.stop_reason.replace("_", " ")),
        ("steps", f"{result.step:,}"),
        ("parameters", f"{result.parameters:,}"),
        ("training time", f"{result.elapsed_s:,.1f} s"),
    ]
    if rec:
        rows += [
            ("last train loss", f"{rec['train_loss']:.4f} nats/char"),
            ("last val loss", f"{rec['val_loss']:.4f} nats/char ({rec['val_bpc']:.4f} bits/char)"),
            ("chars/s (last interval)", f"{rec['chars_per_s'] or 0:,.0f}"),
        ]
    if result.best_val_loss is not None:
        rows.append(("best val loss", f"{result.best_val_loss:.4f} nats/char"))
    for k, v in rows:
        table.add_row(k, v)
    err.print(table)
    if (result.out_dir / ckpt.BEST).exists():
        print(f"charrnn sample {shlex.quote(str(result.out_dir))}")
    if result.interrupted:
        err.print(f"interrupted; continue with: charrnn train --resume {shlex.quote(str(result.out_dir))}")


# --------------------------------------------------------------------------
# eval


@app.command("eval")
def eval_cmd(
    checkpoint: CheckpointArg,
    text_file: Annotated[
        Optional[Path],
        typer.Argument(help="Text to score. Default: the checkpoint's own test split, if its corpus is at hand."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object with full-precision floats.")] = False,
    device: DeviceOpt = DeviceName.auto,
    encoding: EncodingOpt = "utf-8",
) -> None:
    """Score a model on a text: loss (nats/char), bits per char, perplexity."""
    state = ckpt.load_checkpoint(checkpoint)
    ids, source = _eval_text(state, text_file, encoding)
    model = state.model.to(resolve_device(device.value))
    result = score(model, ids)
    if result.chars == 0:
        raise CharRNNError(f"{source} is too short to score: it needs at least 2 characters")
    if as_json:
        print(json.dumps(result.to_dict()))
        return
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for name, value in [
        ("model", str(state.path)),
        ("text", source),
        ("loss", f"{result.loss:.4f} nats/char"),
        ("bits per char", f"{result.bpc:.4f}"),
        ("perplexity", f"{result.perplexity:.4f}"),
        ("characters", f"{result.chars:,}"),
    ]:
        table.add_row(name, value)
    console.print(table)


def _eval_text(state: ckpt.Checkpoint, text_file: Path | None, encoding: str):
    if text_file is not None:
        data = load_corpus(text_file, encoding)
        unknown = sorted(set(data.vocab.chars) - set(state.vocab.chars))
        if unknown:
            raise CharRNNError(f"{text_file} holds characters the model has never seen: {describe_chars(unknown)}")
        # Re-map the file's own ids to the model's vocab.
        index = {c: i for i, c in enumerate(state.vocab.chars)}
        lut = np.asarray([index[c] for c in data.vocab.chars], dtype=state.vocab.dtype)
        return lut[data.ids], str(text_file)
    run = state.run
    if run is None:
        raise CharRNNError("this checkpoint records no corpus: give a text file to score")
    corpus_path = Path(run.corpus["path"])
    if not corpus_path.exists():
        raise CharRNNError(f"the run's corpus {corpus_path} is not at hand: give a text file to score")
    data = load_corpus(corpus_path, run.corpus.get("encoding", encoding))
    if data.info.sha256 != run.corpus["sha256"]:
        raise CharRNNError(f"{corpus_path} has changed since training: give a text file to score")
    cfg = run.train_config
    splits = split_corpus(data.ids, cfg["val_frac"], cfg["test_frac"])
    if len(splits.test) < 2:
        raise CharRNNError("the run has no test split (--test-frac 0): give a text file to score")
    return splits.test, f"the test split of {corpus_path}"


# --------------------------------------------------------------------------
# sample


@app.command("sample")
def sample_cmd(
    checkpoint: Annotated[
        Optional[Path],
        typer.Argument(help="A checkpoint file or run directory. Default: the newest run under checkpoints/."),
    ] = None,
    prime: Annotated[str, typer.Option(help="Text the model reads before generating.")] = "",
    prime_file: Annotated[Optional[Path], typer.Option(help="Read the prime text from this file.")] = None,
    length: Annotated[int, typer.Option(help="Characters to generate per sample.")] = 500,
    temperature: Annotated[float, typer.Option(help="Softmax temperature; 0 means argmax.")] = 1.0,
    top_k: Annotated[Optional[int], typer.Option(help="Sample only among the k most likely characters.")] = None,
    top_p: Annotated[Optional[float], typer.Option(help="Sample only among the most likely characters summing to p.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed: same seed and options give the same text.")] = None,
    num_samples: Annotated[int, typer.Option(help="Samples generated together in one batch.")] = 1,
    stop: Annotated[Optional[str], typer.Option(help="End a sample when this string appears.")] = None,
    echo: Annotated[bool, typer.Option(help="Print the prime before the continuation.")] = True,
    output: Annotated[Optional[Path], typer.Option(help="Write to this file instead of stdout.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Let --output replace an existing file.")] = False,
    unknown: Annotated[Unknown, typer.Option(help="Prime characters the model never saw: error, or skip them.")] = Unknown.error,
    device: DeviceOpt = DeviceName.auto,
) -> None:
    """Generate text from a model, one character at a time."""
    config = SampleConfig(length, temperature, top_k, top_p, seed, num_samples, stop, unknown is Unknown.skip)
    if prime_file is not None and prime:
        raise CharRNNError("give --prime or --prime-file, not both")
    if prime_file is not None:
        try:
            prime = prime_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise CharRNNError(f"cannot read --prime-file {prime_file}: {e}") from None
    state = ckpt.load_checkpoint(checkpoint if checkpoint is not None else _newest_run())
    model = state.model.to(resolve_device(device.value))
    if prime and not config.skip_unknown and state.vocab.unknown(prime):
        raise CharRNNError(
            f"the prime holds characters the model has never seen: {describe_chars(state.vocab.unknown(prime))}"
            " (--unknown skip drops them)"
        )
    if output is not None and output.is_dir():
        raise CharRNNError(f"--output {output} is a directory")
    if output is not None and output.exists() and not force:
        raise CharRNNError(f"--output {output} exists: --force replaces it")
    if output is None:
        # a terminal or pipe that cannot show a character gets an escape, not a crash
        sys.stdout.reconfigure(errors="backslashreplace")
    stream = open(output, "w", encoding="utf-8") if output is not None else sys.stdout
    to_terminal = stream.isatty()  # --output /dev/tty is a terminal too
    write = (lambda s: stream.write(safe_for_terminal(s))) if to_terminal else stream.write
    flush = stream.flush if output is None or to_terminal else (lambda: None)  # files: no flush per character
    try:
        _write_samples(model, state.vocab, prime, config, echo, write, flush)
    finally:
        if output is not None:
            stream.close()


def _write_samples(model, vocab, prime, config, echo, write, flush) -> None:
    """Stream sample 0 as it is generated; the others (made in the same
    batch) follow it, each after a separator line."""
    buffers = [[] for _ in range(config.num_samples)]
    if echo and prime:
        write(prime)
    for chars in generate(model, vocab, prime, config):
        write(chars[0])
        flush()
        for j in range(1, len(chars)):
            buffers[j].append(chars[j])
    for j in range(1, config.num_samples):
        write(f"\n\n----- sample {j + 1} -----\n")
        write((prime if echo else "") + "".join(buffers[j]))
    write("\n")
    flush()


def _newest_run() -> Path:
    runs = [p.parent for p in CHECKPOINTS.glob(f"*/{ckpt.BEST}")]
    if not runs:
        raise CharRNNError("no checkpoint given and no run under checkpoints/: train one first")
    return max(runs, key=lambda d: (d / ckpt.BEST).stat().st_mtime)


# The inspect command lives in its own module; importing it registers it.
from . import cli_inspect  # noqa: E402, F401
