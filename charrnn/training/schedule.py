"""The learning-rate schedule: linear warm-up, then cosine decay to a floor
as the run's progress goes from 0 to 1. Progress is counted in steps, in
time, or both (whichever is further), so a time-limited run reaches its
floor exactly as its time runs out."""

from __future__ import annotations

import math

from .config import TrainConfig


WARMUP_SHARE = 0.1  # a run shorter than ten warm-ups warms up over its first tenth instead


def lr_at(config: TrainConfig, step: int, progress: float, total: int | None = None) -> float:
    """Linear warm-up, then cosine decay from lr to lr * min_lr_frac as
    progress goes from 0 to 1. The warm-up lasts --warmup-steps, or the
    first tenth of the planned run where that is shorter: of its `total`
    steps, or of its time under --time-limit (as progress tells). A 60-step
    try must still reach its learning rate. Every term is a function of the
    step and the saved progress, so resume stays exact."""
    ramps = [(step + 1) / config.warmup_steps if config.warmup_steps else 1.0, progress / WARMUP_SHARE]
    if total:
        ramps.append((step + 1) / (WARMUP_SHARE * total))
    ramp = max(ramps)
    if ramp < 1:  # warming up: no ramp has finished
        return config.lr * ramp
    floor = config.lr * config.min_lr_frac
    return floor + (config.lr - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def progress(step: int, total: int | None, p0: float, elapsed: float, limit: float | None) -> float:
    """Schedule position: the further of step progress and time progress. A
    resumed time-limited run continues from where it stopped (p0) and
    reaches 1 when its new time limit runs out."""
    p = step / total if total else 0.0
    if limit:
        p = max(p, p0 + (1 - p0) * elapsed / limit)
    return min(p, 1.0)
