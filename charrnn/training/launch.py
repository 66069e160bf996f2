"""From a request to a run: the reading and checking around make_plan.

    Request -> prepare(): options checked; the checkpoint (--resume,
               --init-from) read; the corpus read; the device resolved;
               the run directory chosen (nothing created)
            -> make_plan -> Prepared(plan, corpus, checkpoint)
            -> loop.run -> TrainResult

`train` does all of it; `charrnn train --plan` stops after `prepare`.
Nothing here prints: the CLI shows the plan's lines and draws progress.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path

from .. import checkpoint as ckpt
from .. import rundir
from ..corpus import Corpus, load_corpus, shipped_corpus
from ..corpus.documents import DOC_END, END_ID, spans
from ..device import resolve_device, resolve_precision
from ..errors import CharRNNError
from ..model import ModelConfig
from . import distributed
from .config import TrainConfig, field_name, flag, parse_duration
from .loop import Reporter, TrainResult, run
from .pace import chars_per_second
from .plan import FRESH, INIT_FROM, RESUME, Options, RunPlan, check_options, make_plan, saved_config, to_time


@dataclass(frozen=True)
class Request:
    """A `charrnn train` invocation: the options, and where the run reads and writes."""

    options: Options = Options()
    corpus: Path | None = None  # None: the shipped corpus, or a resumed run's own
    out: Path | None = None  # None: checkpoints/<corpus>-<kind>[-N]
    force: bool = False  # replace a run already in `out`
    resume: Path | None = None  # a checkpoint, or a run directory meaning its last
    init_from: Path | None = None  # a checkpoint, a run directory meaning its best, or an export

    @property
    def start(self) -> str:
        if self.resume is not None and self.init_from is not None:
            raise CharRNNError("--resume continues a run and --init-from starts a new one: give one of them")
        return RESUME if self.resume is not None else INIT_FROM if self.init_from is not None else FRESH


@dataclass(frozen=True)
class Prepared:
    """A plan and what it was made from."""

    plan: RunPlan
    corpus: Corpus
    checkpoint: ckpt.Checkpoint | None  # the parent, or the run to resume


def prepare(request: Request) -> Prepared:
    """Read what the request names and plan the run; writes nothing."""
    start = request.start
    check_options(request.options, start)
    device = resolve_device(request.options.config.device)  # a resumed run runs where it is told now: auto by default
    if start == RESUME:
        checkpoint = _resumable(request.resume)
        corpus_path = request.corpus if request.corpus is not None else Path(checkpoint.run.corpus.path)
        encoding = saved_config(checkpoint).encoding
        # A fine-tuned run's vocab holds its parent's characters beside its corpus's.
        corpus = load_corpus(corpus_path, encoding, checkpoint.vocab.chars if checkpoint.run.parent else (),
                             checkpoint.config.documents)  # fmt: skip
    else:
        checkpoint = ckpt.load_checkpoint(request.init_from) if start == INIT_FROM else None
        corpus_path = request.corpus or shipped_corpus()
        extra = checkpoint.vocab.chars if checkpoint is not None else ()
        documents = checkpoint.config.documents if checkpoint is not None else request.options.model.documents
        corpus = load_corpus(corpus_path, request.options.config.encoding, extra, documents)
    # A named --out is checked before planning; the default name waits for the kind the plan chooses.
    out_dir = checkpoint.path.parent if start == RESUME else _checked_out(request, checkpoint)
    processes = distributed.world_size()
    plan = make_plan(request.options, corpus.info, corpus.vocab, device, str(out_dir or ""), processes, checkpoint,
                     start, _pace(request.options, corpus, device, start) if processes == 1 else None,
                     corpus.file_starts, document_lengths(corpus))  # fmt: skip
    if out_dir is None:
        default = rundir.default_out_dir(corpus_path, plan.model.kind)
        plan = replace(plan, out_dir=str(_checked_out(request, checkpoint, default)))
    return Prepared(plan, corpus, checkpoint)


def _pace(options: Options, corpus: Corpus, device, start: str) -> dict[str, float]:
    """Chars/s here of each model whose choice waits on this machine's pace.
    Not under torchrun: each process would time its own, and plan apart."""
    timed = to_time(options, corpus.info, corpus.vocab, device, start)
    return {name: chars_per_second(model, config, device, resolve_precision(config.precision, device))
            for name, model, config in timed}  # fmt: skip


def _checked_out(request: Request, parent: ckpt.Checkpoint | None, default: Path | None = None) -> Path | None:
    """The directory a new run writes to: --out, or else `default` (None:
    not yet known), never another run's unless --force (a default name gets
    a -2, -3, ... instead), nor the one a fine-tuned run's parent is in."""
    if request.out is None and default is None:
        return None
    out_dir = rundir.prepare_out_dir(request.out, default or request.out, request.force)
    if parent is not None and parent.path.resolve().parent == out_dir.resolve():
        raise CharRNNError(f"--init-from {parent.path} is in --out {out_dir}, which the new run would replace:"
                           " choose another --out")  # fmt: skip
    return out_dir


def train(request: Request, reporter: Reporter | None = None) -> TrainResult:
    """Plan the request's run and carry it out."""
    prepared = prepare(request)
    return run(prepared.plan, prepared.corpus, prepared.checkpoint, reporter)


def train_on(corpus: Corpus, config: TrainConfig, out_dir: Path, model: ModelConfig,
             reporter: Reporter | None = None) -> TrainResult:  # fmt: skip
    """A fresh run of exactly `model` (no size rule; its vocab size from the
    corpus) on a corpus already read, in `out_dir`: the shortest path for
    programs and tests that hold their text in memory."""
    options = Options(config, model, size="fixed")
    plan = make_plan(options, corpus.info, corpus.vocab, resolve_device(config.device), str(out_dir),
                     distributed.world_size(), file_starts=corpus.file_starts,
                     doc_lengths=document_lengths(corpus))  # fmt: skip
    return run(plan, corpus, reporter=reporter)


def document_lengths(corpus: Corpus):
    """Each document's length (its characters and leading marker) where the
    corpus was read as documents, for the plan to count an epoch's steps."""
    if DOC_END not in corpus.vocab.chars:
        return None
    starts, ends = spans(corpus.ids, END_ID)
    return ends - starts


def _resumable(path: Path) -> ckpt.Checkpoint:
    """The checkpoint to continue: a run directory's last (or its best, if
    a kill during the very first save left no last), holding training state
    and not older than the run's last."""
    only_best = path.is_dir() and not (path / rundir.LAST).exists() and (path / rundir.BEST).exists()
    checkpoint = ckpt.load_checkpoint(path, prefer=rundir.BEST if only_best else rundir.LAST)
    if checkpoint.run is None:
        raise CharRNNError(f"{checkpoint.path} holds weights only, no training state to resume")
    last = checkpoint.path.parent / rundir.LAST
    if checkpoint.path.name == rundir.LAST or not last.exists():
        return checkpoint
    newer = ckpt.load_checkpoint(last).run
    if newer is not None and newer.step > checkpoint.run.step:
        raise CharRNNError(
            f"{last} is newer (step {newer.step:,}) than {checkpoint.path} (step {checkpoint.run.step:,}):"
            f" resuming would replace it; copy {checkpoint.path.name} into a new directory to branch from it"
        )
    return checkpoint


def resume(path: Path, reporter: Reporter | None = None, **changes) -> TrainResult:
    """Continue the run at `path` (a checkpoint, or a run directory meaning
    its last) exactly; `changes` are TrainConfig fields that say how long and
    where to run (config.RESUMABLE), e.g. max_steps=5000."""
    options = Options(TrainConfig(**changes), given=frozenset(changes))
    return train(Request(options, resume=Path(path)), reporter)


def train_with(corpus: str | Path | None = None, *, out: str | Path | None = None,
               time_limit: str | float | None = None, size: str = "auto", force: bool = False,
               resume: str | Path | None = None, init_from: str | Path | None = None,
               reporter: Reporter | None = None, **options) -> TrainResult:  # fmt: skip
    """`charrnn.train`. Train as `charrnn train` does, through the same plan (docs/train.md):
    `corpus` (None: the shipped one), then `charrnn train`'s options by
    their names with underscores, e.g. model=KIND, hidden=256,
    max_steps=1000, lr=3e-3; time_limit as "10m" or seconds. Returns where
    the run went and how it ended; `reporter` (training/loop.py) sees its
    progress, and nothing is printed otherwise."""
    given = {field_name(name): value for name, value in options.items()}
    if time_limit is not None:
        given["time_limit_s"] = parse_duration(time_limit) if isinstance(time_limit, str) else float(time_limit)
    model_fields = {f.name for f in fields(ModelConfig)} - {"vocab_size"}
    train_fields = {f.name for f in fields(TrainConfig)}
    if wrong := sorted(set(given) - model_fields - train_fields):
        raise CharRNNError(f"charrnn train has no option {flag(wrong[0])}")
    if size not in ("auto", "fixed"):
        raise CharRNNError(f"size must be auto or fixed, not {size!r}")
    defaults = Options()
    model = replace(defaults.model, **{k: v for k, v in given.items() if k in model_fields})
    config = TrainConfig(**{k: v for k, v in given.items() if k in train_fields})
    request = Request(Options(config, model, frozenset(given), size), _path(corpus), _path(out), force,
                      _path(resume), _path(init_from))  # fmt: skip
    return train(request, reporter)


def _path(p: str | Path | None) -> Path | None:
    return Path(p) if p is not None else None
