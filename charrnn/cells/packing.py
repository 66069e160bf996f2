"""How a layer is laid out for the fast sampler (charrnn/stepper.py).

Sampling is one matrix-vector product per layer per character, so at batch
1 its cost is reading the weights once plus a fixed overhead per PyTorch
call. A packed layer makes as few calls as it can:

- layer 0 needs no input matmul: row `id` of `embed @ W_ih0^T + b` is that
  character's whole input contribution (one row lookup);
- a layer above it reads its input and its own state as one contiguous
  slice [below | h] of the stepper's buffer, so input and recurrent
  weights, stacked, make one `addmm`;
- results go into buffers made once (`out=`), and the new h is written in
  place, where the layer above reads it next.

Each kind's packed layer lives in its own module; `StepLayer` is the
default for a kind that brings none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch

from .types import LayerState, LayerWeights

if TYPE_CHECKING:
    from .base import Cell


@dataclass(frozen=True)
class Slot:
    """One layer's place in the stepper: its weights and its views of the
    buffer that holds every layer's h side by side, (B, layers*H)."""

    weights: LayerWeights  # float32, detached, on the stepper's device
    embed: torch.Tensor | None  # layer 0: the (V, E) embedding, to fold into a table; else None
    below: torch.Tensor | None  # layer k >= 1: the layer below's h, (B, H); else None
    h: torch.Tensor  # this layer's h, (B, H): read as the previous state, overwritten with the new one
    below_and_h: torch.Tensor | None  # layer k >= 1: [below | h] as one (B, 2H) view; else None

    @property
    def batch(self) -> int:
        return self.h.shape[0]

    @property
    def hidden(self) -> int:
        return self.h.shape[1]

    def buffer(self, width: int) -> torch.Tensor:
        """A scratch (B, width) tensor beside h (its device and dtype)."""
        return torch.empty(self.batch, width, device=self.h.device, dtype=self.h.dtype)


class PackedLayer(Protocol):
    """What `Cell.pack` returns: a layer the stepper steps in place."""

    def load(self, prev: LayerState) -> None:
        """Take the layer's state (one (B, H) tensor per state part)."""

    def state(self) -> LayerState:
        """The layer's state as `load` takes it (views of live buffers: copy to keep)."""

    def step(self, ids: torch.Tensor) -> None:
        """Advance one character: read the slot's input (layer 0: ids (B,)), write the new h into the slot."""


class SummedInputs:
    """gi + gh of a layer (kinds that add the two before any gate: LSTM,
    Elman RNN), with gate blocks put in `order`, in one or two calls."""

    def __init__(self, slot: Slot, order: list[int]):
        w, h = slot.weights, slot.hidden
        rows = _rows(order, h)
        self.slot, self.out = slot, slot.buffer(len(order) * h)
        if slot.embed is not None:  # (V, G*H): layer 0's whole input contribution per character
            self.table = (slot.embed @ w.w_ih.t() + w.b_ih + w.b_hh)[:, rows]
            self.w = _gather_rows([w.w_hh], order, h, slot.batch)
        else:
            self.table = None
            self.w = _gather_rows([w.w_ih, w.w_hh], order, h, slot.batch)
            self.b = (w.b_ih + w.b_hh)[rows]

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B,) -> the (B, G*H) pre-activations, in a reused buffer."""
        if self.table is not None:
            torch.index_select(self.table, 0, ids, out=self.out)
            return self.out.addmm_(self.slot.h, self.w)
        return torch.addmm(self.b, self.slot.below_and_h, self.w, out=self.out)


class InputHalf:
    """gi = W_ih x + b_ih of a layer alone (kinds that keep the recurrent
    half apart, or have none: GRU, minGRU, minLSTM), in one call: layer 0
    looks its row up in the folded table, a layer above it makes one addmm."""

    def __init__(self, slot: Slot, width: int):
        w = slot.weights
        self.below, self.out = slot.below, slot.buffer(width)
        if slot.embed is not None:  # (V, G*H): layer 0's whole input contribution per character
            self.table = slot.embed @ w.w_ih.t() + w.b_ih
        else:
            self.table, self.w_ih, self.b_ih = None, w.w_ih.t().contiguous(), w.b_ih

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B,) -> the (B, G*H) input half, in a reused buffer."""
        if self.table is not None:
            return torch.index_select(self.table, 0, ids, out=self.out)
        return torch.addmm(self.b_ih, self.below, self.w_ih, out=self.out)


class StepLayer:
    """Any kind's layer, stepped with the kind's own `step`: the default
    packing, exact and simple, at a few more calls per character."""

    def __init__(self, cell: Cell, slot: Slot):
        self.cell, self.slot = cell, slot
        # layer 0: each character's whole input contribution, one row lookup
        self.table = None if slot.embed is None else slot.weights.input(slot.embed)
        self.rest = tuple(torch.zeros_like(slot.h) for _ in cell.state_names[1:])  # state parts beyond h

    def load(self, prev: LayerState) -> None:
        self.slot.h.copy_(prev[0])
        self.rest = tuple(p.to(self.slot.h) for p in prev[1:])

    def state(self) -> LayerState:
        return (self.slot.h, *self.rest)

    @torch.no_grad()  # as the stepper promises: callers need no autograd context
    def step(self, ids: torch.Tensor) -> None:
        s, w = self.slot, self.slot.weights
        gi = self.table[ids] if self.table is not None else w.input(s.below)
        new, _ = self.cell.step(gi, w.recurrent(s.h), (s.h, *self.rest))
        s.h.copy_(new[0])
        self.rest = tuple(new[1:])


def _rows(order: list[int], h: int) -> list[int]:
    """Row indices that put gate blocks (each h rows) in the given order."""
    return [j * h + r for j in order for r in range(h)]


def _gather_rows(mats: list[torch.Tensor], order: list[int], h: int, batch: int) -> torch.Tensor:
    """[m1 | m2 | ...]^T with gate blocks in `order`: the (in, G*H) matrix a
    layer's addmm reads. At batch > 1 it is made contiguous in that (K, N)
    layout, which addmm reads faster; at batch 1 a transposed view reads
    as fast, and saves a transposing copy at start-up."""
    rows = torch.cat([torch.cat([m[src * h : (src + 1) * h] for m in mats], 1) for src in order], 0)
    return rows.t().contiguous() if batch > 1 else rows.t()
