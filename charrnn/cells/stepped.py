"""A multi-layer module for any cell kind, stepping its cell in a Python
loop over time: what a kind without a fused kernel trains with.

It keeps nn.RNNBase's parameter names and initialisation (every weight
uniform in +-1/sqrt(H)), and its calling convention: batch-first input
(B, T, in), the state as the kind's `to_fused` gives it, dropout between
layers while training. Exact, and slow: each character of each layer is a
few small PyTorch calls, so it suits tests and experiments with new kinds,
not long runs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .types import layer_weights


class SteppedRNN(nn.Module):
    def __init__(self, cell, input_size: int, hidden: int, layers: int, dropout: float):
        super().__init__()
        self.cell, self.layers, self.dropout = cell, layers, dropout
        bound = 1 / math.sqrt(hidden)
        rows = cell.blocks * hidden
        for k in range(layers):
            shapes = {"weight_ih": (rows, input_size if k == 0 else hidden), "weight_hh": (rows, hidden),
                      "bias_ih": (rows,), "bias_hh": (rows,)}  # fmt: skip
            for name, shape in shapes.items():
                self.register_parameter(f"{name}_l{k}", nn.Parameter(torch.empty(shape).uniform_(-bound, bound)))

    def forward(self, x: torch.Tensor, state):
        """x (B, T, in) -> out (B, T, H), the new state (in the fused form)."""
        state = self.cell.from_fused(state)  # parts of (layers, B, H)
        new_state = []
        for k in range(self.layers):
            w = layer_weights(self, k)
            gi = F.linear(x, w.w_ih, w.b_ih)  # (B, T, blocks*H): the whole sequence's input at once
            prev = tuple(part[k] for part in state)
            outs = []
            for t in range(x.shape[1]):
                prev, _ = self.cell.step(gi[:, t], F.linear(prev[0], w.w_hh, w.b_hh), prev)
                outs.append(prev[0])
            new_state.append(prev)
            x = torch.stack(outs, 1)
            if k < self.layers - 1:
                x = F.dropout(x, self.dropout, self.training)
        return x, self.cell.to_fused(tuple(torch.stack(part) for part in zip(*new_state)))
