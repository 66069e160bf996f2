"""A fast single-character step for generation, from pre-packed weights.

Sampling is one matrix-vector product per layer per character, so at batch
1 its cost is reading the weights once per step plus a fixed overhead per
PyTorch call. `nn.LSTM` called one character at a time pays a large fixed
overhead per call; `CharRNN.step` pays one per gate. This module pays as
few calls as possible:

- the embedding is folded into layer 0: row `id` of `embed @ W_ih0^T + b`
  is that character's whole input contribution, so layer 0 needs no input
  matmul at all (one row lookup);
- input and recurrent weights of layers above are stacked, so a layer's
  gate pre-activations are one `addmm` over the buffer [x | h];
- the sampling temperature is folded into the head's weights;
- LSTM gate rows are reordered (i, f, o, g) so one sigmoid covers three
  gates; every result is written into preallocated buffers (`out=`), and
  each layer writes its new h straight into the buffers that read it next.

Numbers equal `CharRNN.step` (and so the fused forward) within float
rounding; tests hold them within 1e-5.
"""

from __future__ import annotations

import torch

from .model import CellKind, CharRNN, State


class FastStepper:
    """Inference-only stepping of a CharRNN for a fixed batch size.

    All layers' hidden states live side by side in one buffer,
    hs = [h0 | h1 | ... ] of shape (B, layers*H), so layer k >= 1 reads its
    input and its own state as one contiguous slice [h(k-1) | h(k)] and
    writes h(k) in place, where layer k+1 reads it next: no copies.
    """

    @torch.no_grad()
    def __init__(self, model: CharRNN, batch: int, device: torch.device | None = None, logit_scale: float = 1.0):
        c = model.config
        self.kind, self.hidden, self.layers, self.batch = c.kind, c.hidden, c.layers, batch
        dev = device or model.head.weight.device
        h, g = c.hidden, {CellKind.rnn: 1, CellKind.gru: 3, CellKind.lstm: 4}[c.kind]
        embed = model.embed.weight.detach().to(dev, torch.float32)
        # LSTM gate rows are reordered (i, f, g, o) -> (i, f, o, g): one sigmoid covers three gates.
        order = [0, 1, 3, 2] if c.kind is CellKind.lstm else list(range(g))
        self.table = None  # (V, G*H): layer 0's whole input contribution per character
        self.w = []  # per layer: the (in, G*H) weights its one (GRU: two) matmuls read
        for k in range(c.layers):
            w_ih, w_hh, b_ih, b_hh = (t.detach().to(dev, torch.float32) for t in model.layer_weights(k))
            if c.kind is CellKind.gru:
                # n = tanh(W_in x + b_in + r * (W_hn h + b_hn)): input and recurrent halves stay apart
                entry = (w_ih.t().contiguous(), b_ih, w_hh.t().contiguous(), b_hh)
                if k == 0:
                    self.table = embed @ w_ih.t() + b_ih
            elif k == 0:
                self.table = (embed @ w_ih.t() + b_ih + b_hh)[:, _rows(order, h)]
                entry = (_gather_rows([w_hh], order, h, batch),)
            else:
                entry = (_gather_rows([w_ih, w_hh], order, h, batch), (b_ih + b_hh)[_rows(order, h)])
            self.w.append(entry)
        # Sampling at temperature T divides the logits by T: fold it into the head.
        self.head_w = (model.head.weight.detach().to(dev) * logit_scale).t().contiguous()  # (H, V)
        self.head_b = model.head.bias.detach().to(dev) * logit_scale
        self.hs = torch.zeros(batch, c.layers * h, device=dev)
        self.c = [torch.zeros(batch, h, device=dev) for _ in range(c.layers)] if c.kind is CellKind.lstm else []
        self.gates = torch.empty(batch, g * h, device=dev)
        self.act = torch.empty(batch, g * h, device=dev)
        self.tmp = torch.empty(batch, h, device=dev)
        self.logits = torch.empty(batch, c.vocab_size, device=dev)
        # Every view the step uses, made once: slicing costs about as much as
        # a small kernel, and there would be a dozen per layer per character.
        self.h_views = [self.hs[:, k * h : (k + 1) * h] for k in range(c.layers)]
        self.in_views = [None] + [self.hs[:, (k - 1) * h : (k + 1) * h] for k in range(1, c.layers)]
        gs, act = self.gates, self.act
        self.sig_in, self.sig_out = gs[:, : 3 * h], act[:, : 3 * h]  # LSTM: i, f, o
        self.tanh_in, self.tanh_out = gs[:, 3 * h :], act[:, 3 * h :]  # LSTM: g
        self.i, self.f, self.o, self.g = act[:, :h], act[:, h : 2 * h], act[:, 2 * h : 3 * h], act[:, 3 * h :]
        self.gh_rz, self.gh_n = gs[:, : 2 * h], gs[:, 2 * h :]  # GRU: recurrent part
        self.gi = torch.empty(batch, g * h, device=dev)  # GRU: input part
        self.gi_rz, self.gi_n = self.gi[:, : 2 * h], self.gi[:, 2 * h :]
        self.rz, self.r, self.z = act[:, : 2 * h], act[:, :h], act[:, h : 2 * h]

    def h(self, k: int) -> torch.Tensor:
        return self.h_views[k]

    @torch.no_grad()
    def load_state(self, state: State) -> None:
        """Take a CharRNN state ((layers, B, H) tensors)."""
        for k in range(self.layers):
            self.h_views[k].copy_(state[0][k])
            if self.kind is CellKind.lstm:
                self.c[k].copy_(state[1][k])

    @torch.no_grad()
    def state(self) -> State:
        """The current state as CharRNN state tensors (fresh copies)."""
        h = torch.stack(self.h_views)
        return (h, torch.stack(self.c)) if self.kind is CellKind.lstm else (h,)

    def step(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B,) -> logits (B, V), in a buffer reused by the next step.

        Needs no autograd context: every weight and buffer is detached."""
        for k in range(self.layers):
            h_out = self.h_views[k]
            if self.kind is CellKind.gru:
                self._gru(k, ids, h_out)
                continue
            pre = self._preactivation(k, ids)
            if self.kind is CellKind.lstm:
                self._lstm(k, h_out)
            else:
                torch.tanh(pre, out=h_out)
        return torch.addmm(self.head_b, self.h_views[-1], self.head_w, out=self.logits)

    def _preactivation(self, k: int, ids: torch.Tensor) -> torch.Tensor:
        if k == 0:
            torch.index_select(self.table, 0, ids, out=self.gates)
            return self.gates.addmm_(self.h_views[0], self.w[0][0])
        w, b = self.w[k]
        return torch.addmm(b, self.in_views[k], w, out=self.gates)

    def _lstm(self, k: int, h_out: torch.Tensor) -> None:
        torch.sigmoid(self.sig_in, out=self.sig_out)
        torch.tanh(self.tanh_in, out=self.tanh_out)
        c = self.c[k]
        c.mul_(self.f).addcmul_(self.i, self.g)  # c = f * c + i * g
        torch.tanh(c, out=self.tmp)
        torch.mul(self.o, self.tmp, out=h_out)

    def _gru(self, k: int, ids: torch.Tensor, h_out: torch.Tensor) -> None:
        w_ih, b_ih, w_hh, b_hh = self.w[k]
        if k == 0:
            torch.index_select(self.table, 0, ids, out=self.gi)
        else:
            torch.addmm(b_ih, self.h_views[k - 1], w_ih, out=self.gi)
        torch.addmm(b_hh, h_out, w_hh, out=self.gates)
        torch.add(self.gi_rz, self.gh_rz, out=self.rz).sigmoid_()  # r, z
        n = self.gi_n.addcmul_(self.r, self.gh_n).tanh_()  # n = tanh(in + r * hn)
        # h' = (1 - z) * n + z * h = n + z * (h - n)
        torch.sub(h_out, n, out=self.tmp)
        torch.addcmul(n, self.z, self.tmp, out=h_out)


def _rows(order: list[int], h: int) -> list[int]:
    """Row indices that put gate blocks (each h rows) in the given order."""
    return [j * h + r for j in order for r in range(h)]


def _gather_rows(mats: list[torch.Tensor], order: list[int], h: int, batch: int) -> torch.Tensor:
    """[m1 | m2 | ...]^T with gate blocks in `order`: the (in, G*H) matrix a
    layer's addmm reads. At batch > 1 it is made contiguous in that (K, N)
    layout, which addmm reads 20% faster; at batch 1 a transposed view reads
    as fast, and saves a transposing copy at start-up."""
    rows = torch.cat([torch.cat([m[src * h : (src + 1) * h] for m in mats], 1) for src in order], 0)
    return rows.t().contiguous() if batch > 1 else rows.t()
