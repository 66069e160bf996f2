"""The GRU's training path on the CPU: nn.GRU's maths and weights, with a
backward written by hand (issue 12, item 1).

PyTorch's CPU nn.GRU is a loop of generic autograd ops: per character and
layer about a dozen small ops forward and a dozen back, among them a
weight-gradient GEMM per step. Here each layer is one autograd Function:

- forward: one GEMM for the whole window's input half, then per step one
  GEMM (W_hh h, added in place to the input half's r and z) and the gates'
  elementwise maths;
- backward: per step the pre-activation gradients, written side by side,
  and one GEMM for dh(t-1); the weight gradients and dx are three GEMMs
  over the whole window after the loop.

A step's elementwise maths is one call of a small C function (_gru_step.c,
an optional extension that setup.py builds where a C compiler works) in
place of four PyTorch ops forward and five back, which cost 10-30 us each in
the loop; where the extension is not built, the same ops run.

In fp32 this trained 1.28x as fast as a bare nn.GRU loop on 2 cores
(benchmarks/train_speed.py --gru). Under autocast nn.GRU's loop already runs its
GEMMs in bf16 (autocast reaches the matmuls inside it); a bf16 variant of
this path, GEMMs in bf16 and gates in fp32, was measured no faster than that,
the conversions eating the gain, so there nn.GRU's own path runs.

`FastGRU` is an nn.GRU (same parameters and checkpoints, and nn.GRU's own
path off the CPU and under autocast) whose forward takes this path on the
CPU in fp32. Unlike nn.GRU's, its output may not be changed in place
(autograd refuses: it is a view of what the backward keeps).
tests/test_gru_cpu.py holds it to nn.GRU within 1e-5, forward and gradients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .types import layer_weights

try:  # the optional C step (setup.py); without it, the same maths in PyTorch ops
    from . import _gru_step
except ImportError:
    _gru_step = None


def _blocks(w: torch.Tensor, order: tuple[int, int, int]) -> torch.Tensor:
    """A (3H, ...) tensor's gate blocks (r=0, z=1, n=2) in another order."""
    return torch.cat([w.chunk(3)[k] for k in order])


# The backward's per-step gradient row is [dN | dz | dr | dgh_n] (N, n's
# pre-activation; gh_n = W_hn h + b_hn): its first three blocks are the input
# half's gradient in block order n, z, r, its last three the recurrent half's
# in order z, r, n, so both GEMMs read it in place.
INPUT_ORDER, RECURRENT_ORDER = (2, 1, 0), (1, 0, 2)


def _fused(t: torch.Tensor) -> bool:
    """Whether the C step runs on t's buffers: built, and fp32 or fp64 on
    the CPU (FastGRU sends nothing else here, but the C step reads raw memory)."""
    return _gru_step is not None and t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64)


def _steps(t: torch.Tensor, columns) -> list[tuple[torch.Tensor, ...]]:
    """For each column slice (None: all), the per-step views of t[:, :, slice]."""
    return [(t if c is None else t[..., c]).unbind(0) for c in columns]


class GRULayer(torch.autograd.Function):
    """One layer over a window: x (T, B, I), h0 (B, H) -> h (T, B, H)."""

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh):
        with torch.autocast(x.device.type, enabled=False):
            hs, gates, n = _forward(x, h0, w_ih, w_hh, b_ih, b_hh)
        ctx.save_for_backward(x, w_ih, w_hh, hs, gates, n)
        return hs[1:]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dout):
        with torch.autocast(dout.device.type, enabled=False):
            return _backward(*ctx.saved_tensors, dout, need_dh0=ctx.needs_input_grad[1])


def _forward(x, h0, w_ih, w_hh, b_ih, b_hh):
    """-> hs (T+1, B, H) from h0 on, gates (T, B, 3H): [r | z | gh_n] per
    step, and n (T, B, H)."""
    T, B, _ = x.shape
    H = w_hh.shape[1]
    gi = torch.addmm(b_ih, x.reshape(T * B, -1), w_ih.t()).view(T, B, 3 * H)
    # gates(t) starts as [gi_r + b_hr | gi_z + b_hz | b_hn]; the step's GEMM adds W_hh h(t-1)
    gates = torch.empty_like(gi)
    torch.add(gi[..., : 2 * H], b_hh[: 2 * H], out=gates[..., : 2 * H])
    gates[..., 2 * H :] = b_hh[2 * H :]
    hs = x.new_empty(T + 1, B, H)
    hs[0] = h0
    n = x.new_empty(T, B, H)
    (_forward_fused if _fused(x) else _forward_ops)(gi, gates, hs, n, w_hh.t())
    return hs, gates, n


def _forward_fused(gi, gates, hs, n, w_t) -> None:
    """The loop with each step's elementwise maths in one call of the C step."""
    T, B, H = n.shape
    size, g = n.element_size(), gates.unbind(0)
    # Step t's rows start t strides past each buffer's start (all contiguous).
    row, wide = B * H * size, B * 3 * H * size
    gp, gip, hp, np_ = gates.data_ptr(), gi.data_ptr(), hs.data_ptr(), n.data_ptr()
    h = hs.unbind(0)
    for t in range(T):
        g[t].addmm_(h[t], w_t)
        _gru_step.forward(size, B, H, gp + t * wide, gip + t * wide, hp + t * row, np_ + t * row, hp + (t + 1) * row)


def _forward_ops(gi, gates, hs, n, w_t) -> None:
    """The same loop in PyTorch ops, where the C step is not built."""
    H = n.shape[2]
    # Every step's views made up front (unbind: one call each), not by
    # indexing in the loop: the loop's cost is per op, views included.
    g, rz, r, z, gh_n = _steps(gates, (None, slice(0, 2 * H), slice(0, H), slice(H, 2 * H), slice(2 * H, None)))
    gi_n, n_, h = gi[..., 2 * H :].unbind(0), n.unbind(0), hs.unbind(0)
    for t in range(len(n_)):
        g[t].addmm_(h[t], w_t)
        rz[t].sigmoid_()
        torch.addcmul(gi_n[t], r[t], gh_n[t], out=n_[t]).tanh_()
        torch.lerp(n_[t], h[t], z[t], out=h[t + 1])  # (1 - z) n + z h


def _backward(x, w_ih, w_hh, hs, gates, n, dout, need_dh0: bool):
    T, B, H = n.shape
    rows = hs.new_empty(T, B, 4 * H)  # per step [dN | dz | dr | dgh_n]
    w = _blocks(w_hh, RECURRENT_ORDER)
    backward_loop = _backward_fused if _fused(n) else _backward_ops
    dh = backward_loop(hs, gates, n, dout.contiguous(), rows, w, need_dh0)
    flat = rows.view(T * B, 4 * H)
    dw_hh = _blocks(flat[:, H:].t() @ hs[:-1].reshape(T * B, H), RECURRENT_ORDER)
    dw_ih = _blocks(flat[:, : 3 * H].t() @ x.reshape(T * B, -1), INPUT_ORDER)
    dx = (flat[:, : 3 * H] @ _blocks(w_ih, INPUT_ORDER)).view(x.shape)
    sums = flat.sum(0)
    db_ih, db_hh = _blocks(sums[: 3 * H], INPUT_ORDER), _blocks(sums[H:], RECURRENT_ORDER)
    return dx, dh, dw_ih, dw_hh, db_ih, db_hh


def _backward_fused(hs, gates, n, dout, rows, w, need_dh0: bool):
    """Fills rows, back from the last step; -> dL/dh0 (None unless need_dh0).
    Per step one call of the C step (rows[t], and dh(t-1)'s direct part in
    one of two buffers that take turns) and one GEMM (the rest of dh(t-1))."""
    T, B, H = n.shape
    size = n.element_size()
    row, wide = B * H * size, B * 3 * H * size
    gp, np_, hp, dp, rp = gates.data_ptr(), n.data_ptr(), hs.data_ptr(), dout.data_ptr(), rows.data_ptr()
    d_gh = rows[..., H:].unbind(0)
    turns = (hs.new_empty(B, H), hs.new_empty(B, H))
    dh, dh_ptr = None, dp + (T - 1) * row
    for t in range(T - 1, -1, -1):
        # training's carried state is detached: its window skips the last GEMM
        carry = turns[t % 2] if t > 0 or need_dh0 else None
        _gru_step.backward(size, B, H, dh_ptr, gp + t * wide, np_ + t * row, hp + t * row,
                           dp + (t - 1) * row if t > 0 else 0, rp + t * 4 * row,
                           carry.data_ptr() if carry is not None else 0)  # fmt: skip
        if carry is None:
            break
        dh = carry.addmm_(d_gh[t], w)
        dh_ptr = dh.data_ptr()
    return dh


def _backward_ops(hs, gates, n, dout, rows, w, need_dh0: bool):
    """The same loop in PyTorch ops, where the C step is not built."""
    T, B, H = n.shape
    r, z, gh_n = gates[..., :H], gates[..., H : 2 * H], gates[..., 2 * H :]
    one = hs.new_ones(())
    # Per step dN = dh f_n, dz = dh f_z, dr = dN f_r and dgh_n = dN r, with
    # the factors made for the whole window at once:
    f_n = torch.sub(one, z).mul_(torch.addcmul(one, n, n, value=-1))  # (1 - z)(1 - n^2)
    f_z = torch.sub(hs[:-1], n).mul_(torch.addcmul(z, z, z, value=-1))  # (h - n) z (1 - z)
    f_r = torch.addcmul(r, r, r, value=-1).mul_(gh_n)  # gh_n r (1 - r)
    d_n, d_z, d_r, d_gh_n, d_gh = _steps(rows, [slice(k * H, (k + 1) * H) for k in range(4)] + [slice(H, None)])
    f_n, f_z, f_r, r, z, dout = (v.unbind(0) for v in (f_n, f_z, f_r, r, z, dout))
    dh = dout[T - 1]
    for t in range(T - 1, -1, -1):
        torch.mul(dh, f_n[t], out=d_n[t])
        torch.mul(dh, f_z[t], out=d_z[t])
        torch.mul(d_n[t], f_r[t], out=d_r[t])
        torch.mul(d_n[t], r[t], out=d_gh_n[t])
        if t == 0 and not need_dh0:
            return None
        carried = torch.addcmul(dout[t - 1], dh, z[t]) if t > 0 else dh * z[t]  # dh(t-1), direct part
        dh = torch.addmm(carried, d_gh[t], w)
    return dh


class FastGRU(nn.GRU):
    """nn.GRU whose forward runs GRULayer on the CPU (batch_first, with biases,
    one direction: what charrnn builds); elsewhere nn.GRU's own."""

    def forward(self, input, hx=None):
        if not self._handles(input):
            return super().forward(input, hx)
        if hx is None:
            hx = input.new_zeros(self.num_layers, input.shape[0], self.hidden_size)
        self.check_forward_args(input, hx, None)  # nn.GRU's shape checks, before hx is sliced
        x, last = input.transpose(0, 1).contiguous(), []
        for k in range(self.num_layers):
            x = GRULayer.apply(x, hx[k].to(input.dtype), *layer_weights(self, k))
            last.append(x[-1])
            if k < self.num_layers - 1 and self.dropout and self.training:
                x = F.dropout(x, self.dropout, True)
        return x.transpose(0, 1), torch.stack(last)

    def _handles(self, input) -> bool:
        # Under autocast nn.GRU's own loop already runs its GEMMs in bf16;
        # GRULayer's bf16 variant was measured no faster (gru_speed.py).
        usual = self.batch_first and self.bias and not self.bidirectional and self.proj_size == 0
        return (
            usual and isinstance(input, torch.Tensor) and input.device.type == "cpu" and input.dim() == 3
            and input.shape[1] > 0 and input.dtype == self.weight_ih_l0.dtype
            and input.dtype in (torch.float32, torch.float64) and not torch.is_autocast_enabled("cpu")
        )  # fmt: skip
