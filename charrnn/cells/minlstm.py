"""minLSTM (Feng et al. 2024, "Were RNNs All We Needed?"): an LSTM whose
gates and candidate read the input alone, with no output gate and no cell
state apart from h (gate blocks f, i, n):

    f = sigmoid(W_if x + b_if),  i = sigmoid(W_ii x + b_ii)
    n = g(W_in x + b_in)        g(x) = x + 1/2 above 0, sigmoid below (scan.g)
    h' = (f * h + i * n) / (f + i)

The gates are normalised to sum to one, so h is a running average of
positive candidates whatever the sequence's length: positive, unbounded
above. Like minGRU it trains as one parallel scan over each window
(scan.py) and steps one character at a time for sampling and inspect.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import scan
from .base import Cell
from .types import Range


def gates(gi: torch.Tensor) -> dict[str, torch.Tensor]:
    f, i, n = gi.chunk(3, dim=-1)
    return {"f": f.sigmoid(), "i": i.sigmoid(), "n": scan.g(n)}


def shares(gi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """f / (f + i) and i / (f + i), the shares of h kept and of n taken, as
    sigmoids of log f - log i and its negative: no 0/0 where both gates
    underflow, and no 1 - (a share near 1) (log sigmoid(x) = -softplus(-x))."""
    f, i, _ = gi.chunk(3, dim=-1)
    diff = F.softplus(-i) - F.softplus(-f)
    return diff.sigmoid(), (-diff).sigmoid()


class MinLSTM(Cell):
    name = "minlstm"
    summary = "minlstm (minLSTM, likewise)"
    gate_names = ("f", "i", "n")
    ranges = {"h": Range.unbounded, "f": Range.sigmoid, "i": Range.sigmoid, "n": Range.unbounded}
    default_lr = 8e-3
    blocks = 3
    recurrent = False
    scans = True
    web_step = """
(gi, gh, prev, H) => {
  const h = new Float64Array(H), softplus = x => Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x)));
  for (let j = 0; j < H; j++) {
    const diff = softplus(-gi[H + j]) - softplus(-gi[j]), x = gi[2 * H + j], n = x >= 0 ? x + 0.5 : sig(x);
    h[j] = sig(diff) * prev[0][j] + sig(-diff) * n;
  }
  return [h];
}"""

    def step(self, gi, gh, prev):
        g, (kept, taken) = gates(gi), shares(gi)
        return (kept * prev[0] + taken * g["n"],), g

    def scan(self, gi, prev):
        gi = scan.widen(gi)
        kept, taken = shares(gi)
        h = scan.scan(kept, taken * scan.g(gi.chunk(3, dim=-1)[2]), prev[0])
        return h, (h[:, -1],)

    def record(self, gi, gh, h, prev):
        return gates(gi)
