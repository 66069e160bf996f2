"""The types every cell module shares: the state, a layer's weights, the
range of a traced tensor."""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple

import torch
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


class LayerWeights(NamedTuple):
    w_ih: torch.Tensor  # (blocks*H, in)
    w_hh: torch.Tensor  # (blocks*H, H)
    b_ih: torch.Tensor  # (blocks*H,)
    b_hh: torch.Tensor  # (blocks*H,)


def layer_weights(rnn: nn.Module, k: int) -> LayerWeights:
    """Layer k's weights from a module with nn.RNNBase's parameter names."""
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    return LayerWeights(*(getattr(rnn, f"{name}_l{k}") for name in names))
