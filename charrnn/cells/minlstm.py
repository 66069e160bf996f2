"""minLSTM (Feng et al. 2024, "Were RNNs All We Needed?"): an LSTM whose
gates and candidate read the input alone, with no output gate and no cell
state apart from h (gate blocks f, i, n):

    f = sigmoid(W_if x + b_if),  i = sigmoid(W_ii x + b_ii)
    n = g(W_in x + b_in)        g(x) = x + 1/2 above 0, sigmoid below (scan.g)
    h' = (f * h + i * n) / (f + i)

The gates are normalised to sum to one, so h is a running average of
positive candidates whatever the sequence's length: positive, unbounded
above. Like minGRU it is trained by a scan over each window (scan.py) and
sampled one character at a time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import scan
from .types import Range


class MinLSTM(scan.LinearRecurrence):
    name = "minlstm"
    summary = "minlstm (minLSTM, likewise)"
    gate_names = ("f", "i", "n")
    ranges = {"h": Range.unbounded, "f": Range.sigmoid, "i": Range.sigmoid, "n": Range.unbounded}
    default_lr = 8e-3  # 2e-3 / 4e-3 / 8e-3 gave 1.916 / 1.839 / 1.777 in 1.5 min (2x512)
    blocks = 3
    web_step = """
(gi, gh, prev, H) => {
  const h = new Float64Array(H), softplus = x => Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x)));
  for (let j = 0; j < H; j++) {
    const diff = softplus(-gi[H + j]) - softplus(-gi[j]), x = gi[2 * H + j], n = x >= 0 ? x + 0.5 : sig(x);
    h[j] = sig(diff) * prev[0][j] + sig(-diff) * n;
  }
  return [h];
}"""

    def coefficients(self, gi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # f/(f+i) and i/(f+i) as sigmoids of log f - log i and its negative
        # (log sigmoid(x) = -softplus(-x)): no 0/0 where both gates
        # underflow, and no 1 - (a share near 1)
        f, i, n = gi.chunk(3, dim=-1)
        diff = F.softplus(-i) - F.softplus(-f)
        return diff.sigmoid(), (-diff).sigmoid() * scan.g(n)

    def gates(self, gi: torch.Tensor) -> dict[str, torch.Tensor]:
        f, i, n = gi.chunk(3, dim=-1)
        return {"f": f.sigmoid(), "i": i.sigmoid(), "n": scan.g(n)}
