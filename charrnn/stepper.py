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
    """Inference-only stepping of a CharRNN for a fixed batch size."""

    @torch.inference_mode()
    def __init__(self, model: CharRNN, batch: int, device: torch.device | None = None):
        c = model.config
        self.kind, self.hidden, self.layers, self.batch = c.kind, c.hidden, c.layers, batch
        dev = device or model.head.weight.device
        self.device = dev
        h, g = c.hidden, {CellKind.rnn: 1, CellKind.gru: 3, CellKind.lstm: 4}[c.kind]
        self.table = None  # (V, G*H) layer-0 input contribution per character
        self.w = []  # per layer: weights read by the one or two matmuls
        for k in range(c.layers):
            w_ih, w_hh, b_ih, b_hh = (t.detach().to(dev, torch.float32) for t in model.layer_weights(k))
            if c.kind is CellKind.lstm:
                w_ih, w_hh, b_ih, b_hh = (_ifog(t, h) for t in (w_ih, w_hh, b_ih, b_hh))
            if c.kind is CellKind.gru:
                # n = tanh(W_in x + b_in + r * (W_hn h + b_hn)): the two halves stay apart
                entry = (w_ih.t().contiguous(), b_ih, w_hh.t().contiguous(), b_hh)
                if k == 0:
                    self.table = model.embed.weight.detach().to(dev) @ w_ih.t() + b_ih
            else:
                bias = b_ih + b_hh
                if k == 0:
                    self.table = model.embed.weight.detach().to(dev) @ w_ih.t() + bias
                    entry = (w_hh.t().contiguous(),)
                else:
                    entry = (torch.cat([w_ih, w_hh], 1).t().contiguous(), bias)
            self.w.append(entry)
        self.head_w = model.head.weight.detach().to(dev).t().contiguous()  # (H, V)
        self.head_b = model.head.bias.detach().to(dev)
        # Buffers: xh[k] = [input of layer k | h of layer k], (B, 2H); layer 0 reads only h.
        self.xh = [torch.zeros(batch, 2 * h, device=dev) for _ in range(c.layers)]
        self.c = [torch.zeros(batch, h, device=dev) for _ in range(c.layers)] if c.kind is CellKind.lstm else []
        self.gates = torch.empty(batch, g * h, device=dev)
        self.act = torch.empty(batch, g * h, device=dev)
        self.tmp = torch.empty(batch, h, device=dev)
        self.logits = torch.empty(batch, model.config.vocab_size, device=dev)

    @torch.inference_mode()
    def load_state(self, state: State) -> None:
        """Take a CharRNN state ((layers, B, H) tensors)."""
        for k in range(self.layers):
            self.xh[k][:, self.hidden :].copy_(state[0][k])
            if k + 1 < self.layers:
                self.xh[k + 1][:, : self.hidden].copy_(state[0][k])
            if self.kind is CellKind.lstm:
                self.c[k].copy_(state[1][k])

    def state(self) -> State:
        """The current state as CharRNN state tensors (fresh copies)."""
        with torch.inference_mode():
            h = torch.stack([x[:, self.hidden :] for x in self.xh])
            state = (h, torch.stack(self.c)) if self.kind is CellKind.lstm else (h,)
        return tuple(t.clone() for t in state)

    @torch.inference_mode()
    def step(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B,) -> logits (B, V). The returned tensor is a reused buffer."""
        hsz = self.hidden
        for k in range(self.layers):
            xh = self.xh[k]
            h_view = xh[:, hsz:]
            if self.kind is CellKind.gru:
                self._gru(k, ids, xh, h_view)
            else:
                pre = self._preactivation(k, ids, xh)
                if self.kind is CellKind.lstm:
                    self._lstm(k, pre, h_view)
                else:
                    torch.tanh(pre, out=h_view)
            if k + 1 < self.layers:
                self.xh[k + 1][:, :hsz].copy_(h_view)
        return torch.addmm(self.head_b, self.xh[-1][:, hsz:], self.head_w, out=self.logits)

    def _preactivation(self, k: int, ids: torch.Tensor, xh: torch.Tensor) -> torch.Tensor:
        if k == 0:
            torch.index_select(self.table, 0, ids, out=self.gates)
            return self.gates.addmm_(xh[:, self.hidden :], self.w[0][0])
        w, b = self.w[k]
        return torch.addmm(b, xh, w, out=self.gates)

    def _lstm(self, k: int, pre: torch.Tensor, h_out: torch.Tensor) -> None:
        hsz = self.hidden
        act = self.act
        torch.sigmoid(pre[:, : 3 * hsz], out=act[:, : 3 * hsz])
        torch.tanh(pre[:, 3 * hsz :], out=act[:, 3 * hsz :])
        i, f, o, g = act[:, :hsz], act[:, hsz : 2 * hsz], act[:, 2 * hsz : 3 * hsz], act[:, 3 * hsz :]
        c = self.c[k]
        c.mul_(f).addcmul_(i, g)  # c = f * c + i * g
        torch.tanh(c, out=self.tmp)
        torch.mul(o, self.tmp, out=h_out)

    def _gru(self, k: int, ids: torch.Tensor, xh: torch.Tensor, h_out: torch.Tensor) -> None:
        hsz = self.hidden
        w_ih, b_ih, w_hh, b_hh = self.w[k]
        gi = torch.index_select(self.table, 0, ids) if k == 0 else torch.addmm(b_ih, xh[:, :hsz], w_ih)
        gh = torch.addmm(b_hh, h_out, w_hh, out=self.gates)
        rz = gi[:, : 2 * hsz].add_(gh[:, : 2 * hsz]).sigmoid_()
        n = gi[:, 2 * hsz :].addcmul_(rz[:, :hsz], gh[:, 2 * hsz :]).tanh_()  # tanh(in + r * hn)
        # h' = (1 - z) * n + z * h = n + z * (h - n)
        torch.sub(h_out, n, out=self.tmp)
        torch.addcmul(n, rz[:, hsz:], self.tmp, out=h_out)


def _ifog(t: torch.Tensor, h: int) -> torch.Tensor:
    """LSTM gate rows (i, f, g, o) -> (i, f, o, g)."""
    i, f, g, o = t.split(h, dim=0)
    return torch.cat([i, f, o, g], 0)
