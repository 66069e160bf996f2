"""The Elman RNN: h' = tanh(W_ih x + b_ih + W_hh h + b_hh). No gates."""

from __future__ import annotations

import torch
from torch import nn

from .base import Cell
from .packing import Slot, SummedInputs
from .types import Range


class RNN(Cell):
    name = "rnn"
    summary = "rnn (Elman, tanh)"
    ranges = {"h": Range.tanh}
    # At 8e-3 an Elman RNN peaks early and then gets worse in runs of 10
    # minutes or more; 2e-3 was better at 3.5 minutes too (README, "Quality
    # per minute").
    default_lr = 2e-3
    sequence_module = nn.RNN  # tanh, its default
    web_step = """
(gi, gh, prev, H) => {
  const h = new Float64Array(H);
  for (let j = 0; j < H; j++) h[j] = Math.tanh(gi[j] + gh[j]);
  return [h];
}"""

    def step(self, gi, gh, prev):
        return ((gi + gh).tanh(),), {}

    def record(self, gi, gh, h, prev):
        return {}  # h is all there is, and the built module gave it

    def pack(self, slot: Slot) -> _Packed:
        return _Packed(slot)


class _Packed:
    def __init__(self, slot: Slot):
        self.h, self.pre = slot.h, SummedInputs(slot, [0])

    def load(self, prev) -> None:
        self.h.copy_(prev[0])

    def state(self):
        return (self.h,)

    def step(self, ids: torch.Tensor) -> None:
        torch.tanh(self.pre(ids), out=self.h)
