"""Starting and resuming runs: the policies around the training loop.

    new_run:      corpus -> Vocab and ids -> a fresh run directory -> CharRNN -> Trainer
    finetune_run: a trained model + corpus -> the union Vocab -> a fresh run directory -> its weights -> Trainer
    resume_run:   run directory -> its last checkpoint -> its corpus again -> Trainer

Both return the loop's TrainResult; neither prints (notes go to the reporter).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from .. import checkpoint as ckpt
from .. import rundir
from ..data import describe_chars, load_corpus
from ..device import resolve_device
from ..errors import CharRNNError
from ..model import ModelConfig
from . import distributed, finetune, size
from .config import TrainConfig, check_resumable
from .loop import Reporter, TrainResult, train


def new_run(corpus: Path, config: TrainConfig, shape: ModelConfig, out: Path | None = None, force: bool = False,
            reporter: Reporter | None = None, fit_size: bool = False) -> TrainResult:  # fmt: skip
    """Train a new model of `shape` (its vocab size comes from the corpus;
    with `fit_size`, its layers, hidden size and dropout too: size.py) in
    `out`, or in checkpoints/<corpus>-<kind>[-N] when out is None. An `out`
    that holds a run is replaced only with `force`."""
    data = load_corpus(corpus, config.encoding)
    out_dir = rundir.prepare_out_dir(out, rundir.default_out_dir(corpus, shape.kind), force)
    shape, chosen = size.fit_shape(shape, len(data.ids), resolve_device(config.device)) if fit_size else (shape, None)
    return train(data, config, out_dir, model_config=replace(shape, vocab_size=data.vocab.size), reporter=reporter,
                 size_note=chosen)  # fmt: skip


def finetune_run(corpus: Path, parent_path: Path, config: TrainConfig, given_shape: dict, out: Path | None = None,
                 force: bool = False, reporter: Reporter | None = None) -> TrainResult:  # fmt: skip
    """Train a new run on `corpus` starting from the model in `parent_path`
    (a checkpoint, a run directory meaning its best, or an export). The
    shape is the parent's (`given_shape`, the ModelConfig fields the user
    gave, may change only dropout, weight drop and embedding dropout); the learning rate
    defaults lower."""
    parent = ckpt.load_checkpoint(parent_path)
    shape = finetune.child_shape(parent, given_shape)
    config = finetune.child_config(config, shape.kind)
    data = load_corpus(corpus, config.encoding, extra_chars=parent.vocab.chars)
    out_dir = rundir.prepare_out_dir(out, rundir.default_out_dir(corpus, shape.kind), force)
    if parent.path.resolve().parent == out_dir.resolve():
        raise CharRNNError(f"--init-from {parent.path} is in --out {out_dir}, which the new run would replace:"
                           " choose another --out")  # fmt: skip
    if reporter is not None and distributed.is_main_process():
        added, _ = parent.vocab.diff(data.vocab)
        new = f"{len(added)} new ({describe_chars(added)})" if added else "no new ones"
        reporter.note(f"fine-tuning {parent.path}: {parent.vocab.size} characters and {new}; lr {config.lr:.2e}")
    model_config = replace(shape, vocab_size=data.vocab.size)
    return train(data, config, out_dir, model_config=model_config, reporter=reporter, init_from=parent)


def resume_run(path: Path, overrides: dict | None = None, corpus: Path | None = None,
               reporter: Reporter | None = None) -> TrainResult:  # fmt: skip
    """Continue a run exactly, in its own directory. `path` is a checkpoint,
    or a run directory meaning its last. Only the options that say how long
    and where to run (config.RESUMABLE) may be overridden; the device is
    `auto` unless given, since it says where to run now. `corpus` defaults
    to the run's own, and must have the same character set."""
    overrides = overrides or {}
    check_resumable(overrides)
    checkpoint = ckpt.load_checkpoint(path, prefer=_resume_target(path))
    if checkpoint.run is None:
        raise CharRNNError(f"{checkpoint.path} holds weights only, no training state to resume")
    _refuse_rewinding(checkpoint)
    config = replace(checkpoint.run.train_config, **({"device": "auto"} | overrides))
    corpus_path = corpus if corpus is not None else Path(checkpoint.run.corpus.path)
    # A fine-tuned run's vocab holds its parent's characters beside its corpus's.
    data = load_corpus(corpus_path, config.encoding, checkpoint.vocab.chars if checkpoint.run.parent else ())
    added, removed = checkpoint.vocab.diff(data.vocab)
    if added or removed:
        raise CharRNNError(
            f"corpus {corpus_path} has a different character set from the run's:"
            f" added {describe_chars(added) or 'none'}; removed {describe_chars(removed) or 'none'}"
        )
    if reporter is not None and distributed.is_main_process():
        reporter.note(f"resuming {checkpoint.path} at step {checkpoint.run.step:,}")
        if data.info.sha256 != checkpoint.run.corpus.sha256:
            reporter.note(f"note: {corpus_path} is not the text the run began on; training goes on with it")
    return train(data, config, checkpoint.path.parent, resume=checkpoint, reporter=reporter)


def _resume_target(path: Path) -> str:
    """A run directory resumes from its last checkpoint, or from best if a
    kill during the very first save left no last."""
    only_best = path.is_dir() and not (path / rundir.LAST).exists() and (path / rundir.BEST).exists()
    return rundir.BEST if only_best else rundir.LAST


def _refuse_rewinding(checkpoint: ckpt.Checkpoint) -> None:
    """Resuming an older checkpoint of a run would replace its newer last."""
    last = checkpoint.path.parent / rundir.LAST
    if checkpoint.path.name == rundir.LAST or not last.exists():
        return
    newer = ckpt.load_checkpoint(last).run
    if newer is not None and newer.step > checkpoint.run.step:
        raise CharRNNError(
            f"{last} is newer (step {newer.step:,}) than {checkpoint.path} (step {checkpoint.run.step:,}):"
            f" resuming would replace it; copy {checkpoint.path.name} into a new directory to branch from it"
        )
