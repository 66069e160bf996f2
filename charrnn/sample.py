"""Autoregressive generation: each sampled character is fed back in as the
next input, the hidden state carried, so each character costs O(1) work."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from .data import Vocab
from .errors import CharRNNError
from .model import CharRNN


@dataclass(frozen=True)
class SampleConfig:
    length: int = 500  # characters generated per sample (the prime not counted)
    temperature: float = 1.0  # 0 means argmax
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None
    num_samples: int = 1
    stop: str | None = None  # a sample ends once it has produced this string
    skip_unknown: bool = False  # drop prime characters the model has never seen

    def __post_init__(self) -> None:
        if self.length < 0:
            raise CharRNNError(f"--length must be >= 0, not {self.length}")
        if not (self.temperature >= 0 and math.isfinite(self.temperature)):
            raise CharRNNError(f"--temperature must be a finite number >= 0, not {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise CharRNNError(f"--top-k must be at least 1, not {self.top_k}")
        if self.top_p is not None and not (0 < self.top_p <= 1):
            raise CharRNNError(f"--top-p must be in (0, 1], not {self.top_p}")
        if self.num_samples < 1:
            raise CharRNNError(f"--num-samples must be at least 1, not {self.num_samples}")
        if self.stop == "":
            raise CharRNNError("--stop must not be empty")


def filter_logits(logits: torch.Tensor, top_k: int | None, top_p: float | None) -> torch.Tensor:
    """Set to -inf every logit outside the top k, and outside the smallest
    set of most likely characters whose probability reaches top_p."""
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        # Drop a character when the ones before it already reach top_p.
        drop_sorted = (cum - sorted_logits.softmax(-1)) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def next_ids(logits: torch.Tensor, config: SampleConfig, generator: torch.Generator | None) -> torch.Tensor:
    """logits (B, V) -> ids (B,) under the config's temperature and filters."""
    if config.temperature == 0:
        return logits.argmax(-1)
    logits = filter_logits(logits / config.temperature, config.top_k, config.top_p)
    probs = logits.float().softmax(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.inference_mode()
def generate(model: CharRNN, vocab: Vocab, prime: str, config: SampleConfig) -> Iterator[list[str]]:
    """Yield, per generated position, one character for each sample (a list
    of num_samples strings; "" for a sample that has already stopped)."""
    device = model.head.weight.device
    model.eval()
    ids = vocab.encode(prime, skip_unknown=config.skip_unknown) if prime else None
    if ids is None or len(ids) == 0:
        # No prime: start every sample after a newline, as if a new line began.
        start = "\n" if "\n" in vocab.chars else vocab.chars[0]
        ids = vocab.encode(start)
    b = config.num_samples
    generator = torch.Generator(device=device)
    generator.manual_seed(config.seed if config.seed is not None else torch.seed())
    x = torch.as_tensor(ids.astype("int64"), device=device).unsqueeze(0).expand(b, -1)  # (B, P)
    logits, state = model(x)  # one fused pass over the prime
    logits = logits[:, -1]  # (B, V)
    tails = [""] * b
    done = [False] * b
    for _ in range(config.length):
        nxt = next_ids(logits, config, generator)
        chars = [vocab.chars[i] for i in nxt.tolist()]
        out = []
        for j, ch in enumerate(chars):
            if done[j]:
                out.append("")
                continue
            out.append(ch)
            if config.stop:
                tails[j] = (tails[j] + ch)[-len(config.stop) :]
                done[j] = tails[j] == config.stop
        yield out
        if all(done):
            return
        logits, state = model.step(nxt, state)
