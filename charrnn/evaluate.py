"""Scoring a model on text: loss in nats per character, bits per character."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .data import eval_chunks
from .distributed import Dist, sum_all
from .model import CharRNN


@dataclass(frozen=True)
class Score:
    loss: float  # mean nats per predicted character
    chars: int  # characters predicted

    @property
    def bpc(self) -> float:
        return self.loss / math.log(2)

    @property
    def perplexity(self) -> float:
        return math.exp(self.loss) if self.loss < 700 else math.inf

    def to_dict(self) -> dict:
        return {"loss": self.loss, "bpc": self.bpc, "perplexity": self.perplexity, "chars": self.chars}


@torch.inference_mode()
def score(model: CharRNN, ids: np.ndarray, batch_size: int = 1, seq_len: int = 256, d: Dist = Dist()) -> Score:
    """Mean loss of predicting ids[1:] from what precedes, the hidden state
    carried across the whole text. batch_size > 1 cuts the text into that
    many streams (faster; each stream starts from a zero state). Under
    torch.distributed the streams are shared out and the sums added up."""
    was_training = model.training
    model.eval()
    device = model.head.weight.device
    total, count, state = 0.0, 0, None  # summed in Python floats: MPS has no float64
    for x, y in eval_chunks(ids, batch_size, seq_len, d.rank, d.world):
        logits, state = model(x.to(device), state)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.to(device).reshape(-1), reduction="sum")
        total += loss.item()
        count += y.numel()
    total, count = sum_all([total, count], d, device)
    count = int(count)
    model.train(was_training)
    return Score(total / count if count else float("nan"), count)
