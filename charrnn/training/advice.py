"""Advice from the metrics log: notice when validation loss keeps rising
and say what to do about it.

A run that trains too long on a small corpus overfits: the training loss
keeps falling while the validation loss turns up (a corpus of a million
characters does, well within a long run: docs/benchmarks.md). A
run whose learning rate is too high goes wrong differently: both losses
rise together. Either way the `best` checkpoint is unharmed, but the user
should hear about it while the run is still going, once per such streak.
"""

from __future__ import annotations

from itertools import pairwise

RISING_EVALS = 3  # evaluations in a row with a higher val loss than the one before
MIN_RISE = 1e-3  # relative: smaller changes are a plateau's noise, not a rise


def rising_val_advice(entries: list[dict], dropout: float = 0.0, evals: int = RISING_EVALS) -> str | None:
    """A one-line note when the last `evals` evaluations each raised the
    val loss (by more than MIN_RISE), or None. Only the evaluation that
    completes such a streak gets the note, so a run hears it once per
    streak. `dropout` is the run's, to suggest more than it has."""
    vals = [r["val_loss"] for r in entries]
    if len(vals) < evals + 1:
        return None
    rises = [b > a * (1 + MIN_RISE) for a, b in pairwise(vals)]
    # the streak is exactly `evals` long: rising now, and not just before it
    if not all(rises[-evals:]) or (len(rises) > evals and rises[-evals - 1]):
        return None
    best = min(range(len(vals)), key=vals.__getitem__)
    where = (
        f"val loss has risen for {evals} evaluations"
        f" (best {vals[best]:.4f} at step {entries[best]['step']}, now {vals[-1]:.4f})"
    )
    train_then, train_now = entries[-evals - 1].get("train_loss"), entries[-1].get("train_loss")
    if train_then is not None and train_now is not None and train_now < train_then:
        more = f"more --dropout than {dropout:g}" if dropout else "--dropout 0.2-0.4"
        return (
            f"{where} while train loss falls: the model is overfitting. The best checkpoint is kept;"
            f" for a new run, try {more}, a smaller model or fewer steps."
        )
    return (
        f"{where} and train loss with it: training is unstable. The best checkpoint is kept;"
        " for a new run, try a lower --lr."
    )
