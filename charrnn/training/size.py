"""`--size auto`: the model's layers, hidden size and dropout fitted to the
corpus, where the user gave none of them (a user who sizes the model
sizes all of it: the fields not given keep their fixed defaults).

At the default budget (3000 steps) a 5 MB corpus is seen about twice and
wants all the capacity the budget's time allows, with no dropout; a 50 kB
one is learned by heart within a few hundred steps, and the same model then
needs dropout to generalise. The rule is a table from corpus size to model
size, which each cell kind declares (Cell.size_rule), measured by
benchmarks/size_rule.py on slices of verse, prose and code (the README's
table): at every slice the LSTM's choice is within 0.03 nats/char of the
best model of the grid. Kinds not measured keep the fixed default.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch

from .. import cells
from ..cells.types import SizeRow
from ..errors import CharRNNError
from ..model import ModelConfig


@dataclass(frozen=True)
class ModelSize:
    """A model's size as --size chooses it."""

    layers: int
    hidden: int
    dropout: float


FIXED = ModelSize(ModelConfig.layers, ModelConfig.hidden, ModelConfig.dropout)  # --size fixed


def _row(n_chars: int, kind: str) -> SizeRow | None:
    """The kind's rule row for this corpus (cells' size_rule), or None: the fixed default."""
    return next((row for row in cells.get(kind).size_rule if n_chars < row.below), None)


def _size(row: SizeRow) -> ModelSize:
    return ModelSize(row.layers, row.hidden, row.dropout)


def auto_size(n_chars: int, kind: str = cells.DEFAULT) -> ModelSize:
    """The rule's model size for a corpus of n_chars characters."""
    row = _row(n_chars, kind)
    return FIXED if row is None else _size(row)


def describe_rule(kind: str = cells.DEFAULT) -> str:
    """The rule in words, for --size's help: 'under 2,000,000 characters 2x384 with dropout 0.2; ...'."""
    rows = [(f"under {r.below:,} characters", _size(r)) for r in cells.get(kind).size_rule]
    words = [f"{where} {s.layers}x{s.hidden} " + (f"with dropout {s.dropout:g}" if s.dropout else "without dropout")
             for where, s in [*rows, ("larger", FIXED)]]  # fmt: skip
    return "; ".join(words)


def fit_model(model: ModelConfig, n_chars: int, device: torch.device) -> tuple[ModelConfig, str | None]:
    """`model` with its layers, hidden size and dropout from the rule, and a
    few words for the start-up line when that is not the fixed default.
    Where the cell kind cannot train the rule's dropout on `device` (the
    LSTM on Apple MPS), the rule's model goes without dropout, and says so:
    a default must never be refused."""
    row = _row(n_chars, model.kind)
    if row is None:
        return replace(model, **asdict(FIXED)), None
    chosen, without = _size(row), ""
    try:
        model.cell.check_device(device, chosen.layers, chosen.dropout)
    except CharRNNError:
        chosen, without = replace(chosen, dropout=0.0), f", no dropout: the {model.kind} on {device.type} refuses it"
    fitted = replace(model, **asdict(chosen))
    if chosen == FIXED and not without:
        return fitted, None
    dropout = f", dropout {chosen.dropout:g}" if chosen.dropout else without
    why = f"--size auto: under {row.below:,} chars"
    return fitted, f"{chosen.layers}x{chosen.hidden} {fitted.kind.upper()}{dropout} ({why})"
