"""A multi-layer module for any cell kind without a sequence module
(Cell.sequence_module): what such a kind trains with.

A kind that scans (`Cell.scans`: minGRU, minLSTM) runs its scan (cells/scan.py)
over each window, every op covering the whole (B, T, H) at once. Any other
kind steps its cell in a Python loop over time: exact, and slow (each
character of each layer is a few small PyTorch calls), so it suits tests
and experiments with new kinds, not long runs.

It keeps nn.RNNBase's parameter names (without weight_hh and bias_hh for a
kind that is not `recurrent`) and initialisation (every weight uniform in
+-1/sqrt(H)), and its calling convention: batch-first input (B, T, in),
the state as the kind's `to_module_state` gives it, dropout between layers while
training.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .types import LayerState, layer_weights


class SteppedRNN(nn.Module):
    def __init__(self, cell, input_size: int, hidden: int, layers: int, dropout: float):
        super().__init__()
        self.cell, self.layers, self.dropout = cell, layers, dropout
        bound = 1 / math.sqrt(hidden)
        rows = cell.blocks * hidden
        for k in range(layers):
            shapes = {"weight_ih": (rows, input_size if k == 0 else hidden), "bias_ih": (rows,)}
            if cell.recurrent:
                shapes |= {"weight_hh": (rows, hidden), "bias_hh": (rows,)}
            for name, shape in shapes.items():
                self.register_parameter(f"{name}_l{k}", nn.Parameter(torch.empty(shape).uniform_(-bound, bound)))

    def forward(self, x: torch.Tensor, state):
        """x (B, T, in) -> out (B, T, H), the new state (in the module form)."""
        state = self.cell.from_module_state(state)  # parts of (layers, B, H)
        new_state = []
        for k in range(self.layers):
            prev = tuple(part[k] for part in state)
            x, last = self._layer(k, x, prev)
            new_state.append(last)
            if k < self.layers - 1:
                x = F.dropout(x, self.dropout, self.training)
        return x, self.cell.to_module_state(tuple(torch.stack(part) for part in zip(*new_state)))

    def _layer(self, k: int, x: torch.Tensor, prev: LayerState) -> tuple[torch.Tensor, LayerState]:
        """Layer k over a window: x (B, T, in) -> h (B, T, H), its last state."""
        w = layer_weights(self, k)
        gi = w.input(x)  # (B, T, blocks*H): the whole window's input at once
        if self.cell.scans:
            return self.cell.scan(gi, prev)
        outs = []
        for t in range(x.shape[1]):
            prev, _ = self.cell.step(gi[:, t], w.recurrent(prev[0]), prev)
            outs.append(prev[0])
        return torch.stack(outs, 1), prev
