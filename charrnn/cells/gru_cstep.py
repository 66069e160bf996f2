"""The GRU layer's window loops with each step's elementwise maths in one
call of the C step (_gru_step.c), and the GEMMs through oneDNN.

Per step forward: one GEMM (gh = W_hh h + b_hh, a fresh (B, 3H) tensor) and
one C call that makes r, z, n and h(t+1) from gi and gh. Per step back: one C
call that writes the step's gradient rows (d_gi and d_gh, each contiguous
for its GEMMs) and dh(t-1)'s direct part, and one GEMM for the rest of
dh(t-1), which the next call adds in.

GEMM dtype: fp32 or fp64 as the input, or bf16 under autocast. With bf16 the
GEMMs read bf16 copies of x, h and the gradient rows, while the gates, the
state and every elementwise step stay fp32 (the C step converts as it reads
and writes), so only the GEMMs round as autocast's own would.

The GEMMs go through oneDNN (torch.ops.mkldnn._linear_pointwise, with the
weight packed once per window; _onednn says where): that is the library
PyTorch's own CPU LSTM runs on. It ran the per-step GEMMs and the window's
input GEMM faster than addmm (more so in bf16), while for the weight
gradients torch.mm stayed faster than packing either operand, so they stay
torch.mm. Without these ops, torch.addmm does the rest.
"""

from __future__ import annotations

import functools
import importlib.util
import platform

import torch

from ..device import onednn_has_bf16
from .gru_layout import RECURRENT_ORDER, blocks, window_gradients

# _gru_step.c's ABI, raised whenever an argument list changes: an editable
# install keeps the last build, which may be older than this file. Each
# ImportError below is the one line gru_cpu.c_step_problem reports.
ABI = 3
try:
    from . import _gru_step
except ImportError as e:
    if importlib.util.find_spec(f"{__package__}._gru_step") is None:
        raise ImportError("the GRU's C step (charrnn/cells/_gru_step.c) is not built: `pip install -e .` builds it") from None
    raise ImportError(f"the GRU's C step does not load ({e}): rebuild it with `pip install -e .`") from None
if getattr(_gru_step, "ABI", None) != ABI:
    raise ImportError(
        f"the GRU's C step is an older build (ABI {getattr(_gru_step, 'ABI', None)}, this charrnn needs {ABI}):"
        " rebuild it with `pip install -e .`"
    )

# The C step's kinds, by (state dtype, GEMM dtype).
KINDS = {
    (torch.float32, torch.float32): 0,
    (torch.float64, torch.float64): 1,
    (torch.float32, torch.bfloat16): 2,
}


def bf16_supported() -> bool:
    """Whether oneDNN runs bf16 GEMMs on this CPU: FastGRU takes bf16
    autocast only there."""
    return onednn_has_bf16()


@functools.cache
def _onednn(dtype: torch.dtype) -> bool:
    """Whether dtype's GEMMs go through oneDNN's packed linear: where this
    PyTorch has it (it is what its compiler uses for bf16 on the CPU), for
    bf16 where this CPU runs it, for fp32 on x86-64, where it was measured."""
    x86 = platform.machine().lower() in ("x86_64", "amd64")
    if not (dtype == torch.bfloat16 and bf16_supported() or dtype == torch.float32 and x86):
        return False
    try:
        w = torch.ops.mkldnn._reorder_linear_weight(torch.ones(2, 2, dtype=dtype))
        torch.ops.mkldnn._linear_pointwise(torch.ones(1, 2, dtype=dtype), w, None, "none", [], "")
    except (AttributeError, RuntimeError, NotImplementedError):
        return False
    return True


class Linear:
    """a -> a @ w.t() + bias, for a weight that stays fixed over a window."""

    def __init__(self, w: torch.Tensor, bias: torch.Tensor | None = None):
        self.onednn = torch.backends.mkldnn.enabled and _onednn(w.dtype)
        self.w = torch.ops.mkldnn._reorder_linear_weight(w.contiguous()) if self.onednn else w.t()
        self.bias = bias

    def __call__(self, a: torch.Tensor) -> torch.Tensor:
        if self.onednn:
            return torch.ops.mkldnn._linear_pointwise(a, self.w, self.bias, "none", [], "")
        return a @ self.w if self.bias is None else torch.addmm(self.bias, a, self.w)


def _check_raw(t: torch.Tensor, dtype: torch.dtype) -> None:
    """The C step reads a GEMM's output as raw rows: make sure, once per
    window, that this PyTorch made it that way."""
    if not t.is_contiguous() or t.dtype != dtype:
        raise RuntimeError(f"GRU step: a GEMM gave a {t.dtype} tensor of strides {t.stride()}, not contiguous {dtype}")


def _check_args(x, h0, w_ih, w_hh, b_ih, b_hh, gemm: torch.dtype) -> None:
    """What the C step cannot check itself: that every buffer it will be
    handed lives on the CPU, in a dtype it has a kind for, at the sizes
    the pointer arithmetic below assumes."""
    T, B, I = x.shape
    H = w_hh.shape[1]
    tensors = (x, h0, w_ih, w_hh, b_ih, b_hh)
    if any(t.device.type != "cpu" for t in tensors):
        raise ValueError("the GRU's C step runs on the CPU only")
    if (x.dtype, gemm) not in KINDS or any(t.dtype != x.dtype for t in tensors):
        raise ValueError(f"the GRU's C step takes fp32 or fp64 (bf16 GEMMs under fp32), not {x.dtype}/{gemm}")
    shapes = {"w_ih": (w_ih, (3 * H, I)), "w_hh": (w_hh, (3 * H, H)), "b_ih": (b_ih, (3 * H,)),
              "b_hh": (b_hh, (3 * H,)), "h0": (h0, (B, H))}  # fmt: skip
    for name, (t, shape) in shapes.items():
        if tuple(t.shape) != shape:
            raise ValueError(f"GRU layer: {name} has shape {tuple(t.shape)}, expected {shape}")


def forward(x, h0, w_ih, w_hh, b_ih, b_hh, gemm: torch.dtype):
    """-> what backward() needs: x2d (T*B, I) and hg (T+1, B, H) in the GEMM
    dtype, hs (T+1, B, H) from h0 on, gates (T, B, 3H): [r | z | gh_n] per
    step, and n (T, B, H), all but the first two in x's dtype."""
    _check_args(x, h0, w_ih, w_hh, b_ih, b_hh, gemm)
    T, B, _ = x.shape
    H = w_hh.shape[1]
    kind = KINDS[(x.dtype, gemm)]
    x2d = x.reshape(T * B, -1).to(gemm)
    gi = Linear(w_ih.to(gemm), b_ih.to(gemm))(x2d)
    _check_raw(gi, gemm)
    step = Linear(w_hh.to(gemm), b_hh.to(gemm))
    gates, n, hs = x.new_empty(T, B, 3 * H), x.new_empty(T, B, H), x.new_empty(T + 1, B, H)
    hs[0] = h0
    hg = hs if gemm == x.dtype else hs.new_empty(T + 1, B, H, dtype=gemm)
    hg[0] = h0
    # Step t's rows start t row-strides past each buffer's start (all contiguous).
    row, row_g = B * H * x.element_size(), B * H * hg.element_size()
    gip, gp, np_, hp, hgp = gi.data_ptr(), gates.data_ptr(), n.data_ptr(), hs.data_ptr(), hg.data_ptr()
    h_in = hg.unbind(0)
    for t in range(T):
        gh = step(h_in[t])
        if t == 0:
            _check_raw(gh, gemm)
        _gru_step.forward(kind, B, H, gip + t * 3 * row_g, gh.data_ptr(), hp + t * row, gp + t * 3 * row,
                          np_ + t * row, hp + (t + 1) * row, hgp + (t + 1) * row_g)  # fmt: skip
    return x2d, hg, hs, gates, n


def backward(x2d, hg, hs, gates, n, w_ih, w_hh, dout, need_dh0: bool):
    """-> dx (T*B, I), dh0 (None unless need_dh0) and the weights' and biases'
    gradients, each in its own input's dtype."""
    T, B, H = n.shape
    gemm, state = hg.dtype, hs.dtype
    kind = KINDS[(state, gemm)]
    d_gi, d_gh = hs.new_empty(T, B, 3 * H, dtype=gemm), hs.new_empty(T, B, 3 * H, dtype=gemm)
    back = Linear(blocks(w_hh, RECURRENT_ORDER).t().to(gemm))  # d_gh (B, 3H) -> (B, H)
    d_gh_t = d_gh.unbind(0)
    # dh(t-1)'s direct part goes to one of two buffers in turn; at step 0 the
    # C step reads zeros for dout(-1), and for the GEMM's part of dh(T-1).
    turns, zeros = (hs.new_empty(B, H), hs.new_empty(B, H)), hs.new_zeros(B, H)
    mm, sums = hs.new_zeros(B, H, dtype=gemm), hs.new_zeros(T, 4 * H)  # sums: the biases' gradients, per step
    row, row_g, row_s = B * H * hs.element_size(), B * H * d_gh.element_size(), 4 * H * sums.element_size()
    gp, np_, hp, dp = gates.data_ptr(), n.data_ptr(), hs.data_ptr(), dout.data_ptr()
    gip, ghp, sp = d_gi.data_ptr(), d_gh.data_ptr(), sums.data_ptr()
    carry = dp + (T - 1) * row
    for t in range(T - 1, -1, -1):
        out = turns[t % 2]
        _gru_step.backward(kind, B, H, carry, mm.data_ptr(), gp + t * 3 * row, np_ + t * row, hp + t * row,
                           dp + (t - 1) * row if t > 0 else zeros.data_ptr(), gip + t * 3 * row_g,
                           ghp + t * 3 * row_g, out.data_ptr(), sp + t * row_s)  # fmt: skip
        if t == 0 and not need_dh0:  # training's carried state is detached: skip the window's last GEMM
            break
        mm, carry = back(d_gh_t[t]), out.data_ptr()
        if t == T - 1:
            _check_raw(mm, gemm)
    dh0 = turns[0].add_(mm) if need_dh0 else None
    dx, *grads = window_gradients(x2d, w_ih.to(gemm), hg[:-1].reshape(T * B, H), d_gi.view(T * B, 3 * H),
                                  d_gh.view(T * B, 3 * H), sums.sum(0), linear=lambda a, w: Linear(w.t())(a))  # fmt: skip
    return dx.to(state), dh0, *(g.to(w_ih.dtype) for g in grads)
