"""The run plan: everything a training run will do, settled before it starts.

    Options (what the user asked) + the corpus's facts + the device
      (+ the checkpoint, for --resume or --init-from)
        -> make_plan -> RunPlan: frozen, validated once, printed as the
           start-up lines, saved in every checkpoint of the run
        -> loop.run(plan, ...)

`make_plan` is pure: it reads its arguments and nothing else (no file, no
clock, no process group), so `charrnn train --plan` shows exactly what a
run would do while writing nothing, and a test can plan a run in
microseconds. Every default that depends on the corpus, the budget or the
start (the size rule, the learning rate, the validation split, the
evaluation cadence, patience) is decided here and nowhere else.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch

from .. import cells
from ..checkpoint import Checkpoint
from ..corpus import CorpusInfo, Vocab, describe_chars, split_chars, split_sizes, steps_per_epoch
from ..corpus.documents import epoch_steps
from ..device import describe_precision, resolve_precision
from ..errors import CharRNNError
from ..model import REGULARISERS, CharRNN, ModelConfig
from . import defaults, finetune, recipes, size
from .config import DEFAULT_MAX_STEPS, TrainConfig, check_resumable, flag
from .schedule import WARMUP_SHARE

FRESH, INIT_FROM, RESUME = "fresh", "init-from", "resume"
SIZE_FIELDS = frozenset({"layers", "hidden", "dropout"})  # a user who gives one sizes the model


@dataclass(frozen=True)
class Options:
    """What the user asked for: every option's value (its default where not
    given) and the names of the fields that were given, TrainConfig's and
    ModelConfig's, plus "size" for --size."""

    config: TrainConfig = field(default_factory=TrainConfig)
    model: ModelConfig = field(default_factory=lambda: ModelConfig(cells.DEFAULT, vocab_size=1))  # vocab: the corpus's
    given: frozenset[str] = frozenset()
    size: str = "auto"  # auto: fit layers, hidden and dropout to the corpus (size.py); fixed: the defaults


@dataclass(frozen=True)
class Start:
    """Where the run's weights and state come from."""

    mode: str = FRESH  # FRESH | INIT_FROM (a parent's weights) | RESUME (a run's last state)
    checkpoint: str = ""  # the parent's or the resumed checkpoint's path
    sha256: str = ""  # that file's checksum, as read
    step: int = 0  # the step a resumed run goes on from


@dataclass(frozen=True)
class RunPlan:
    """One run, settled: read top to bottom by the loop, saved verbatim."""

    start: Start
    corpus: CorpusInfo
    model: ModelConfig  # vocab size and the size rule applied
    train: TrainConfig  # lr, val split and eval cadence settled; what resuming restores
    device: str  # resolved: cpu, cuda, cuda:1, mps
    precision: str  # resolved: fp32, bf16 or fp16
    processes: int  # torchrun's world size; 1 for a plain run
    parameters: int
    steps_per_epoch: int
    total_steps: int | None  # None: the run ends at its time limit
    # Evaluations without a new best before stopping (0: never), applied
    # once the run's planned length reaches patience_from_steps; a
    # time-limited run's planned length is its pace so far.
    patience: int
    patience_from_steps: int
    out_dir: str
    notes: tuple[str, ...] = ()  # printed before the corpus line: where the run starts from
    fitted: tuple[str, ...] = ()  # what was chosen for the corpus and budget, and why: after the model line
    # (train, val, test) characters where the split does not give the fractions' floors (--split files);
    # saved only then, so other runs' plans read as before.
    split_chars: tuple[int, int, int] | None = None

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.device)

    def lines(self) -> list[str]:
        """The start-up lines."""
        c = self.corpus
        precision = describe_precision(self.precision, self.torch_device)
        lines = [
            *self.notes,
            f"corpus: {c.path} ({c.n_chars:,} characters, {self.model.vocab_size} distinct"
            f"{f'; its {self.model.documents} as documents, the end marker counted' if self.model.documents else ''})",
            f"model: {self.parameters:,} parameters on {self.device} ({precision}"
            f"{', deterministic' if self.train.deterministic else ''}); {self.steps_per_epoch:,} steps per epoch",
        ]
        return lines + list(self.fitted)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["model"], d["train"] = self.model.to_dict(), self.train.to_dict()
        d["notes"] = list(self.notes)
        if self.split_chars is None:
            del d["split_chars"]
        return d


def make_plan(options: Options, corpus: CorpusInfo, vocab: Vocab, device: torch.device, out_dir: str,
              processes: int = 1, checkpoint: Checkpoint | None = None, start: str = FRESH,
              pace: Mapping[str, float] | None = None, file_starts: tuple[int, ...] = (0,),
              doc_lengths: np.ndarray | None = None) -> RunPlan:  # fmt: skip
    """The plan of a run of `options` on a corpus of `vocab`, on `device`,
    writing to `out_dir`. `checkpoint` is the parent (INIT_FROM) or the run
    to continue (RESUME). `pace` is how fast the models of `to_time` train
    on this machine (chars/s by recipes.label), measured by the caller;
    `file_starts`, where each of the corpus's files begins (--split files);
    `doc_lengths`, each document's, for a corpus read as documents.
    Refuses, in one line, anything the run could not do."""
    if start == RESUME:
        model, asked, notes, size_note, chosen = _resumed(options, corpus, vocab, checkpoint)
    elif start == INIT_FROM:
        model, asked, notes, size_note, chosen = _fine_tuned(options, vocab, checkpoint)
    else:
        model, asked, notes, size_note, chosen = _fresh(options, corpus, vocab, device, pace)
    config = defaults.val_frac(asked.for_kind(model.kind), corpus.n_chars)
    if start != RESUME:  # a resumed run keeps its own split
        config = defaults.split(config, corpus.n_chars, file_starts, "split" in options.given)
    precision = resolve_precision(config.precision, device)
    model.cell.check_device(device, model.layers, model.dropout)
    if config.batch_size % processes:
        raise CharRNNError(f"--batch-size {config.batch_size} cannot be split evenly across {processes} processes:"
                           f" use a multiple of {processes}")  # fmt: skip
    if model.documents:  # whole documents are held out (corpus/documents.py)
        if "split" in options.given:
            raise CharRNNError("--split cuts a stream of text; --documents holds out whole documents: drop --split")
        chars = split_sizes(corpus.n_chars, config.val_frac, config.test_frac)
    else:
        chars = split_chars(corpus.n_chars, config.val_frac, config.test_frac, config.split, file_starts, config.seed)
    n_train, n_val = chars[0], chars[1]
    per_epoch = _steps_per_epoch(n_train, config, model.documents, doc_lengths)
    config = defaults.eval_every(config, per_epoch)
    if start != RESUME:  # a resumed run keeps its measure (None: the whole split), so best stays comparable
        config = defaults.eval_chars(config, n_val)
    total = _total_steps(config, per_epoch, checkpoint.run.step if start == RESUME else None)
    patience, patience_from = defaults.patience_rule(config, total, per_epoch)
    with torch.device("meta"):  # the count, without the memory
        parameters = CharRNN(model).num_parameters()
    return RunPlan(
        start=_start(start, checkpoint), corpus=corpus, model=model, train=config, device=str(device),
        precision=precision, processes=processes, parameters=parameters, steps_per_epoch=per_epoch,
        total_steps=total, patience=patience, patience_from_steps=patience_from, out_dir=str(out_dir),
        split_chars=chars if config.split == "files" else None,
        notes=tuple(notes), fitted=_fitted(chosen, defaults.describe(asked, config, corpus.n_chars, per_epoch, total,
                                                                     size_note), _sampled(config, n_val),
                       _slower(model, device)),
    )  # fmt: skip


def to_time(options: Options, corpus: CorpusInfo, vocab: Vocab, device: torch.device,
            start: str = FRESH) -> list[tuple[str, ModelConfig, TrainConfig]]:  # fmt: skip
    """The models whose pace on this machine the plan needs, by name, with
    the settings to time them under (pace.py); none for most runs."""
    if start != FRESH or not _auto(options):
        return []
    model = replace(options.model, vocab_size=vocab.size)
    return [(recipes.label(choice), *recipes.apply(choice, model, options.config, options.given))
            for choice in recipes.to_time(corpus.n_chars, options.config, device, options.given)]  # fmt: skip


def _auto(options: Options) -> bool:
    return options.size == "auto" and not options.given & SIZE_FIELDS


def _fresh(options: Options, corpus: CorpusInfo, vocab: Vocab, device: torch.device,
           pace: Mapping[str, float] | None):  # fmt: skip
    """A new model of the options' shape. With --size auto and no model
    option given, the recipe measured best for the run's budget where one
    fits (recipes.py), else layers, hidden size and dropout from the
    corpus-size rule (size.py)."""
    check_options(options, FRESH)
    model, config = replace(options.model, vocab_size=vocab.size), options.config
    if not _auto(options):
        return model, config, [], None, None
    recipe, passed = recipes.pick(corpus.n_chars, config, device, options.given, pace)
    if recipe is not None:
        model, config = recipes.apply(recipe, model, config, options.given)
        return model, config, [], None, recipes.describe(recipe, config, options.given, pace, passed)
    model, size_note = size.fit_model(model, corpus.n_chars, device)
    return model, config, [], size_note, "; ".join(passed) or None


def _fine_tuned(options: Options, vocab: Vocab, parent: Checkpoint):
    """The parent's shape (only its regularisers may change), a lower learning rate."""
    check_options(options, INIT_FROM)
    given_model = {name: getattr(options.model, name) for name in options.given if hasattr(options.model, name)}
    model = replace(finetune.child_model(parent, given_model), vocab_size=vocab.size)
    config = finetune.child_config(options.config, model.kind)
    added, _ = parent.vocab.diff(vocab)
    new = f"{len(added)} new ({describe_chars(added)})" if added else "no new ones"
    note = f"fine-tuning {parent.path}: {parent.vocab.size} characters and {new}; lr {config.lr:.2e}"
    return model, config, [note], None, None


def _resumed(options: Options, corpus: CorpusInfo, vocab: Vocab, checkpoint: Checkpoint):
    """The run's own model and settings; only how long and where to run may change."""
    check_options(options, RESUME)
    overrides = _overrides(options)
    run = checkpoint.run
    added, removed = checkpoint.vocab.diff(vocab)
    if added or removed:
        raise CharRNNError(
            f"corpus {corpus.path} has a different character set from the run's:"
            f" added {describe_chars(added) or 'none'}; removed {describe_chars(removed) or 'none'}"
        )
    changed = {name: getattr(options.config, name) for name in overrides}
    config = replace(saved_config(checkpoint), **({"device": "auto"} | changed))
    notes = [f"resuming {checkpoint.path} at step {run.step:,}"]
    if corpus.sha256 != run.corpus.sha256:
        notes.append(f"note: {corpus.path} is not the text the run began on; training goes on with it")
    return checkpoint.config, config, notes, None, None


def saved_config(checkpoint: Checkpoint) -> TrainConfig:
    """The settings a checkpoint's run was trained with, checked as any
    options are (a file can pass its checksum and still hold anything)."""
    try:
        return TrainConfig.from_dict(checkpoint.run.train_config)
    except (CharRNNError, TypeError, ValueError) as e:
        raise CharRNNError(f"checkpoint {checkpoint.path} is inconsistent: run.train_config: {e}") from None


def check_options(options: Options, start: str) -> None:
    """What the options alone can refuse, before anything is read: --size
    sizes only a new model, an explicit --size auto is not half-ignored,
    and a resumed run may change only how long and where it runs."""
    if "size" in options.given and start != FRESH:
        raise CharRNNError(f"--size sizes a new model; --{start} keeps its model's")
    if "size" in options.given and options.size == "auto" and options.given & SIZE_FIELDS:
        named = ", ".join(flag(name) for name in sorted(options.given & SIZE_FIELDS))
        raise CharRNNError(f"--size auto sizes the model itself: drop {named}, or --size auto")
    if start == RESUME:
        check_resumable(_overrides(options))


def _steps_per_epoch(n_train: int, config: TrainConfig, documents: str, doc_lengths: np.ndarray | None) -> int:
    """An epoch's steps: of streams, or of the groups the documents'
    lengths make (without their lengths, the steps their characters would
    fill: the loop's epochs follow the groups)."""
    if documents and doc_lengths is not None:
        return epoch_steps(doc_lengths, config.val_frac, config.test_frac, config.batch_size, config.seq_len)
    if documents:
        return max(1, -(-n_train // (config.batch_size * config.seq_len)))
    return steps_per_epoch(n_train, config.batch_size, config.seq_len)


def _sampled(config: TrainConfig, n_val: int) -> str | None:
    if not sampled(config, n_val):
        return None
    return (f"evaluations score a fixed sample of {config.eval_chars:,} of the val split's {n_val:,} characters"
            " (--eval-chars); the last scores them all")  # fmt: skip


def sampled(config: TrainConfig, n_val: int) -> bool:
    """Whether the run's evaluations score a sample of its val split, not all of it."""
    return bool(config.eval_chars) and config.eval_chars < n_val - 1


def _slower(model: ModelConfig, device: torch.device) -> str | None:
    problem = model.cell.slower_here(device)
    return f"note: {problem}" if problem else None


def _fitted(*lines: str | None) -> tuple[str, ...]:
    return tuple(line for line in lines if line)


def _overrides(options: Options) -> set[str]:
    """The options a resumed run was given anew (its corpus may be given too)."""
    return set(options.given) - {"corpus", "resume"}


def _total_steps(config: TrainConfig, per_epoch: int, resumed_at: int | None) -> int | None:
    """The run's length in steps: the nearer of --max-steps and --epochs;
    None under --time-limit alone; DEFAULT_MAX_STEPS when none is given."""
    totals = [t for t in (config.max_steps, config.epochs and config.epochs * per_epoch) if t]
    total = min(totals) if totals else (None if config.time_limit_s else DEFAULT_MAX_STEPS)
    if resumed_at is not None and total is not None and resumed_at >= total:
        raise CharRNNError(
            f"the run is already at step {resumed_at:,}, which its length limit"
            f" ({total:,} steps) allows no further: raise --max-steps or --epochs to go on"
        )
    return total


def _start(mode: str, checkpoint: Checkpoint | None) -> Start:
    if checkpoint is None:
        return Start(mode)
    step = checkpoint.run.step if mode == RESUME else 0
    return Start(mode, str(checkpoint.path), checkpoint.sha256, step)


def describe_plan(plan: RunPlan) -> list[tuple[str, str]]:
    """The plan as (name, value) rows, for `charrnn train --plan`."""
    m, c = plan.model, plan.train
    regularisers = [f"{name.replace('_', ' ')} {getattr(m, name):g}" for name in REGULARISERS
                    if getattr(m, name)]  # fmt: skip
    start = {FRESH: "a new model", INIT_FROM: f"the weights of {plan.start.checkpoint}",
             RESUME: f"{plan.start.checkpoint} at step {plan.start.step:,}"}[plan.start.mode]  # fmt: skip
    n_train, n_val, n_test = plan.split_chars or split_sizes(plan.corpus.n_chars, c.val_frac, c.test_frac)
    rows = [
        ("start", start),
        ("corpus", f"{plan.corpus.path} ({plan.corpus.n_chars:,} characters, {m.vocab_size} distinct)"),
        ("split", f"train {n_train:,}, val {n_val:,} ({c.val_frac:g}), test {n_test:,} ({c.test_frac:g}) characters"
                  + (f"; {c.split}" if c.split != "contiguous" else "")),
        ("model", f"{m.layers}x{m.hidden} {m.kind}, embedding {m.embedding}"
                  f"{', ' + ', '.join(regularisers) if regularisers else ''}; {plan.parameters:,} parameters"),
        ("device", f"{plan.device}, {describe_precision(plan.precision, plan.torch_device)}"
                   f"{', deterministic' if c.deterministic else ''}"
                   f"{f', {plan.processes} processes' if plan.processes > 1 else ''}"),
        ("batch", _batch(plan)),
        ("length", _length(plan)),
        ("learning rate", f"AdamW, peak {c.lr:g}, warm-up {_warmup(plan)}, cosine decay to {c.lr * c.min_lr_frac:g}"),
        ("regularisation", f"weight decay {c.weight_decay:g} (matrices), gradient clip {c.grad_clip:g}"),
        ("evaluation", f"every {c.eval_every:,} steps on {_scored(c, n_val)}; {_patience(plan)}"
                       + (f"; a sample every {c.sample_every:,} steps" if c.sample_every else "")),
        ("seed", str(c.seed)),
        ("output", plan.out_dir),
    ]
    return rows + [("note", note) for note in (*plan.notes[1:], *plan.fitted)]


def _batch(plan: RunPlan) -> str:
    c, documents = plan.train, plan.model.documents
    if not documents:
        return f"{c.batch_size} streams x {c.seq_len} characters; {plan.steps_per_epoch:,} steps per epoch"
    return (f"{documents} as documents, grouped by length: about {c.batch_size * c.seq_len:,} characters a step"
            f" (at least {c.batch_size} documents, windows of {c.seq_len}); {plan.steps_per_epoch:,} steps"
            " per epoch")  # fmt: skip


def _scored(config: TrainConfig, n_val: int) -> str:
    if not sampled(config, n_val):
        return "the val split"
    return f"a fixed {config.eval_chars:,} of the val split's {n_val:,} characters (all of them at the end)"


def _length(plan: RunPlan) -> str:
    c = plan.train
    limit = f"{c.time_limit_s:g} s" if c.time_limit_s else None
    if plan.total_steps is None:
        return f"until {limit} have passed"
    steps = f"{plan.total_steps:,} steps ({plan.total_steps / plan.steps_per_epoch:.2f} epochs)"
    return f"{steps}, or {limit} if sooner" if limit else steps


def _warmup(plan: RunPlan) -> str:
    """The warm-up as schedule.lr_at runs it: --warmup-steps, or the first tenth of the run where that is shorter."""
    c = plan.train
    if plan.total_steps is not None:
        return f"{min(c.warmup_steps, math.ceil(WARMUP_SHARE * plan.total_steps)):,} steps"
    return f"{c.warmup_steps:,} steps or the first tenth of the time, whichever ends first"


def _patience(plan: RunPlan) -> str:
    if not plan.patience:
        return "runs to its end"
    stop = f"stops after {plan.patience} evaluations without a new best"
    return stop if not plan.patience_from_steps else f"{stop} once it is on pace for {plan.patience_from_steps:,} steps"
