"""The GRU, in PyTorch's formulation (gate blocks r, z, n):

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
    z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    h' = (1 - z) * n + z * h
"""

from __future__ import annotations

import torch
from torch import nn

from .base import Cell
from .gru_cpu import FastGRU, c_step_problem
from .packing import InputHalf, Slot
from .types import Range, Recipe


def gates(gi: torch.Tensor, gh: torch.Tensor) -> dict[str, torch.Tensor]:
    ir, iz, in_ = gi.chunk(3, dim=-1)
    hr, hz, hn = gh.chunk(3, dim=-1)
    r = (ir + hr).sigmoid()
    z = (iz + hz).sigmoid()
    return {"r": r, "z": z, "n": (in_ + r * hn).tanh()}


class GRU(Cell):
    name = "gru"
    gate_names = ("r", "z", "n")
    ranges = {"h": Range.tanh, "r": Range.sigmoid, "z": Range.sigmoid, "n": Range.tanh}
    default_lr = 2e-3  # 8e-3 made 2x512 GRUs peak at step 500 (README, "Quality per minute")
    blocks = 3
    sequence_module = FastGRU  # nn.GRU, with a hand-written backward on the CPU (gru_cpu.py)
    # Measured on 2 cores of an AMD EPYC with AVX512-BF16 (docs/benchmarks.md):
    # tinyshakespeare by benchmarks/quality.py, the shipped corpus by
    # benchmarks/main_job.py.
    recipes = (
        Recipe(4 * 60, 500_000, "cpu", {"layers": 2, "hidden": 256}, {"batch_size": 64, "seq_len": 64, "lr": 5e-3},
               "1.453 nats/char on tinyshakespeare in 2 minutes"),
        # About 10 minutes: the widest model the budget buys about 1,300 steps of (11 epochs of tinyshakespeare),
        # regularised for as many epochs.
        Recipe(12 * 60, 500_000, "cpu", {"layers": 2, "hidden": 768, "dropout": 0.15, "embed_dropout": 0.25},
               {"batch_size": 64, "seq_len": 128, "lr": 3e-3, "weight_decay": 0.5, "min_lr_frac": 0.0, "eval_every": 2000},
               "1.391 nats/char on tinyshakespeare in 10 minutes and 1,354 steps", min_steps=1200),
        Recipe(12 * 60, 500_000, "cpu", {"layers": 2, "hidden": 512, "dropout": 0.1, "embed_dropout": 0.2},
               {"batch_size": 64, "seq_len": 128, "lr": 4e-3, "weight_decay": 0.3, "min_lr_frac": 0.0, "eval_every": 2000},
               "1.400 nats/char on tinyshakespeare in 10 minutes and 1,375 steps"),
        Recipe(None, 2_000_000, "cpu", {"layers": 2, "hidden": 256}, {"batch_size": 64, "seq_len": 64, "lr": 5e-3},
               "1.454 nats/char on the shipped corpus in 3000 steps and 264 s, where the 2x384 LSTM took 523 s to 1.482"),
    )  # fmt: skip
    web_step = """
(gi, gh, prev, H) => {
  const h = new Float64Array(H);
  for (let j = 0; j < H; j++) {
    const r = sig(gi[j] + gh[j]), z = sig(gi[H + j] + gh[H + j]);
    const n = Math.tanh(gi[2 * H + j] + r * gh[2 * H + j]);
    h[j] = (1 - z) * n + z * prev[0][j];
  }
  return [h];
}"""

    def slower_here(self, device: torch.device) -> str | None:
        return c_step_problem() if device.type == "cpu" else None

    def step(self, gi, gh, prev):
        g = gates(gi, gh)
        return ((1 - g["z"]) * g["n"] + g["z"] * prev[0],), g

    def record(self, gi, gh, h, prev):
        return gates(gi, gh)  # every position at once: gh came from h(t-1)

    def pack(self, slot: Slot) -> _Packed:
        return _Packed(slot)


class _Packed:
    """n needs W_hn h apart from W_in x, so the input and recurrent halves
    stay two matmuls (layer 0's input half is a table row)."""

    def __init__(self, slot: Slot):
        w, h = slot.weights, slot.hidden
        self.h, self.inputs = slot.h, InputHalf(slot, 3 * h)
        self.w_hh, self.b_hh = w.w_hh.t().contiguous(), w.b_hh
        self.gi, self.gh, act = self.inputs.out, slot.buffer(3 * h), slot.buffer(3 * h)
        self.tmp = slot.buffer(h)
        self.gi_rz, self.gi_n = self.gi[:, : 2 * h], self.gi[:, 2 * h :]
        self.gh_rz, self.gh_n = self.gh[:, : 2 * h], self.gh[:, 2 * h :]
        self.rz, self.r, self.z = act[:, : 2 * h], act[:, :h], act[:, h : 2 * h]

    def load(self, prev) -> None:
        self.h.copy_(prev[0])

    def state(self):
        return (self.h,)

    def step(self, ids: torch.Tensor) -> None:
        h = self.h
        self.inputs(ids)  # into self.gi
        torch.addmm(self.b_hh, h, self.w_hh, out=self.gh)
        torch.add(self.gi_rz, self.gh_rz, out=self.rz).sigmoid_()  # r, z
        n = self.gi_n.addcmul_(self.r, self.gh_n).tanh_()  # n = tanh(in + r * hn)
        # h' = (1 - z) * n + z * h = n + z * (h - n)
        torch.sub(h, n, out=self.tmp)
        torch.addcmul(n, self.z, self.tmp, out=h)
