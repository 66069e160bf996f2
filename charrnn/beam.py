"""Beam search: the most likely continuation of a prime under the model.

Drawing characters one at a time (sample.py) gives text the model finds
typical; argmax gives, at each step, the locally best character, which can
lead into text that is unlikely overall. Beam search keeps the N most
likely continuations so far (the beams) and extends each by every
character, keeping the N best of the N*V candidates at every step. N = 1
is argmax; larger N finds continuations at least as likely, in practice.

Every beam is a row of one FastStepper batch, so a step costs one batched
step of the model plus a top-k; after the top-k, each row takes the state
of the beam it extends (`FastStepper.reorder`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from .corpus import Vocab
from .corpus.documents import DOC_END
from .errors import CharRNNError
from .model import CharRNN
from .prime import prime_ids, read_prime
from .stepper import FastStepper

if TYPE_CHECKING:
    from .sample import SampleConfig  # which imports this module


@dataclass(frozen=True)
class Hypothesis:
    """One finished beam."""

    text: str  # the continuation (the prime not included)
    logprob: float  # natural log of the model's probability of `text` after the prime
    score: float  # what beams are ranked by: logprob / len(text) ** length_penalty
    stopped: bool  # it ended with --stop before --length


@dataclass
class _Beams:
    """The live beams: row j of the stepper's batch is beam j."""

    scores: torch.Tensor  # (N,) float64 log-probabilities; -inf for an unused row
    ids: torch.Tensor  # (N, length) the characters so far, filled up to the current step
    tails: list[str]  # each beam's last len(stop) characters (for --stop)


@torch.inference_mode()
def beam_search(model: CharRNN, vocab: Vocab, prime: str, config: SampleConfig) -> list[Hypothesis]:
    """The config.num_samples best continuations of `prime`, best first,
    each at most config.length characters (ending early with config.stop)."""
    assert config.beam is not None
    if config.length == 0:
        return [Hypothesis("", 0.0, 0.0, False)] * config.num_samples
    device = model.head.weight.device
    model.eval()
    n = config.beam
    logits, state = read_prime(model, prime_ids(vocab, prime, config.skip_unknown, device))
    stepper = FastStepper(model, n, device)
    stepper.load_state(tuple(s.expand(-1, n, -1).contiguous() for s in state))
    # The bookkeeping lives on the CPU in float64 (MPS has none); only the
    # stepper's batch is on the device.
    scores = torch.full((n,), -math.inf, dtype=torch.float64)
    scores[0] = 0.0  # at first every row holds the same state: one live beam, not N copies
    beams = _Beams(scores, torch.zeros(n, config.length, dtype=torch.long), [""] * n)
    logp = _log_probs(logits).expand(n, -1)  # (N, V)
    finished: list[Hypothesis] = []
    for t in range(config.length):
        step = _extend(beams, logp, t, vocab, config, finished)
        if step is None or _settled(beams, finished, config.num_samples, config.length_penalty):
            break
        if t + 1 < config.length:
            rows, chars = step
            stepper.reorder(rows.to(device))
            logp = _log_probs(stepper.step(chars.to(device)))
    else:
        finished += [_hypothesis(vocab, beams.ids[j], s, False, config) for j, s in _live(beams)]
    if len(finished) < config.num_samples:
        raise CharRNNError(f"--num-samples {config.num_samples}: only {len(finished)} continuations exist"
                           f" of --length {config.length} from this vocabulary")  # fmt: skip
    return sorted(finished, key=lambda h: -h.score)[: config.num_samples]


def beam_columns(model: CharRNN, vocab: Vocab, prime: str, config: SampleConfig) -> Iterator[list[str]]:
    """The best beams in `generate`'s shape: per position, one character
    per beam ("" once a beam has ended), so the sample writer prints them."""
    texts = [h.text for h in beam_search(model, vocab, prime, config)]
    for t in range(max(map(len, texts))):
        yield [text[t] if t < len(text) else "" for text in texts]


def _extend(beams: _Beams, logp: torch.Tensor, t: int, vocab: Vocab, config: SampleConfig,
            finished: list[Hypothesis]) -> tuple[torch.Tensor, torch.Tensor] | None:  # fmt: skip
    """Step t: extend every live beam by every character and keep the N
    best candidates as the new beams; a candidate that completes the stop
    string is finished instead (so up to 2N are looked at). Returns each
    new beam's parent row and character, or None when no beam is left."""
    n, v, stop = len(beams.tails), logp.shape[1], config.stop
    top_scores, top = (beams.scores[:, None] + logp).flatten().topk(min(2 * n, n * v))
    keep: list[tuple[int, int, float, str]] = []  # parent row, character, score, tail
    for score, flat in zip(top_scores.tolist(), top.tolist()):
        if score == -math.inf or len(keep) == n:
            break
        parent, char = divmod(flat, v)
        tail = (beams.tails[parent] + vocab.chars[char])[-len(stop) :] if stop else ""
        if (stop and tail == stop) or vocab.chars[char] == DOC_END:  # a model of documents ends one at its marker
            text = torch.cat([beams.ids[parent, :t], beams.ids.new_tensor([char])])
            finished.append(_hypothesis(vocab, text, score, True, config))
        else:
            keep.append((parent, char, score, tail))
    if not keep:
        return None
    keep += [(keep[0][0], keep[0][1], -math.inf, keep[0][3])] * (n - len(keep))  # unused rows
    rows = beams.ids.new_tensor([k[0] for k in keep])
    chars = beams.ids.new_tensor([k[1] for k in keep])
    beams.ids = beams.ids[rows]
    beams.ids[:, t] = chars
    beams.scores = beams.scores.new_tensor([k[2] for k in keep])
    beams.tails = [k[3] for k in keep]
    return rows, chars


def _log_probs(logits: torch.Tensor) -> torch.Tensor:
    """(B, V) logits -> float64 log-probabilities on the CPU, in the logits'
    own order (so one beam picks exactly argmax's character)."""
    return torch.log_softmax(logits.float().cpu().double(), -1)  # to the CPU first: no float64 on MPS


def _settled(beams: _Beams, finished: list[Hypothesis], want: int, length_penalty: float) -> bool:
    """Whether no live beam can still enter the `want` best: a beam's
    log-probability only falls as it grows, so with no length penalty a
    finished beam at least as likely as every live one stays ahead."""
    if length_penalty != 0 or len(finished) < want:
        return False
    kth = sorted((h.score for h in finished), reverse=True)[want - 1]
    return kth >= float(beams.scores.max())


def _live(beams: _Beams) -> Iterator[tuple[int, float]]:
    for j, score in enumerate(beams.scores.tolist()):
        if score > -math.inf:
            yield j, score


def _hypothesis(vocab: Vocab, ids: torch.Tensor, logprob: float, stopped: bool, config: SampleConfig) -> Hypothesis:
    text = "".join(vocab.chars[i] for i in ids.tolist())
    return Hypothesis(text, logprob, logprob / len(text) ** config.length_penalty, stopped)
