"""The types every cell module shares: the state, a layer's weights, the
range of a traced tensor."""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

# A model's recurrent state: one (layers, B, H) tensor per state part, h first.
State = tuple[torch.Tensor, ...]
# One layer's slice of it: one (B, H) tensor per state part, h first.
LayerState = tuple[torch.Tensor, ...]


class Range(str, Enum):
    """Where a traced tensor's values lie: inspect's saturation statistics
    look at sigmoid gates, and LSTMVis squashes unbounded states."""

    sigmoid = "sigmoid"  # (0, 1)
    tanh = "tanh"  # (-1, 1)
    unbounded = "unbounded"


class SizeRow(NamedTuple):
    """One row of a kind's --size auto rule: a corpus of fewer than `below`
    characters gets this model (training/size.py)."""

    below: int
    layers: int
    hidden: int
    dropout: float


class Recipe(NamedTuple):
    """A kind's measured best settings for a budget (--size auto;
    training/recipes.py): a run on a corpus of at least `min_chars`, on
    `device_type`, whose budget is a --time-limit of at most `max_seconds`
    (None: a run given no budget, which trains the default number of
    steps), gets `model` (ModelConfig fields) and `train` (TrainConfig
    fields). Of two recipes for one budget, the first that fits wins:
    a wider model, which needs `min_steps`, before the narrower one."""

    max_seconds: float | None
    min_chars: int
    device_type: str
    model: dict
    train: dict
    why: str  # the measurement behind it, for the start-up line
    # More than 0: only where the budget buys at least this many steps at
    # this machine's pace, timed before the run (training/pace.py).
    min_steps: int = 0

    @property
    def shape(self) -> str:
        return f"{self.model['layers']}x{self.model['hidden']}"

    def fits(self, n_chars: int, time_limit_s: float | None, device_type: str) -> bool:
        if n_chars < self.min_chars or device_type != self.device_type:
            return False
        if self.max_seconds is None:
            return time_limit_s is None
        return time_limit_s is not None and time_limit_s <= self.max_seconds


class LayerWeights(NamedTuple):
    w_ih: torch.Tensor  # (blocks*H, in)
    w_hh: torch.Tensor | None  # (blocks*H, H); None: a kind whose gates read the input alone (Cell.recurrent)
    b_ih: torch.Tensor  # (blocks*H,)
    b_hh: torch.Tensor | None  # (blocks*H,); None with w_hh

    def input(self, x: torch.Tensor) -> torch.Tensor:
        """gi = W_ih x + b_ih, (..., blocks*H)."""
        return F.linear(x, self.w_ih, self.b_ih)

    def recurrent(self, h: torch.Tensor) -> torch.Tensor | None:
        """gh = W_hh h + b_hh, (..., blocks*H); None for a kind without W_hh."""
        return None if self.w_hh is None else F.linear(h, self.w_hh, self.b_hh)

    def map(self, fn) -> LayerWeights:
        """fn applied to every weight there is (None stays None)."""
        return LayerWeights(*(None if t is None else fn(t) for t in self))


WEIGHT_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")  # nn.RNNBase's, in LayerWeights' order


def layer_weights(rnn: nn.Module, k: int) -> LayerWeights:
    """Layer k's weights from a module with nn.RNNBase's parameter names
    (weight_hh and bias_hh None where the module has none)."""
    return LayerWeights(*(getattr(rnn, f"{name}_l{k}", None) for name in WEIGHT_NAMES))
