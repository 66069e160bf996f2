"""`--size auto`'s recipes: the best measured settings for a budget.

The corpus-size rule (size.py) sizes the default kind's model for the
corpus. Where a run's budget (a --time-limit, or none at all: the default
number of steps), its corpus and its device match a recipe that a cell
kind declares (Cell.recipes), the plan takes that recipe instead: its cell
kind, size, batch, window, learning rate and regularisation, the best
configuration measured for that budget (benchmarks/quality.py; the table
in docs/benchmarks.md). A recipe applies only to a new model left to
`--size auto` (no model option given); a training option the user gave
still wins over the recipe's.

A wider model beats a narrower one in a time budget only if the budget
buys it enough steps, and how many it buys depends on the machine: the
same 10 minutes train a 2x768 GRU for about 1,350 steps on one CPU and 650
on another. So a recipe may need `min_steps`: the plan times its model
here first (pace.py), and takes it only where the budget buys that many;
else the next recipe for the budget, a narrower model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import torch

from .. import cells
from ..cells.types import Recipe
from ..model import ModelConfig
from .config import TrainConfig, flag

# Options that say what model to train: given any, the user chose the model.
MODEL_OPTIONS = frozenset({"kind", "layers", "hidden", "embedding", "dropout", "weight_drop", "embed_dropout"})

Choice = tuple[str, Recipe]  # (cell kind, recipe)


def label(choice: Choice) -> str:
    """A recipe's model in words, the key of its measured pace: "2x768 GRU"."""
    kind, recipe = choice
    return f"{recipe.shape} {kind.upper()}"


def candidates(n_chars: int, config: TrainConfig, device: torch.device, given: frozenset[str]) -> list[Choice]:
    """The recipes for this run's budget, the first to be preferred: none
    for a run given --max-steps or --epochs (no recipe was measured for a
    length the user chose in steps), or that chose its model."""
    if given & MODEL_OPTIONS or config.max_steps or config.epochs:
        return []
    fitting = [(name, r) for name in cells.names() for r in cells.get(name).recipes
               if r.fits(n_chars, config.time_limit_s, device.type) and cells.get(name).slower_here(device) is None]  # fmt: skip
    tightest = min((r.max_seconds or 0 for _, r in fitting), default=None)
    return [(name, r) for name, r in fitting if (r.max_seconds or 0) == tightest]


def to_time(n_chars: int, config: TrainConfig, device: torch.device, given: frozenset[str]) -> list[Choice]:
    """The candidates whose choice waits on this machine's pace."""
    return [c for c in candidates(n_chars, config, device, given) if c[1].min_steps]


def pick(n_chars: int, config: TrainConfig, device: torch.device, given: frozenset[str],
         pace: Mapping[str, float] | None = None) -> tuple[Choice | None, list[str]]:  # fmt: skip
    """(kind, recipe) for this run, or None: the corpus-size rule's model;
    and why each recipe preferred to it was passed over. `pace` is the
    chars/s each of `to_time`'s models trains here; a recipe that needs
    steps and was not timed is passed over."""
    passed = []
    for choice in candidates(n_chars, config, device, given):
        if budget_steps(choice, config, pace or {}) >= choice[1].min_steps:
            return choice, passed
        passed.append(f"not {label(choice)}: it {_pace_line(choice, config, pace or {})}")
    return None, passed


def budget_steps(choice: Choice, config: TrainConfig, pace: Mapping[str, float]) -> float:
    """The steps the time limit buys the recipe's model at its measured pace (0: not timed)."""
    recipe = choice[1]
    if not recipe.min_steps:
        return 0.0
    chars_per_step = recipe.train["batch_size"] * recipe.train["seq_len"]
    return pace.get(label(choice), 0.0) * (config.time_limit_s or 0) / chars_per_step


def apply(choice: Choice, model: ModelConfig, config: TrainConfig, given: frozenset[str]):
    """The model and config with the recipe's settings, less those the user gave."""
    kind, recipe = choice
    train = {name: value for name, value in recipe.train.items() if name not in given}
    return replace(model, kind=kind, **recipe.model), replace(config, **train)


def describe(choice: Choice, config: TrainConfig, given: frozenset[str], pace: Mapping[str, float] | None = None,
             passed: list[str] = ()) -> str:  # fmt: skip
    """The start-up line: what the recipe chose, and why."""
    kind, recipe = choice
    settings = [f"{flag(name)} {value:g}" for name, value in {**recipe.model, **recipe.train}.items()
                if name not in ("layers", "hidden") and name not in given]  # fmt: skip
    budget = f"{recipe.max_seconds / 60:g} minutes or less" if recipe.max_seconds else "the default length"
    line = (f"--size auto for {budget} on {recipe.min_chars:,}+ characters: {label(choice)}, "
            + " ".join(settings) + f" ({recipe.why})")  # fmt: skip
    paced = [f"it {_pace_line(choice, config, pace or {})}"] if recipe.min_steps else []
    return "; ".join([line, *paced, *passed])


def _pace_line(choice: Choice, config: TrainConfig, pace: Mapping[str, float]) -> str:
    """How many steps the budget buys the recipe's model here, against what it needs."""
    name, need = label(choice), choice[1].min_steps
    if name not in pace:
        return "was not timed here"
    steps = budget_steps(choice, config, pace)
    return f"trains {pace[name]:,.0f} chars/s here, {steps:,.0f} steps in the budget (it needs {need:,})"
