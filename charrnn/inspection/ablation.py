"""Ablation: what a unit does, not only what it goes with.

A unit that correlates with "inside quotes" may carry that information
without the model using it. Holding the unit at 0 (or at its mean) on
every step (clamp.py) and reading the same text again shows what the model
loses without it: the rise in loss per character, split by where a feature
is active and where it is not. A quote unit that matters raises the loss
inside quotes far more than outside.

The text is read as parallel streams, every ablation and the model as it
is side by side in one stepper batch, so each variant sees the same
characters. Each stream starts `WARMUP` characters before its span from
the model's true state there (one fused pass finds it), so the model as it
is scores exactly what one stream would; an ablated row is held from there
on, and has the warm-up to settle into its ablated state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..clamp import Clamp, Unit
from ..corpus import Vocab
from ..corpus.documents import DOC_END, END_ID
from ..device import ieee_fp32
from ..model import CharRNN
from ..prime import states_before
from ..stepper import FastStepper
from .record import as_model_reads

STREAMS = 16  # parallel streams over the text
WARMUP = 64  # characters each stream reads before its span, so its state is not a cold start
NO_EFFECT = 0.01  # nats/char: an ablation that raises the loss less than this, inside and out, does nothing
ABLATE_CHARS = 20_000  # at most this many characters for the finder's ablation column ...
ABLATE_BUDGET = 200_000  # ... and at most this many characters x (units + 1): its cost grows with both


@dataclass(frozen=True)
class Effect:
    """The rise in loss (nats/char) with a unit held, where a feature is
    active and where it is not (None: no such characters)."""

    inside: float | None
    outside: float | None

    @property
    def does_nothing(self) -> bool:
        return all(v is None or v < NO_EFFECT for v in (self.inside, self.outside))

    def to_dict(self) -> dict:
        return {"inside": self.inside, "outside": self.outside, "does_nothing": self.does_nothing}


@dataclass(frozen=True)
class Ablation:
    """One unit held at `value` over a text, against the model as it is."""

    unit: str  # as inspect names it, e.g. "l1.h:42"
    value: float
    chars: int  # characters predicted
    loss: float  # mean nats/char, the model as it is
    ablated_loss: float  # with the unit held
    features: dict[str, Effect]

    def to_dict(self) -> dict:
        return {"unit": self.unit, "value": self.value, "chars": self.chars, "loss": self.loss,
                "ablated_loss": self.ablated_loss, "features": {k: e.to_dict() for k, e in self.features.items()}}  # fmt: skip


def active(values: np.ndarray) -> np.ndarray | None:
    """Where a feature counts as active: a yes/no feature where it is 1; a
    graded one (depth, position in line) where it is above its median.
    None where that splits nothing."""
    binary = set(np.unique(values)) <= {0.0, 1.0}
    mask = values == 1 if binary else values > np.median(values)
    return mask if 0 < mask.sum() < len(mask) else None


@torch.inference_mode()
def held_losses(model: CharRNN, ids: torch.Tensor, variants: Sequence[Sequence[Clamp]],
                streams: int = STREAMS, warmup: int = WARMUP) -> np.ndarray:  # fmt: skip
    """(variants, T - 1): the loss of each next character of `ids` (T,) with
    each variant's units held (an empty variant: the model as it is)."""
    n = len(ids) - 1
    s = max(1, min(streams, n // max(1, 2 * warmup)))
    span = math.ceil(n / s)
    device = model.head.weight.device
    starts = torch.arange(s, device=device) * span  # the first position each stream scores
    reads = (starts - warmup).clamp(min=0)  # where it begins reading
    ends = (starts + span).clamp(max=n)
    rows = len(variants) * s
    clamps = [Clamp(c.unit, c.value, v * s + j) for v, variant in enumerate(variants) for c in variant for j in range(s)]
    stepper = FastStepper(model.eval(), rows, device, clamps=clamps)
    out = torch.full((len(variants), n), float("nan"), device=device)
    with ieee_fp32(device):
        stepper.load_state(tuple(part.repeat(1, len(variants), 1) for part in states_before(model, ids, reads.tolist())))
        for step in range(int((ends - reads).max())):
            pos = reads + step  # (s,) the character each stream reads now
            at = pos.clamp(max=n - 1)
            if model.config.documents:  # each document from the zero state, as in training
                fresh = (ids[at] == END_ID).repeat(len(variants))
                if bool(fresh.any()):
                    stepper.load_state(tuple(s.masked_fill(fresh[None, :, None], 0.0) for s in stepper.state()))
            logits = stepper.step(ids[at].repeat(len(variants)))
            logp = F.log_softmax(logits, -1).gather(1, ids[at + 1].repeat(len(variants))[:, None])
            keep = (pos >= starts) & (pos < ends)
            out[:, pos[keep]] = -logp.view(len(variants), s)[:, keep]
    return out.cpu().numpy()


def ablate(model: CharRNN, vocab: Vocab, text: str, held: Sequence[tuple[Unit, float]],
           features: dict[str, np.ndarray]) -> list[Ablation]:  # fmt: skip
    """Each (unit, value) held alone over `text`, with its effect on each
    feature (arrays over the text's characters)."""
    documents = bool(model.config.documents)
    read = (DOC_END if documents else "") + as_model_reads(text, model.config.documents)  # read as record reads it
    ids = torch.as_tensor(vocab.encode(read).astype(np.int64), device=model.head.weight.device)
    losses = held_losses(model, ids, [()] + [(Clamp(unit, value),) for unit, value in held])[:, int(documents):]
    base, masks = losses[0], {name: active(values[:-1]) for name, values in features.items()}
    out = []
    for (unit, value), ablated in zip(held, losses[1:]):
        rise = ablated - base
        effects = {name: Effect(_mean(rise[m]), _mean(rise[~m])) for name, m in masks.items() if m is not None}
        out.append(Ablation(unit.name, value, len(base), float(base.mean()), float(ablated.mean()), effects))
    return out


def _mean(values: np.ndarray) -> float | None:
    return float(values.mean()) if len(values) else None
