"""The LSTM, in PyTorch's formulation (gate blocks i, f, g, o):

    i, f, o = sigmoid(...), g = tanh(...)    of W_ih x + b_ih + W_hh h + b_hh
    c' = f * c + i * g
    h' = o * tanh(c')
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import CharRNNError
from .base import Cell
from .packing import Slot, SummedInputs
from .types import LayerWeights, Range, SizeRow, layer_weights


def gates(gi: torch.Tensor, gh: torch.Tensor) -> dict[str, torch.Tensor]:
    i, f, g, o = (gi + gh).chunk(4, dim=-1)
    return {"i": i.sigmoid(), "f": f.sigmoid(), "g": g.tanh(), "o": o.sigmoid()}


class LSTM(Cell):
    name = "lstm"
    state_names = ("h", "c")
    gate_names = ("i", "f", "g", "o")
    ranges = {"h": Range.tanh, "c": Range.unbounded, "i": Range.sigmoid, "f": Range.sigmoid,
              "g": Range.tanh, "o": Range.sigmoid}  # fmt: skip
    default_lr = 8e-3  # 5e-3 to 1.2e-2 were within 0.01 at 3.5 min (README, "Quality per minute")
    # Dropout 0.2 up to 2M characters: within 0.011 of the best of a grid on
    # 50k-5M slices of verse, code and prose (README, "Sizing the model").
    size_rule = (SizeRow(2_000_000, 2, 384, 0.2),)
    blocks = 4
    sequence_module = nn.LSTM
    web_step = """
(gi, gh, prev, H) => {
  const h = new Float64Array(H), c = new Float64Array(H);
  for (let j = 0; j < H; j++) {
    const i = sig(gi[j] + gh[j]), f = sig(gi[H + j] + gh[H + j]);
    const g = Math.tanh(gi[2 * H + j] + gh[2 * H + j]), o = sig(gi[3 * H + j] + gh[3 * H + j]);
    c[j] = f * prev[1][j] + i * g;
    h[j] = o * Math.tanh(c[j]);
  }
  return [h, c];
}"""

    def init_parameters(self, rnn: nn.Module, layers: int, hidden: int) -> None:
        # PyTorch adds two biases; their sum is the forget gate's bias.
        # Starting it at 1 keeps early cell states from being wiped each step.
        with torch.no_grad():
            for k in range(layers):
                w: LayerWeights = layer_weights(rnn, k)
                w.b_ih[hidden : 2 * hidden].fill_(1.0)
                w.b_hh[hidden : 2 * hidden].fill_(0.0)

    def check_device(self, device: torch.device, layers: int, dropout: float) -> None:
        if device.type == "mps" and layers > 1 and dropout > 0:
            raise CharRNNError(
                "on Apple MPS, PyTorch's LSTM backward ignores the dropout between layers (pytorch#190056):"
                " use --dropout 0, --layers 1 or --device cpu"
            )

    def step(self, gi, gh, prev):
        g = gates(gi, gh)
        c = g["f"] * prev[1] + g["i"] * g["g"]
        return (g["o"] * c.tanh(), c), g

    def record(self, gi, gh, h, prev):
        g = gates(gi, gh)  # every position at once: gh came from h(t-1)
        return {"c": _cell_sequence(g["f"], g["i"] * g["g"], prev[1]), **g}

    def pack(self, slot: Slot) -> _Packed:
        return _Packed(slot)


def _cell_sequence(f: torch.Tensor, ig: torch.Tensor, c0: torch.Tensor) -> torch.Tensor:
    """c(t) = f(t) * c(t-1) + i(t) g(t) for every t of a chunk (T, H): the
    step's cell update, one addcmul per position into one buffer."""
    c = torch.empty_like(f)
    prev = c0
    for t in range(len(f)):
        prev = torch.addcmul(ig[t], f[t], prev, out=c[t])
    return c


class _Packed:
    """Gate rows reordered (i, f, g, o) -> (i, f, o, g), so one sigmoid call
    covers three gates; c is kept beside the stepper's h buffer."""

    ORDER = [0, 1, 3, 2]

    def __init__(self, slot: Slot):
        h = slot.hidden
        self.h, self.pre = slot.h, SummedInputs(slot, self.ORDER)
        self.c, self.tmp = torch.zeros_like(slot.h), slot.buffer(h)
        pre, act = self.pre.out, slot.buffer(4 * h)
        self.sig_in, self.sig_out = pre[:, : 3 * h], act[:, : 3 * h]  # i, f, o
        self.tanh_in, self.tanh_out = pre[:, 3 * h :], act[:, 3 * h :]  # g
        self.i, self.f, self.o, self.g = act[:, :h], act[:, h : 2 * h], act[:, 2 * h : 3 * h], act[:, 3 * h :]

    def load(self, prev) -> None:
        self.h.copy_(prev[0])
        self.c.copy_(prev[1])

    def state(self):
        return (self.h, self.c)

    def step(self, ids: torch.Tensor) -> None:
        self.pre(ids)
        torch.sigmoid(self.sig_in, out=self.sig_out)
        torch.tanh(self.tanh_in, out=self.tanh_out)
        self.c.mul_(self.f).addcmul_(self.i, self.g)  # c = f * c + i * g
        torch.tanh(self.c, out=self.tmp)
        torch.mul(self.o, self.tmp, out=self.h)
