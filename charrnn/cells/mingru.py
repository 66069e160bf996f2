"""minGRU (Feng et al. 2024, "Were RNNs All We Needed?"): a GRU whose gate
and candidate read the input alone (gate blocks z, n):

    z = sigmoid(W_iz x + b_iz)
    n = g(W_in x + b_in)        g(x) = x + 1/2 above 0, sigmoid below (scan.g)
    h' = (1 - z) * h + z * n

With no W_hh, a layer is a linear recurrence in h, and trains as one
parallel scan over each window (scan.py); sampling and inspect step it one
character at a time. h is a running average of positive candidates, so it
is positive and unbounded above.
"""

from __future__ import annotations

import torch

from . import scan
from .base import Cell
from .types import Range


def gates(gi: torch.Tensor) -> dict[str, torch.Tensor]:
    z, n = gi.chunk(2, dim=-1)
    return {"z": z.sigmoid(), "n": scan.g(n)}


class MinGRU(Cell):
    name = "mingru"
    summary = "mingru (minGRU, Feng et al. 2024: gates read the input alone)"
    gate_names = ("z", "n")
    ranges = {"h": Range.unbounded, "z": Range.sigmoid, "n": Range.unbounded}
    default_lr = 8e-3
    blocks = 2
    recurrent = False
    scans = True
    web_step = """
(gi, gh, prev, H) => {
  const h = new Float64Array(H);
  for (let j = 0; j < H; j++) {
    const z = sig(gi[j]), x = gi[H + j], n = x >= 0 ? x + 0.5 : sig(x);
    h[j] = sig(-gi[j]) * prev[0][j] + z * n;
  }
  return [h];
}"""

    def step(self, gi, gh, prev):
        g = gates(gi)
        return ((-gi.chunk(2, dim=-1)[0]).sigmoid() * prev[0] + g["z"] * g["n"],), g

    def scan(self, gi, prev):
        z, n = scan.widen(gi).chunk(2, dim=-1)
        # sigmoid(-z), not 1 - sigmoid(z), which is 0 in float32 from z = 17 on
        h = scan.scan((-z).sigmoid(), z.sigmoid() * scan.g(n), prev[0])
        return h, (h[:, -1],)

    def record(self, gi, gh, h, prev):
        return gates(gi)
