"""The learning-rate schedule: linear warm-up, then cosine decay to a floor
as the run's progress goes from 0 to 1. Progress is counted in steps, in
time, or both (whichever is further), so a time-limited run reaches its
floor exactly as its time runs out."""

from __future__ import annotations

import math

from .config import TrainConfig


def lr_at(config: TrainConfig, step: int, progress: float) -> float:
    """Linear warm-up over the first steps, then cosine decay from lr to
    lr * min_lr_frac as progress goes from 0 to 1."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
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
