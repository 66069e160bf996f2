"""A fast single-character step for generation, from pre-packed weights.

Each layer is packed by its cell kind (`Cell.pack`, see cells/packing.py
for what packing saves); this module holds what all kinds share: the
buffer of every layer's h, the embedding handed to layer 0 to fold, and
the head, with the sampling temperature folded into its weights.

Numbers equal `CharRNN.step` (and so the fused forward) within float
rounding; tests hold them within 1e-5.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .cells import Slot, State
from .clamp import Clamp, Holds
from .model import CharRNN


class FastStepper:
    """Inference-only stepping of a CharRNN for a fixed batch size.

    All layers' hidden states live side by side in one buffer,
    hs = [h0 | h1 | ... ] of shape (B, layers*H), so layer k >= 1 reads its
    input and its own state as one contiguous slice [h(k-1) | h(k)] and
    writes h(k) in place, where layer k+1 reads it next: no copies.
    """

    @torch.no_grad()
    def __init__(self, model: CharRNN, batch: int, device: torch.device | None = None, logit_scale: float = 1.0,
                 clamps: Sequence[Clamp] = ()):  # fmt: skip
        c = model.config
        self.holds = Holds(clamps, batch, model.cell.state_names, device or model.head.weight.device) if clamps else None
        dev = device or model.head.weight.device
        h = c.hidden
        self.hs = torch.zeros(batch, c.layers * h, device=dev)
        embed = model.embed.weight.detach().to(dev, torch.float32)
        self.layers = []
        for k in range(c.layers):
            weights = model.layer_weights(k).map(lambda t: t.detach().to(dev, torch.float32))
            slot = Slot(
                weights,
                embed=embed if k == 0 else None,
                below=self.hs[:, (k - 1) * h : k * h] if k > 0 else None,
                h=self.hs[:, k * h : (k + 1) * h],
                below_and_h=self.hs[:, (k - 1) * h : (k + 1) * h] if k > 0 else None,
            )
            self.layers.append(model.cell.pack(slot))
        # Sampling at temperature T divides the logits by T: fold it into the head.
        self.head_w = (model.head.weight.detach().to(dev) * logit_scale).t().contiguous()  # (H, V)
        self.head_b = model.head.bias.detach().to(dev) * logit_scale
        self.top = self.hs[:, (c.layers - 1) * h :]  # the last layer's h, which the head reads
        self.logits = torch.empty(batch, c.vocab_size, device=dev)

    @torch.no_grad()
    def load_state(self, state: State) -> None:
        """Take a CharRNN state ((layers, B, H) tensors)."""
        for k, layer in enumerate(self.layers):
            layer.load(tuple(part[k] for part in state))

    @torch.no_grad()
    def state(self) -> State:
        """A copy of the state, as `load_state` takes it ((layers, B, H) tensors)."""
        per_layer = [layer.state() for layer in self.layers]
        return tuple(torch.stack(parts) for parts in zip(*per_layer))

    @torch.no_grad()
    def reorder(self, rows: torch.Tensor) -> None:
        """Make row j of the batch a copy of row rows[j] (beam search's
        parents), every layer and state part."""
        self.load_state(tuple(part[:, rows] for part in self.state()))

    def step(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B,) -> logits (B, V), in a buffer reused by the next step.

        Needs no autograd context: every weight and buffer is detached."""
        for k, layer in enumerate(self.layers):
            layer.step(ids)
            if self.holds is not None:  # units held (clamp.py), before the layer above or the head reads them
                self.holds.apply(k, layer.state())
        return torch.addmm(self.head_b, self.top, self.head_w, out=self.logits)
