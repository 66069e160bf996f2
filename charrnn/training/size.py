"""`--size auto`: the model's layers, hidden size and dropout fitted to the
corpus, where the user gave none of them (a user who sizes the model
sizes all of it: the fields not given keep their fixed defaults).

At the default budget (3000 steps) a 5 MB corpus is seen about twice and
wants all the capacity the budget's time allows, with no dropout; a 50 kB
one is learned by heart within a few hundred steps, and the same model then
needs dropout to generalise. The rule is a table from corpus size to model
size, measured by benchmarks/size_rule.py on slices of verse, prose and
code (the README's table): at every slice its choice is within 0.03
nats/char of the best model of the grid.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ..errors import CharRNNError
from ..model import ModelConfig

FIELDS = ("layers", "hidden", "dropout")


@dataclass(frozen=True)
class ModelSize:
    layers: int
    hidden: int
    dropout: float


FIXED = ModelSize(ModelConfig.layers, ModelConfig.hidden, ModelConfig.dropout)  # --size fixed
# Per cell kind, rows of (corpus characters below which, size): the first
# row that holds applies. Measured for the LSTM only; other kinds keep FIXED.
RULES: dict[str, tuple[tuple[float, ModelSize], ...]] = {
    "lstm": (
        (2_000_000, ModelSize(2, 384, 0.2)),
        (float("inf"), FIXED),
    ),
}


def auto_size(n_chars: int, kind: str = "lstm") -> ModelSize:
    """The rule's model size for a corpus of n_chars characters."""
    return next((size for below, size in RULES.get(kind, ()) if n_chars < below), FIXED)


def _why(n_chars: int, kind: str) -> str:
    """'under 1,500,000 chars' or '1,500,000 chars or more': the rule's row that applies."""
    bounds = [0.0, *(below for below, _ in RULES[kind])]
    i = next(i for i, below in enumerate(bounds[1:]) if n_chars < below)
    return f"under {bounds[i + 1]:,.0f} chars" if bounds[i + 1] != float("inf") else f"{bounds[i]:,.0f} chars or more"


def describe_rule(kind: str = "lstm") -> str:
    """The rule in words, for --size's help: 'under 1,500,000 characters 2x384 with dropout 0.2; ...'."""
    rows = []
    for below, size in RULES[kind]:
        where = f"under {below:,.0f} characters" if below != float("inf") else "larger"
        rows.append(f"{where} {size.layers}x{size.hidden} " + (f"with dropout {size.dropout:g}" if size.dropout else "without dropout"))
    return "; ".join(rows)


def fit_shape(shape: ModelConfig, n_chars: int, device: torch.device) -> tuple[ModelConfig, str | None]:
    """`shape` with its layers, hidden size and dropout from the rule, and a
    few words for the start-up line when that is not the fixed default.
    Where the cell kind cannot train the rule's dropout on `device` (the
    LSTM on Apple MPS), the rule's model goes without dropout, and says so:
    a default must never be refused."""
    chosen = auto_size(n_chars, shape.kind)
    without = ""
    try:
        shape.cell.check_device(device, chosen.layers, chosen.dropout)
    except CharRNNError:
        chosen, without = replace(chosen, dropout=0.0), f", no dropout: the {shape.kind} on {device.type} refuses it"
    fitted = replace(shape, **{f: getattr(chosen, f) for f in FIELDS})
    if chosen == FIXED and not without:
        return fitted, None
    dropout = f", dropout {chosen.dropout:g}" if chosen.dropout else without
    why = _why(n_chars, shape.kind)
    return fitted, f"{chosen.layers}x{chosen.hidden} {fitted.kind.upper()}{dropout} (--size auto: {why})"
