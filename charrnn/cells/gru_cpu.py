"""The GRU's training path on the CPU: nn.GRU's maths and weights, with a
backward written by hand, so that the GRU trains about as fast as the LSTM.

PyTorch's CPU nn.GRU is a loop of generic autograd ops: per character and
layer about a dozen small ops forward and a dozen back, among them a
weight-gradient GEMM per step. Here each layer is one autograd Function:

- forward: one GEMM for the whole window's input half, then per step one
  GEMM (W_hh h) and the gates' elementwise maths;
- backward: per step the pre-activation gradients, written side by side,
  and one GEMM for dh(t-1); the weight gradients and dx are three GEMMs
  over the whole window after the loop.

Where the optional C step is built (setup.py), gru_cstep.py runs the loops:
a step's elementwise maths is one C call in place of four PyTorch ops forward
and five back (each a dispatch and a pass over memory), and the GEMMs go
through oneDNN;
under bf16 autocast its GEMMs run in bf16. Where it is not built, the loops
below run the same maths in PyTorch ops (fp32 and fp64; under autocast
nn.GRU's own loop runs, which already does its GEMMs in bf16).

`FastGRU` is an nn.GRU (same parameters and checkpoints, and nn.GRU's own
path off the CPU) whose forward takes this path on the CPU. Unlike
nn.GRU's, its output may not be changed in place (autograd refuses: it is a
view of what the backward keeps). tests/test_gru_cpu.py holds both paths to
nn.GRU within 1e-5, forward and gradients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .gru_layout import RECURRENT_ORDER, blocks, window_gradients
from .types import layer_weights


def _load_c_step():
    """gru_cstep, or None and why: the optional C step (setup.py); without
    it, the same maths run in PyTorch ops."""
    try:
        from . import gru_cstep
    except ImportError as e:
        return None, str(e)
    return gru_cstep, None


gru_cstep, _c_step_error = _load_c_step()


def c_step_problem() -> str | None:
    """None where the GRU's C step is built and current; else, in one line,
    why not and how to rebuild it (until then the GRU trains through
    PyTorch ops, slower)."""
    if gru_cstep is not None:
        return None
    reason = _c_step_error or "the GRU's C step is not in use"
    return f"{reason} (until then the GRU trains through PyTorch ops, slower)"


def _steps(t: torch.Tensor, columns) -> list[tuple[torch.Tensor, ...]]:
    """For each column slice (None: all), the per-step views of t[:, :, slice]."""
    return [(t if c is None else t[..., c]).unbind(0) for c in columns]


class GRULayer(torch.autograd.Function):
    """One layer over a window: x (T, B, I), h0 (B, H) -> h (T, B, H).
    gemm: the GEMMs' dtype (x's, or bf16 under autocast: the C step only)."""

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, gemm=None):
        gemm = gemm or x.dtype
        if x.shape[0] == 0:
            raise ValueError("GRU layer: a window of no time steps")
        with torch.autocast(x.device.type, enabled=False):
            if gru_cstep is not None and x.device.type == "cpu":
                saved = gru_cstep.forward(x, h0, w_ih, w_hh, b_ih, b_hh, gemm)
            elif gemm == x.dtype:
                saved = _forward(x, h0, w_ih, w_hh, b_ih, b_hh)
            else:
                raise RuntimeError(f"the GRU's {gemm} GEMMs need the C step (cells/_gru_step.c), not built here")
        ctx.save_for_backward(*saved, w_ih, w_hh)
        return saved[2][1:]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dout):
        with torch.autocast(dout.device.type, enabled=False):
            x2d, hg, hs, gates, n, w_ih, w_hh = ctx.saved_tensors
            args = (x2d, hg, hs, gates, n, w_ih, w_hh, dout.contiguous(), ctx.needs_input_grad[1])
            c_step = gru_cstep is not None and dout.device.type == "cpu"
            dx, *grads = (gru_cstep.backward if c_step else _backward)(*args)
        return dx.view(dout.shape[0], dout.shape[1], -1), *grads, None


def _forward(x, h0, w_ih, w_hh, b_ih, b_hh):
    """PyTorch ops where the C step is not built; -> what _backward needs:
    x2d, hs (twice: gru_cstep keeps a bf16 copy there), gates and n, as in
    gru_cstep.forward."""
    T, B, _ = x.shape
    H = w_hh.shape[1]
    x2d = x.reshape(T * B, -1)
    gi = torch.addmm(b_ih, x2d, w_ih.t()).view(T, B, 3 * H)
    # gates(t) starts as [gi_r + b_hr | gi_z + b_hz | b_hn]; the step's GEMM adds W_hh h(t-1)
    gates = torch.empty_like(gi)
    torch.add(gi[..., : 2 * H], b_hh[: 2 * H], out=gates[..., : 2 * H])
    gates[..., 2 * H :] = b_hh[2 * H :]
    hs = x.new_empty(T + 1, B, H)
    hs[0] = h0
    n = x.new_empty(T, B, H)
    w_t = w_hh.t()
    # Every step's views made up front (unbind: one call each), not by
    # indexing in the loop: the loop's cost is per op, views included.
    g, rz, r, z, gh_n = _steps(gates, (None, slice(0, 2 * H), slice(0, H), slice(H, 2 * H), slice(2 * H, None)))
    gi_n, n_, h = gi[..., 2 * H :].unbind(0), n.unbind(0), hs.unbind(0)
    for t in range(T):
        g[t].addmm_(h[t], w_t)
        rz[t].sigmoid_()
        torch.addcmul(gi_n[t], r[t], gh_n[t], out=n_[t]).tanh_()
        torch.lerp(n_[t], h[t], z[t], out=h[t + 1])  # (1 - z) n + z h
    return x2d, hs, hs, gates, n


def _backward(x2d, _hg, hs, gates, n, w_ih, w_hh, dout, need_dh0: bool):
    """PyTorch ops where the C step is not built; as gru_cstep.backward."""
    T, B, H = n.shape
    rows = hs.new_empty(T, B, 4 * H)  # per step [dN | dz | dr | dgh_n]
    dh0 = _backward_loop(hs, gates, n, dout, rows, blocks(w_hh, RECURRENT_ORDER), need_dh0)
    rows = rows.view(T * B, 4 * H)  # fp32 or fp64: the bias sums need no wider dtype
    dx, *grads = window_gradients(x2d, w_ih, hs[:-1].reshape(T * B, H), rows[:, : 3 * H], rows[:, H:], rows.sum(0))
    return dx, dh0, *(g.to(w_ih.dtype) for g in grads)


def _backward_loop(hs, gates, n, dout, rows, w, need_dh0: bool):
    """Fills rows, back from the last step; -> dL/dh0 (None unless need_dh0)."""
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
        x, last, gemm = input.transpose(0, 1).contiguous(), [], _gemm_dtype(input)
        for k in range(self.num_layers):
            x = GRULayer.apply(x, hx[k].to(input.dtype), *layer_weights(self, k), gemm)
            last.append(x[-1])
            if k < self.num_layers - 1 and self.dropout and self.training:
                x = F.dropout(x, self.dropout, True)
        return x.transpose(0, 1), torch.stack(last)

    def _handles(self, input) -> bool:
        usual = self.batch_first and self.bias and not self.bidirectional and self.proj_size == 0
        return (
            usual and isinstance(input, torch.Tensor) and input.device.type == "cpu" and input.dim() == 3
            and input.shape[1] > 0 and input.dtype == self.weight_ih_l0.dtype
            and input.dtype in (torch.float32, torch.float64) and _gemm_dtype(input) is not None
        )  # fmt: skip


def _gemm_dtype(input: torch.Tensor) -> torch.dtype | None:
    """The GEMMs' dtype for this input: its own, bf16 under bf16 autocast
    with the C step built and oneDNN's bf16 on this CPU; None where nn.GRU's
    own path should run (other autocast dtypes; autocast without those,
    where nn.GRU's loop already runs its GEMMs in bf16 and a PyTorch-ops
    variant measured no faster)."""
    if not torch.is_autocast_enabled("cpu"):
        return input.dtype
    bf16 = torch.get_autocast_dtype("cpu") == torch.bfloat16 and input.dtype == torch.float32
    return torch.bfloat16 if bf16 and gru_cstep is not None and gru_cstep.bf16_supported() else None
