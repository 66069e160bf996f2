"""Advice from the metrics log: notice when validation loss keeps rising
and say what to do about it.

A run that trains too long on a small corpus overfits: the training loss
keeps falling while the validation loss turns up (tinyshakespeare's 1M
characters do this within 10 minutes on 2 CPU cores, see the README). A
run whose learning rate is too high goes wrong differently: both losses
rise together. Either way the `best` checkpoint is unharmed, but the user
should hear about it while the run is still going, once.
"""

from __future__ import annotations

from itertools import pairwise

RISING_EVALS = 3  # evaluations in a row with a higher val loss than the one before


def rising_val_advice(records: list[dict], evals: int = RISING_EVALS) -> str | None:
    """A one-line note when the last `evals` evaluations each raised the
    val loss, or None. Only the evaluation that completes such a streak gets
    the note, so a run hears it once per streak."""
    vals = [r["val_loss"] for r in records]
    if len(vals) < evals + 1:
        return None
    rises = [b > a for a, b in pairwise(vals)]
    # the streak is exactly `evals` long: rising now, and not just before it
    if not all(rises[-evals:]) or (len(rises) > evals and rises[-evals - 1]):
        return None
    best = min(range(len(vals)), key=vals.__getitem__)
    where = (
        f"val loss has risen for {evals} evaluations"
        f" (best {vals[best]:.4f} at step {records[best]['step']}, now {vals[-1]:.4f})"
    )
    train_then, train_now = records[-evals - 1].get("train_loss"), records[-1].get("train_loss")
    if train_then is not None and train_now is not None and train_now < train_then:
        return (
            f"{where} while train loss falls: the model is overfitting. The best checkpoint is kept;"
            " try --dropout 0.2-0.4, a smaller model or a shorter run."
        )
    return f"{where} and train loss with it: training is unstable. The best checkpoint is kept; try a lower --lr."
