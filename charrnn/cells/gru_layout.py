"""The layout both GRU CPU paths (gru_cpu.py's PyTorch ops, gru_cstep.py's
C step) share: nn.GRU's gate blocks (r, z, n) and the backward's gradient
layout."""

from __future__ import annotations

import torch


def blocks(w: torch.Tensor, order: tuple[int, int, int]) -> torch.Tensor:
    """A (3H, ...) tensor's gate blocks (r=0, z=1, n=2) in another order."""
    return torch.cat([w.chunk(3)[k] for k in order])


# The backward's per-step gradients: d_gi = [dN | dz | dr], the input
# GEMMs' (blocks in order n, z, r), and d_gh = [dz | dr | dgh_n], the
# recurrent GEMMs' (order z, r, n); N is n's pre-activation, gh_n = W_hn h +
# b_hn. In these orders both are slices of one row [dN | dz | dr | dgh_n]
# (the PyTorch-ops path keeps that row), or two buffers (the C step's).
INPUT_ORDER, RECURRENT_ORDER = (2, 1, 0), (1, 0, 2)


def window_gradients(x2d, w_ih, hs_in, d_gi, d_gh, sums, linear=torch.mm):
    """dx (T*B, I), dW_ih, dW_hh, db_ih, db_hh from the window's gradients
    d_gi and d_gh (T*B, 3H), its inputs x2d (T*B, I) and states hs_in
    (T*B, H) (h(t-1) per row), in the GEMMs' dtype (the caller casts), and
    sums (4H,), the column sums of [dN | dz | dr | dgh_n] in fp32 (fp64 for
    fp64 inputs); linear(a, w) = a @ w."""
    H = d_gh.shape[1] // 3
    dw_hh = blocks(d_gh.t() @ hs_in, RECURRENT_ORDER)
    dw_ih = blocks(d_gi.t() @ x2d, INPUT_ORDER)
    dx = linear(d_gi, blocks(w_ih, INPUT_ORDER))
    # dz and dr are in both halves: sums[H:] is the recurrent half's
    db_ih, db_hh = blocks(sums[: 3 * H], INPUT_ORDER), blocks(sums[H:], RECURRENT_ORDER)
    return dx, dw_ih, dw_hh, db_ih, db_hh
