"""`--size auto`'s recipes: the best measured settings for a budget.

The corpus-size rule (size.py) sizes the default kind's model for the
corpus. Where a run's budget (a short --time-limit, or none at all: the
default number of steps), its corpus and its device match a recipe that a
cell kind declares (Cell.recipes), the plan takes that recipe instead: its cell kind, size, batch, window, learning rate and
regularisation, the best configuration measured for that budget
(benchmarks/quality.py; the table in docs/benchmarks.md). A recipe applies
only to a new model left to `--size auto` (no model option given); a
training option the user gave still wins over the recipe's.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from .. import cells
from ..cells.types import Recipe
from ..model import ModelConfig
from .config import TrainConfig, flag

# Options that say what model to train: given any, the user chose the model.
MODEL_OPTIONS = frozenset({"kind", "layers", "hidden", "embedding", "dropout", "weight_drop", "embed_dropout"})


def pick(n_chars: int, config: TrainConfig, device: torch.device, given: frozenset[str]) -> tuple[str, Recipe] | None:
    """(kind, recipe) for this run, or None: the corpus-size rule's model.
    A run given --max-steps or --epochs gets none: no recipe was measured
    for a length the user chose in steps."""
    if given & MODEL_OPTIONS or config.max_steps or config.epochs:
        return None
    fitting = [(name, r) for name in cells.names() for r in cells.get(name).recipes
               if r.fits(n_chars, config.time_limit_s, device.type) and cells.get(name).slower_here(device) is None]  # fmt: skip
    return min(fitting, key=lambda kr: kr[1].max_seconds or 0, default=None)  # the tightest budget that fits


def apply(choice: tuple[str, Recipe], model: ModelConfig, config: TrainConfig, given: frozenset[str]):
    """The model and config with the recipe's settings, less those the user gave."""
    kind, recipe = choice
    train = {name: value for name, value in recipe.train.items() if name not in given}
    return replace(model, kind=kind, **recipe.model), replace(config, **train)


def describe(choice: tuple[str, Recipe], given: frozenset[str]) -> str:
    """The start-up line: what the recipe chose, and why."""
    kind, recipe = choice
    m = recipe.model
    settings = [f"{flag(name)} {value:g}" for name, value in {**m, **recipe.train}.items()
                if name not in ("layers", "hidden") and name not in given]  # fmt: skip
    budget = f"{recipe.max_seconds / 60:g} minutes or less" if recipe.max_seconds else "the default length"
    return (f"--size auto for {budget} on {recipe.min_chars:,}+ characters: {m['layers']}x{m['hidden']} {kind.upper()}, "
            + " ".join(settings) + f" ({recipe.why})")  # fmt: skip
