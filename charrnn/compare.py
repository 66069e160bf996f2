"""A model beside n-gram models of its own training text: the second half
of Karpathy, Johnson and Fei-Fei (2015), `charrnn compare`.

- **The n-gram table**: interpolated Kneser-Ney models for n = 1..20
  (ngram.py), counted on the run's train split, scored on the same text
  as the model (default: the run's test split).
- **Where the model's errors lie**: an error is a character the model gave
  a probability below 0.5. They are peeled off in order, each by the first
  test it meets (the paper's categories, defined here as below):
  1. n-gram oracle: some n-gram model (n = 1..20) gave it 0.5 or more;
  2. dynamic long-term memory: the word it is in also occurs in the 1,000
     characters before;
  3. rare words: the word it is in occurs at most 5 times in the train split;
  4. word starts: it is a word's first character;
  5. new lines and punctuation: it is a newline or punctuation;
  6. boost: the model's most likely character was it all the same;
  7. other.
- **Long-range structure**: on the characters that close a bracket or a
  quote, the model's loss and the best n-gram's, against the distance back
  to the character that opened it.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .checkpoint import Checkpoint
from .corpus import Vocab
from .errors import CharRNNError
from .evaluate import eval_text, next_char_scores, run_splits
from .inspection.languages import c_lexical, detect, python_lexical
from .model import CharRNN
from .ngram import next_char_probs

MAX_N = 20
ERROR_BELOW = 0.5  # a character the model gave less than this is an error
MEMORY = 1000  # characters back that dynamic long-term memory looks
RARE = 5  # a word seen at most this often in training is rare
CATEGORIES = ("n-gram oracle", "dynamic long-term memory", "rare words", "word starts",
              "new lines and punctuation", "boost", "other")  # fmt: skip
DISTANCE_EDGES = (1, 5, 10, 20, 50, 100, 200, 500, 10**9)  # bins of distance back to the opener
OPENERS = {")": "(", "]": "[", "}": "{"}
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Category:
    errors: int
    share: float  # of the model's errors
    loss_share: float  # of the model's whole loss on the text

    def to_dict(self) -> dict:
        return {"errors": self.errors, "share": self.share, "loss_share": self.loss_share}


@dataclass(frozen=True)
class DistanceBin:
    closes: str  # "bracket" or "quote"
    low: int  # distances low <= d < high
    high: int
    count: int
    rnn: float  # mean nats/char on these closing characters
    ngram: float

    def to_dict(self) -> dict:
        return {"closes": self.closes, "from": self.low, "to": self.high, "count": self.count,
                "rnn": self.rnn, "ngram": self.ngram}  # fmt: skip  # not a cell kind: the model's loss, as the JSON names it


@dataclass(frozen=True)
class Comparison:
    source: str  # the text scored
    chars: int  # characters predicted
    rnn: float  # the model's mean nats/char
    ngram: list[tuple[int, float]]  # (n, mean nats/char)
    best_n: int
    breakdown: dict[str, Category]
    long_range: list[DistanceBin]
    seconds: dict[str, float]  # the n-gram models (counting and scoring), the model's scoring
    text: str  # the text scored (ids decoded), for a page
    rnn_logp: np.ndarray  # (chars,) the model's log-probability of each next character
    ngram_logp: np.ndarray  # (chars,) the best n-gram's

    @property
    def errors(self) -> int:
        return sum(c.errors for c in self.breakdown.values())

    def to_dict(self) -> dict:
        return {
            "source": self.source, "chars": self.chars, "rnn": self.rnn,  # not a cell kind: the model's loss
            "ngram": [{"n": n, "loss": loss} for n, loss in self.ngram], "best_n": self.best_n,
            "errors": self.errors, "error_below": ERROR_BELOW,
            "breakdown": {name: c.share for name, c in self.breakdown.items()},
            "breakdown_detail": {name: c.to_dict() for name, c in self.breakdown.items()},
            "long_range": [b.to_dict() for b in self.long_range], "seconds": self.seconds,
        }  # fmt: skip


def compare(checkpoint: Checkpoint, model: CharRNN, text_file: Path | None = None, max_n: int = MAX_N,
            max_chars: int | None = None, skip_unknown: bool = False) -> Comparison:  # fmt: skip
    """The model (on the device to score on) beside n-gram models of its
    run's train split, on `text_file` or the run's test split."""
    if not 1 <= max_n <= 64:
        raise CharRNNError(f"--max-n must be in 1..64, not {max_n}")
    if max_chars is not None and max_chars < 2:
        raise CharRNNError(f"--max-chars must be at least 2, not {max_chars}")
    splits, _ = run_splits(checkpoint, "compare needs the run's corpus to count n-grams on")
    train = np.asarray(splits.train)  # the n-gram counts read all of it: in memory, if the split is in pieces
    scored = eval_text(checkpoint, text_file, skip_unknown=skip_unknown)
    ids = scored.ids[: max_chars + 1] if max_chars is not None else scored.ids
    if len(ids) < 2:
        raise CharRNNError(f"{scored.source} is too short to score: it needs at least 2 characters")
    seconds = {}
    t0 = time.perf_counter()
    [ngram_p] = next_char_probs(train, [ids], max_n, checkpoint.vocab.size)  # (max_n, T-1), one order at a time
    seconds["ngram"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    model.eval()
    rnn_logp, rnn_top = next_char_scores(model, torch.as_tensor(ids.astype(np.int64), device=model.head.weight.device))
    rnn_logp = rnn_logp.astype(np.float64)
    seconds["rnn_score"] = time.perf_counter() - t0
    ngram_loss = -np.log(ngram_p).mean(1)
    best = int(np.argmin(ngram_loss))
    text = checkpoint.vocab.decode(ids)
    vocab_words = _word_counts(checkpoint.vocab, train)
    return Comparison(
        source=scored.source, chars=len(ids) - 1, rnn=float(-rnn_logp.mean()),
        ngram=[(n + 1, float(loss)) for n, loss in enumerate(ngram_loss)], best_n=best + 1,
        breakdown=breakdown(text, rnn_logp, rnn_top, ngram_p.max(0), vocab_words),
        long_range=long_range(text, rnn_logp, np.log(ngram_p[best])),
        seconds={k: round(v, 2) for k, v in seconds.items()}, text=text,
        rnn_logp=rnn_logp, ngram_logp=np.log(ngram_p[best]),
    )  # fmt: skip


def _word_counts(vocab: Vocab, train: np.ndarray) -> Counter[str]:
    return Counter(_WORD.findall(vocab.decode(train)))


def _words_at(text: str) -> list[tuple[int, int]]:
    """Per character, the (start, end) of the word it is in; (-1, -1) outside words."""
    spans = [(-1, -1)] * len(text)
    for m in _WORD.finditer(text):
        spans[m.start() : m.end()] = [(m.start(), m.end())] * (m.end() - m.start())
    return spans


def breakdown(text: str, rnn_logp: np.ndarray, rnn_top: np.ndarray, oracle_p: np.ndarray,
              train_words: dict[str, int]) -> dict[str, Category]:  # fmt: skip
    """The model's errors on text[1:], each in the first category whose test it meets."""
    spans = _words_at(text)
    total_loss = float(-rnn_logp.sum())
    counts, losses = dict.fromkeys(CATEGORIES, 0), dict.fromkeys(CATEGORIES, 0.0)
    for j in np.nonzero(np.exp(rnn_logp) < ERROR_BELOW)[0]:
        p = int(j) + 1  # the character predicted
        ch, (start, end) = text[p], spans[p]
        word = text[start:end] if start >= 0 else None
        if oracle_p[j] >= ERROR_BELOW:
            cat = "n-gram oracle"
        elif word is not None and re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text[max(0, start - MEMORY) : start]):
            cat = "dynamic long-term memory"
        elif word is not None and train_words.get(word, 0) <= RARE:
            cat = "rare words"
        elif p == start:
            cat = "word starts"
        elif ch == "\n" or (not ch.isalnum() and not ch.isspace()):
            cat = "new lines and punctuation"
        elif rnn_top[j]:
            cat = "boost"
        else:
            cat = "other"
        counts[cat] += 1
        losses[cat] += float(-rnn_logp[j])
    errors = sum(counts.values())
    return {name: Category(counts[name], counts[name] / errors if errors else 0.0,
                           losses[name] / total_loss if total_loss else 0.0) for name in CATEGORIES}  # fmt: skip


def closers(text: str) -> list[tuple[str, int, int]]:
    """(what it closes, position, distance back to its opener) of every
    character that closes a bracket or a string's quote with its opener in
    the text. In code (languages.detect) strings, char literals and
    comments are found by the language's rules and brackets count in code
    alone; elsewhere a double quote opens and the next one closes."""
    language = detect(text)
    if language == "generic":
        return _plain_closers(text)
    lex = c_lexical(text) if language == "c" else python_lexical(text)
    quiet = (lex["string"] + lex["comment"] + lex.get("char", 0)) > 0  # where brackets do not count
    out = [("quote", end, end - start + 1) for start, end in _runs_of(lex["string"])
           if start > 0 and end < len(text) and text[end] in "\"'"]  # a newline ended it: no closing quote
    out += _bracket_closers(text, quiet)
    return sorted(out, key=lambda c: c[1])


def _runs_of(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) of each run of 1s: mask[start:end] == 1; the opening
    quote is at start - 1 and the closing one at end."""
    edges = np.diff(np.concatenate([[0], (mask > 0).astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def _bracket_closers(text: str, quiet: np.ndarray | None = None) -> list[tuple[str, int, int]]:
    out, stack = [], []
    for p, ch in enumerate(text):
        if quiet is not None and quiet[p]:
            continue
        if ch in "([{":
            stack.append((ch, p))
        elif ch in OPENERS and stack and stack[-1][0] == OPENERS[ch]:
            out.append(("bracket", p, p - stack.pop()[1]))
        elif ch in OPENERS:
            stack.clear()  # unbalanced: start afresh
    return out


def _plain_closers(text: str) -> list[tuple[str, int, int]]:
    quiet, quote, out = np.zeros(len(text), dtype=bool), None, []
    for p, ch in enumerate(text):
        if ch == '"':
            if quote is None:
                quote = p
            else:
                out.append(("quote", p, p - quote))
                quiet[quote : p + 1] = True  # brackets inside a quote do not count
                quote = None
    return sorted(out + _bracket_closers(text, quiet), key=lambda c: c[1])


def long_range(text: str, rnn_logp: np.ndarray, ngram_logp: np.ndarray) -> list[DistanceBin]:
    """Mean nats of the model and the n-gram on closing characters, per kind and distance bin."""
    found = closers(text)
    bins = []
    for closes in ("bracket", "quote"):
        for low, high in zip(DISTANCE_EDGES, DISTANCE_EDGES[1:]):
            at = [p - 1 for what, p, d in found if what == closes and low <= d < high and p >= 1]
            if at:
                bins.append(DistanceBin(closes, low, high, len(at), float(-rnn_logp[at].mean()), float(-ngram_logp[at].mean())))
    return bins
