"""The scan that trains the minimal cells (mingru.py, minlstm.py).

Their gates read the input alone, so a layer is a linear recurrence

    h(t) = a(t) * h(t-1) + b(t),    a(t) in (0, 1), b(t) > 0,

whose a and b are known for the whole window once its inputs are: the
matmuls that make them cover all B*T positions at once, and what is left
is this elementwise recurrence. The kinds make a and b from sigmoids,
which cannot overflow (minLSTM takes its ratio f/(f+i) as a sigmoid of a
difference of logs, so two gates that both underflow give no 0/0).

Two ways to run it, equal within float rounding (tests):
- `sequential`: T fused steps forward and T back (an autograd Function),
  each over (B, H). On a CPU this is the fastest of the three that
  `python benchmarks/scan_speed.py` measures: ahead of the parallel scan
  below, and further ahead of the log-space scan of Feng et al. (Heinsen
  2023: logcumsumexp of log b - log A).
- `parallel`: a Hillis-Steele scan, log2(T) steps each over the whole
  (B, T, H): few, large kernels, the shape a GPU wants. It composes
  (a, b) pairs by products and sums of positives, never dividing by a
  product of gates, so it needs no log space to stay finite: an A that
  underflows to 0 only drops a contribution smaller than float32 can hold.
  The log-space scan does divide (by A(s), in logs), and its sum
  log A(t) + logcumsumexp(...) cancels: it was off by up to 2.3e-4
  (relative) on a 128-character window with saturated gates, and 1.3e-5
  at initial ones, where these two stay within 5e-7 (same benchmark).

`scan` picks by device, and runs in float32 whatever autocast computed the
inputs in (in bfloat16, h would carry its 3 significant digits through
every step of the window).
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from .base import Cell
from .packing import InputHalf, Slot


def g(x: torch.Tensor) -> torch.Tensor:
    """The candidate's activation: x + 1/2 above 0, sigmoid below, so the
    candidate is positive and grows linearly, as tanh does not."""
    return torch.where(x >= 0, x + 0.5, x.sigmoid())


def widen(x: torch.Tensor) -> torch.Tensor:
    """x in float32 at least: the gates a scan reads are made in it, whatever autocast gave."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def scan(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """a, b (B, T, H) and h(0) (B, H) -> h (B, T, H), in float32 (float64
    if given it). No autocast context is needed: autocast lowers only
    matmul-like ops."""
    a, b, h0 = widen(a), widen(b), widen(h0)
    return algorithm(a.device)(a, b, h0)


def algorithm(device: torch.device):
    """`sequential` on the CPU (and meta), `parallel` elsewhere (see above)."""
    return sequential if device.type in ("cpu", "meta") else parallel


def parallel(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """h (B, T, H) by doubling: after the step of span d, position t holds
    the composition of the (up to) 2d pairs ending at t."""
    span = 1
    while span < a.shape[1]:
        b = torch.cat([b[:, :span], torch.addcmul(b[:, span:], a[:, span:], b[:, :-span])], 1)
        a = torch.cat([a[:, :span], a[:, span:] * a[:, :-span]], 1)
        span *= 2
    return torch.addcmul(b, a, h0[:, None])  # a(t) is now A(t), the product of all a up to t


def sequential(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """h (B, T, H), one fused step per position each way."""
    return _Sequential.apply(a, b, h0)


class _Sequential(torch.autograd.Function):
    """Time-major copies make each step's (B, H) slice contiguous. The
    backward is the same recurrence run in reverse:
    dh(t-1) += a(t) dh(t); then da(t) = dh(t) h(t-1), db(t) = dh(t)."""

    @staticmethod
    def forward(ctx, a, b, h0):
        a, b = a.transpose(0, 1).contiguous(), b.transpose(0, 1).contiguous()  # (T, B, H)
        h = torch.empty_like(b)
        prev = h0
        for t in range(len(a)):
            torch.addcmul(b[t], a[t], prev, out=h[t])
            prev = h[t]
        ctx.save_for_backward(a, h, h0)
        return h.transpose(0, 1)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_h):
        a, h, h0 = ctx.saved_tensors
        # (T, B, H), accumulated into: a copy always (contiguous() would
        # hand back the caller's own tensor where it is time-major already)
        dh = grad_h.transpose(0, 1).clone(memory_format=torch.contiguous_format)
        for t in range(len(a) - 1, 0, -1):
            dh[t - 1].addcmul_(a[t], dh[t])
        need_a, _, need_h0 = ctx.needs_input_grad
        da = None
        if need_a:
            da = torch.empty_like(dh)
            torch.mul(dh[1:], h[:-1], out=da[1:])
            torch.mul(dh[0], h0, out=da[0])
            da = da.transpose(0, 1)
        return da, dh.transpose(0, 1), a[0] * dh[0] if need_h0 else None


class LinearRecurrence(Cell):
    """What a kind whose layer is h' = a h + b inherits: it writes
    `coefficients` (gi -> a, b) and `gates` (gi -> the traced gates), and
    its step, scan and recording all follow from those two, so the paths
    cannot drift apart."""

    recurrent = False
    scans = True

    def coefficients(self, gi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """gi (..., blocks*H) -> a, b (..., H)."""
        raise NotImplementedError

    def gates(self, gi: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def step(self, gi, gh, prev):
        a, b = self.coefficients(gi)
        return (a * prev[0] + b,), self.gates(gi)

    def scan(self, gi, prev):
        h = scan(*self.coefficients(widen(gi)), prev[0])
        return h, (h[:, -1],)

    def record(self, gi, gh, h, prev):
        return self.gates(gi)

    def pack(self, slot: Slot) -> _Packed:
        return _Packed(self, slot)


class _Packed:
    """The sampler's layer: gi from one row lookup (layer 0) or one addmm,
    then h = a h + b in place, with no gates made for a trace."""

    def __init__(self, cell: LinearRecurrence, slot: Slot):
        self.cell, self.h, self.inputs = cell, slot.h, InputHalf(slot, cell.blocks * slot.hidden)

    def load(self, prev) -> None:
        self.h.copy_(prev[0])

    def state(self):
        return (self.h,)

    def step(self, ids: torch.Tensor) -> None:
        a, b = self.cell.coefficients(self.inputs(ids))
        torch.addcmul(b, a, self.h, out=self.h)
