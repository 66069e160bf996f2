"""minGRU (Feng et al. 2024, "Were RNNs All We Needed?"): a GRU whose gate
and candidate read the input alone (gate blocks z, n):

    z = sigmoid(W_iz x + b_iz)
    n = g(W_in x + b_in)        g(x) = x + 1/2 above 0, sigmoid below (scan.g)
    h' = (1 - z) * h + z * n

With no W_hh, a layer is a linear recurrence in h, trained by a scan over
each window (scan.py); sampling steps it one character at a time. h is a
running average of positive candidates, so it is positive and unbounded
above.
"""

from __future__ import annotations

import torch

from . import scan
from .types import Range


class MinGRU(scan.LinearRecurrence):
    name = "mingru"
    summary = "mingru (minGRU, Feng et al. 2024: gates read the input alone)"
    gate_names = ("z", "n")
    ranges = {"h": Range.unbounded, "z": Range.sigmoid, "n": Range.unbounded}
    # 1.5 min of 2x512 on tinyshakespeare: 2e-3 / 4e-3 / 8e-3 gave 1.888 /
    # 1.792 / 1.746; once the scan got faster, 8e-3 1.696 and 1.6e-2 1.715
    default_lr = 8e-3
    blocks = 2
    web_step = """
(gi, gh, prev, H) => {
  const h = new Float64Array(H);
  for (let j = 0; j < H; j++) {
    const x = gi[H + j], n = x >= 0 ? x + 0.5 : sig(x);
    h[j] = sig(-gi[j]) * prev[0][j] + sig(gi[j]) * n;
  }
  return [h];
}"""

    def coefficients(self, gi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z, n = gi.chunk(2, dim=-1)
        # 1 - z as sigmoid(-z): 1 - sigmoid(z) is 0 in float32 from z = 17 on
        return (-z).sigmoid(), z.sigmoid() * scan.g(n)

    def gates(self, gi: torch.Tensor) -> dict[str, torch.Tensor]:
        z, n = gi.chunk(2, dim=-1)
        return {"z": z.sigmoid(), "n": scan.g(n)}
