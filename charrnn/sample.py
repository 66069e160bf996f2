"""Autoregressive generation: each sampled character is fed back in as the
next input, the hidden state carried, so each character costs O(1) work."""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from .corpus import Vocab
from .corpus.documents import DOC_END
from .errors import CharRNNError
from .model import CharRNN
from .clamp import parse_clamps
from .prime import prime_ids, read_prime
from .stepper import FastStepper


MIN_TEMPERATURE = 1e-4
MAX_SAMPLES = 100_000  # one batch; beyond this, run the command several times
MAX_BEAM = 1000  # each step looks at 2N candidates in Python


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
    beam: int | None = None  # beam search with this many beams instead of drawing (charrnn/beam.py)
    length_penalty: float = 0.0  # beam search: rank finished beams by logprob / length**penalty
    clamp: tuple[str, ...] = ()  # units held at a value on every step, as 'l1.c:42=1.0' (clamp.py)

    def __post_init__(self) -> None:
        if self.length < 0:
            raise CharRNNError(f"--length must be >= 0, not {self.length}")
        if not (self.temperature >= 0 and math.isfinite(self.temperature)):
            raise CharRNNError(f"--temperature must be a finite number >= 0, not {self.temperature}")
        if 0 < self.temperature < MIN_TEMPERATURE:  # 1/T would overflow the tempered weights
            raise CharRNNError(f"--temperature below {MIN_TEMPERATURE} is argmax in all but name: use 0")
        if self.top_k is not None and self.top_k < 1:
            raise CharRNNError(f"--top-k must be at least 1, not {self.top_k}")
        if self.top_p is not None and not (0 < self.top_p <= 1):
            raise CharRNNError(f"--top-p must be in (0, 1], not {self.top_p}")
        if not 1 <= self.num_samples <= MAX_SAMPLES:
            raise CharRNNError(f"--num-samples must be in 1..{MAX_SAMPLES:,}, not {self.num_samples}")
        if self.stop == "":
            raise CharRNNError("--stop must not be empty")
        self._check_beam()

    def _check_beam(self) -> None:
        if self.beam is not None and self.clamp:
            raise CharRNNError("--clamp does not combine with --beam")
        if self.beam is None:
            if self.length_penalty != 0:
                raise CharRNNError("--length-penalty ranks beams: it needs --beam")
            return
        if not 1 <= self.beam <= MAX_BEAM:
            raise CharRNNError(f"--beam must be in 1..{MAX_BEAM:,}, not {self.beam}")
        if self.temperature != 1 or self.top_k is not None or self.top_p is not None:
            raise CharRNNError("--beam finds the most likely text under the model itself: "
                               "drop --temperature, --top-k and --top-p")  # fmt: skip
        if self.num_samples > self.beam:
            raise CharRNNError(f"--num-samples gives the N best of the beams: it must be <= --beam ({self.beam})")
        if not math.isfinite(self.length_penalty):
            raise CharRNNError(f"--length-penalty must be a finite number, not {self.length_penalty}")


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


@torch.inference_mode()
def generate(model: CharRNN, vocab: Vocab, prime: str, config: SampleConfig) -> Iterator[list[str]]:
    """Yield, per generated position, one character for each sample (a list
    of num_samples strings; "" for a sample that has already stopped)."""
    device = model.head.weight.device
    model.eval()
    b = config.num_samples
    scale = 1.0 / config.temperature if config.temperature > 0 else 1.0
    clamps = parse_clamps(config.clamp, model.config)
    stepper = FastStepper(model, b, device, logit_scale=scale, clamps=clamps)
    ids = prime_ids(vocab, prime, config.skip_unknown, device)
    if clamps:  # the prime too is read with the units held: a step at a time
        for i in ids:
            logits = stepper.step(i.expand(b))  # (B, V), tempered by the stepper's head
    else:  # read at once by the fused layers; every sample starts from its state and logits
        logits, state = read_prime(model, ids)
        stepper.load_state(tuple(s.expand(-1, b, -1).contiguous() for s in state))
        logits = logits.expand(b, -1) * scale  # (B, V), tempered like every later step's
    draw = Draws(config, b, vocab.size, device)
    stops = StopString(config.stop, b)
    ends = DocumentEnds(b) if DOC_END in vocab.chars else None
    for _ in range(config.length):
        nxt = draw(logits)
        chars = [vocab.chars[i] for i in nxt.tolist()]
        chars = stops.filter(ends.filter(chars) if ends else chars)
        yield chars
        if stops.all_done or (ends and ends.all_done):
            return
        logits = stepper.step(nxt)


class Draws:
    """Picks the next character of every sample from its (already tempered)
    logits with the Gumbel-max trick: argmax(logits + G), G ~ Gumbel(0, 1)
    per character, is an exact draw from softmax(logits), in two operations.

    Each sample has its own generator seeded from (seed, sample index), so
    sample i is reproducible and differs from sample j. Noise is drawn a
    block of steps at a time (one call per sample per block), so a batch of
    samples costs the same few operations per step as one.
    """

    BLOCK_FLOATS = 1 << 21  # noise kept at a time: 8 MB

    def __init__(self, config: SampleConfig, batch: int, vocab_size: int, device: torch.device):
        self.config = config
        base = config.seed if config.seed is not None else secrets.randbits(63)  # torch.seed() would reseed the process
        self.generators = [torch.Generator(device=device) for _ in range(batch)]
        for i, g in enumerate(self.generators):
            g.manual_seed(_sample_seed(base, i))
        self.block = max(1, min(1024, self.BLOCK_FLOATS // (batch * vocab_size)))
        self.left = config.length  # steps still to draw: the last block is no longer than needed
        self.noise = torch.empty(0, batch, vocab_size, device=device)  # (steps, B, V)
        self.buf = torch.empty(batch, vocab_size, device=device)
        self.t = 0

    def next_noise(self) -> torch.Tensor:
        """The next step's Gumbel noise, (B, V): what __call__ adds before the argmax."""
        if self.t == self.noise.shape[0]:
            steps, v = max(1, min(self.block, self.left)), self.noise.shape[2]
            tiny = torch.finfo(torch.float32).tiny  # u = 0 would give -inf noise
            blocks = [torch.rand(steps, v, generator=g, device=self.buf.device) for g in self.generators]
            self.noise = torch.stack(blocks, 1).clamp_(min=tiny).log_().neg_().log_().neg_()  # -log(-log(u))
            self.t = 0
        self.t += 1
        self.left -= 1
        return self.noise[self.t - 1]  # (B, V)

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        """logits (B, V) -> ids (B,)."""
        c = self.config
        if c.temperature == 0:
            return logits.argmax(-1)
        if c.top_k is not None or c.top_p is not None:
            logits = filter_logits(logits, c.top_k, c.top_p)
        return torch.add(logits, self.next_noise(), out=self.buf).argmax(-1)


def _sample_seed(base: int, index: int) -> int:
    """A well-mixed 63-bit seed for sample `index` of a run seeded `base`."""
    digest = hashlib.sha256(f"{base}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class DocumentEnds:
    """Ends each sample of a model of documents at its end marker, which is
    not given out: a sample is one document."""

    def __init__(self, batch: int):
        self.done = [False] * batch

    @property
    def all_done(self) -> bool:
        return all(self.done)

    def filter(self, chars: list[str]) -> list[str]:
        out = []
        for j, ch in enumerate(chars):
            self.done[j] = self.done[j] or ch == DOC_END
            out.append("" if self.done[j] else ch)
        return out


class StopString:
    """Ends each sample once it has produced the stop string."""

    def __init__(self, stop: str | None, batch: int):
        self.stop = stop
        self.tails = [""] * batch
        self.done = [False] * batch

    @property
    def all_done(self) -> bool:
        return self.stop is not None and all(self.done)

    def filter(self, chars: list[str]) -> list[str]:
        if self.stop is None:
            return chars
        out = []
        for j, ch in enumerate(chars):
            if self.done[j]:
                out.append("")
                continue
            out.append(ch)
            self.tails[j] = (self.tails[j] + ch)[-len(self.stop) :]
            self.done[j] = self.tails[j] == self.stop
        return out
