"""The layout both GRU CPU paths (gru_cpu.py's PyTorch ops, gru_fused.py's
C step) share: nn.GRU's gate blocks (r, z, n) and the backward's row."""

from __future__ import annotations

import torch


def blocks(w: torch.Tensor, order: tuple[int, int, int]) -> torch.Tensor:
    """A (3H, ...) tensor's gate blocks (r=0, z=1, n=2) in another order."""
    return torch.cat([w.chunk(3)[k] for k in order])


# The backward's per-step gradient row is [dN | dz | dr | dgh_n] (N, n's
# pre-activation; gh_n = W_hn h + b_hn): its first three blocks are the input
# half's gradient in block order n, z, r, its last three the recurrent half's
# in order z, r, n, so both GEMMs read it in place.
INPUT_ORDER, RECURRENT_ORDER = (2, 1, 0), (1, 0, 2)


def window_gradients(x2d, w_ih, hs_in, rows, linear=torch.mm):
    """dx (T*B, I), dW_ih, dW_hh, db_ih, db_hh from the window's rows
    (T*B, 4H), its inputs x2d (T*B, I) and states hs_in (T*B, H) (h(t-1) per
    row), in the GEMMs' dtype (the caller casts); linear(a, w) = a @ w."""
    H = rows.shape[1] // 4
    dw_hh = blocks(rows[:, H:].t() @ hs_in, RECURRENT_ORDER)
    dw_ih = blocks(rows[:, : 3 * H].t() @ x2d, INPUT_ORDER)
    dx = linear(rows[:, : 3 * H], blocks(w_ih, INPUT_ORDER))
    sums = rows.sum(0, dtype=torch.float64 if rows.dtype == torch.float64 else torch.float32)
    db_ih, db_hh = blocks(sums[: 3 * H], INPUT_ORDER), blocks(sums[H:], RECURRENT_ORDER)
    return dx, dw_ih, dw_hh, db_ih, db_hh
