"""The cell kinds, one module each, and the registry that every other
module asks about a kind.

    from charrnn import cells
    cells.get("lstm").state_names      # ('h', 'c')
    cells.register(MyCell())           # a new kind: models, checkpoints, every command know it
                                       # (--model lists the kinds registered before charrnn.cli.options is imported)

A new kind is one `Cell` subclass (see base.py); registering it is all
that model, training, sampling, evaluation and inspection need.
"""

from __future__ import annotations

from ..errors import CharRNNError
from .base import Cell, check_kind
from .types import WEIGHT_NAMES, LayerState, LayerWeights, Range, State, layer_weights
from .gru import GRU
from .lstm import LSTM
from .mingru import MinGRU
from .minlstm import MinLSTM
from .packing import Slot
from .rnn import RNN

__all__ = ["DEFAULT", "WEIGHT_NAMES", "Cell", "LayerState", "LayerWeights", "Range", "Slot", "State", "get", "layer_weights", "names",
           "register", "unregister"]  # fmt: skip

# The kind `charrnn train` builds when --model is not given. The GRU wins
# quality per minute on tinyshakespeare (README), but inspect's story, the
# cells that track quotes and line position, is told by LSTM cells.
DEFAULT = "lstm"

_registry: dict[str, Cell] = {}


def register(cell: Cell) -> Cell:
    """Make a kind known by its name; returns it."""
    check_kind(cell)
    if cell.name in _registry:
        raise CharRNNError(f"cell kind {cell.name!r} is already registered")
    _registry[cell.name] = cell
    return cell


def unregister(name: str) -> None:
    """Forget a kind (a test's, or a plugin's being replaced)."""
    _registry.pop(name, None)


def get(name: str) -> Cell:
    """The registered kind called `name`."""
    try:
        return _registry[name]
    except (KeyError, TypeError):
        raise CharRNNError(f"unknown cell kind {name!r}: known kinds are {', '.join(_registry)}") from None


def names() -> list[str]:
    """Registered kinds, in registration order (built-ins: rnn, gru, lstm, mingru, minlstm)."""
    return list(_registry)


for _cell in (RNN(), GRU(), LSTM(), MinGRU(), MinLSTM()):
    register(_cell)
