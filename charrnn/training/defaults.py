"""Defaults fitted to the corpus: what a run does when the user did not say.

A 5 MB corpus and a user's own 65 kB one need different cadences. With
fixed defaults (evaluate every 500 steps, 5% for validation) a small corpus
is evaluated once or twice in a run of dozens of epochs, on a validation
split of a few thousand characters, and its `best` is whichever of those
few evaluations was least bad. So, where the option was not given:

- validation: 5% of the corpus, but at least MIN_VAL_CHARS (up to 10%);
- the split: whole files drawn at random for a directory (DIRECTORY_SPLIT);
- evaluation: once per epoch, and at least every 500 steps; on the whole
  val split where it is at most EVAL_SHARE of the characters trained
  between two evaluations, else on a fixed sample of that many, so that
  evaluation stays near 5% of the run (docs/benchmarks.md);
- patience: a run planned for OVERFIT_EPOCHS epochs or more, where a small
  corpus is learned by heart long before the end, stops after PATIENCE
  evaluations without a new best (it would spend most of its time past
  its best); other runs go to their end.

The split and the cadence are written into the run's config, so a resumed
run keeps them; patience left to its default is decided at each
evaluation from the run's plan and its metrics, both saved, so a resumed
run decides as the straight one would.
"""

from __future__ import annotations

from dataclasses import replace

from ..corpus.batches import MIN_FILES, split_chars
from ..errors import CharRNNError
from .config import TrainConfig

# A directory's val and test are whole files drawn at random: measured
# (benchmarks/split_choice.py, docs/train.md) its val loss tracked the loss
# on files drawn from the whole corpus best on average, and the only one
# that did whatever the files' names; a contiguous val is the last files
# alphabetically, and a blocks val shares files with train (optimistic).
DIRECTORY_SPLIT = "files"
DEFAULT_VAL_FRAC, MAX_VAL_FRAC, MIN_VAL_CHARS = 0.05, 0.10, 8192
MAX_EVAL_EVERY = 500
# An evaluated character (with its share of warm-up) cost about 2/3 of a
# trained one, so a sixteenth of the characters trained is about 5% of the
# time (benchmarks/eval_cost.py).
EVAL_SHARE, MIN_EVAL_CHARS = 1 / 16, 16_384
OVERFIT_EPOCHS, PATIENCE = 10, 5


def val_frac(config: TrainConfig, n_chars: int) -> TrainConfig:
    """The config with its validation fraction settled."""
    if config.val_frac is not None:
        return config
    frac = min(MAX_VAL_FRAC, max(DEFAULT_VAL_FRAC, MIN_VAL_CHARS / n_chars), (1 - config.test_frac) / 2)
    return replace(config, val_frac=round(frac, 4))


def split(config: TrainConfig, n_chars: int, file_starts: tuple[int, ...], given: bool) -> TrainConfig:
    """The config with its split settled, where --split was not given:
    DIRECTORY_SPLIT for a directory of at least MIN_FILES files that it
    can split (some file short enough for val); else contiguous, which
    every run before --split used."""
    if given or len(file_starts) < MIN_FILES:
        return config
    try:
        split_chars(n_chars, config.val_frac, config.test_frac, DIRECTORY_SPLIT, file_starts, config.seed)
    except CharRNNError:
        return config
    return replace(config, split=DIRECTORY_SPLIT)


def eval_every(config: TrainConfig, steps_per_epoch: int) -> TrainConfig:
    """The config with its evaluation cadence settled: once per epoch, at
    most MAX_EVAL_EVERY steps apart, and dividing --sample-every (samples
    are logged with evaluations)."""
    if config.eval_every is not None:
        return config
    every = max(1, min(MAX_EVAL_EVERY, steps_per_epoch))
    if config.sample_every is not None:
        every = max(d for d in range(1, every + 1) if config.sample_every % d == 0)
    return replace(config, eval_every=every)


def eval_chars(config: TrainConfig, n_val: int) -> TrainConfig:
    """The config with its evaluation sample settled (after eval_every):
    None where the whole val split is scored."""
    if config.eval_chars is not None:
        return config
    between = config.eval_every * config.batch_size * config.seq_len  # characters trained between evaluations
    budget = max(MIN_EVAL_CHARS, int(EVAL_SHARE * between))
    return config if budget >= n_val - 1 else replace(config, eval_chars=budget)


def patience(config: TrainConfig, planned_steps: float | None, steps_per_epoch: int) -> int:
    """Evaluations without a new best before the run stops (0: never). Not
    given, it is PATIENCE for a run planned for OVERFIT_EPOCHS epochs or
    more, else 0. A time-limited run's plan is its pace so far (the caller
    passes steps / progress), so it is asked at every evaluation."""
    if config.patience is not None:
        return config.patience
    overfits = planned_steps is not None and planned_steps >= OVERFIT_EPOCHS * steps_per_epoch
    return PATIENCE if overfits else 0


def patience_rule(config: TrainConfig, total_steps: int | None, steps_per_epoch: int) -> tuple[int, int]:
    """(patience, from_steps): the patience a run applies once its planned
    length reaches from_steps. Settled for a run of known length; a
    time-limited one learns its planned length from its pace, so it gets
    PATIENCE from OVERFIT_EPOCHS epochs on."""
    if config.patience is not None or total_steps is not None:
        return patience(config, total_steps, steps_per_epoch), 0
    return PATIENCE, OVERFIT_EPOCHS * steps_per_epoch


def patience_now(rule: tuple[int, int], planned_steps: float | None) -> int:
    """The patience of a run whose planned length is now `planned_steps`."""
    wait, from_steps = rule
    applies = from_steps == 0 or (planned_steps is not None and planned_steps >= from_steps)
    return wait if applies else 0


def evals_since_best(metrics: list[dict]) -> int:
    """Evaluations since the best one (0: the last evaluation is the best)."""
    vals = [m["val_loss"] for m in metrics]
    return len(vals) - 1 - min(range(len(vals)), key=vals.__getitem__) if vals else 0


def describe(before: TrainConfig, after: TrainConfig, n_chars: int, steps_per_epoch: int,
             planned_steps: int | None, size_note: str | None = None) -> str | None:  # fmt: skip
    """One line saying what was fitted to a small corpus and why (with what
    --size auto chose, size.py), or None when the defaults came out as for
    a large one."""
    parts = [size_note] if size_note else []
    stops = f"stop after {PATIENCE} evaluations without a new best (--patience 0 runs to the end)"
    if before.val_frac is None and after.val_frac != DEFAULT_VAL_FRAC:
        parts.append(f"val split {after.val_frac:.0%} ({int(n_chars * after.val_frac):,} chars)")
    if before.eval_every is None and after.eval_every != MAX_EVAL_EVERY:
        parts.append(f"eval every {after.eval_every:,} steps")
    if after.patience is None and planned_steps is None and len(parts) > bool(size_note):  # small, time-limited
        parts.append(f"{stops} if the run lasts {OVERFIT_EPOCHS}+ epochs")
    elif after.patience is None and patience(after, planned_steps, steps_per_epoch):
        parts.append(stops)
    if not parts:
        return None
    return f"small corpus: {n_chars:,} chars, {steps_per_epoch:,} steps per epoch -> " + ", ".join(parts)
