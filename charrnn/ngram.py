"""Character n-gram models, n = 1..N, with interpolated Kneser-Ney
smoothing: the baselines `charrnn compare` sets a model beside.

Counting. Every k-gram of the training text gets a 64-bit key: its last
character in the low bits, and in the high bits a hash of its context (the
key of the (k-1)-gram before it, mixed), so one pass of numpy arithmetic
builds order k from order k - 1, and sorting the keys of an order groups
its k-grams by context as well. One sort of the order's occurrences and
one of its distinct grams give every count; two contexts share a hash with
probability about 2^-52 per pair. For order k the counts kept are:
- c(hw): how often each k-gram occurs (the highest order reads these);
- N1+(.hw): how many different characters precede it, its continuation
  count (lower orders read these: how many contexts a string completes,
  not how often it occurs, as Kneser-Ney has it);
- per context h, the totals of both and how many different characters
  follow it (the weight left to the order below).

Smoothing. P_k(w | h) = (max(c(hw) - D_k, 0) + D_k N1+(h.) P_{k-1}(w | h')) / c(h.),
with h' the context less its first character, D_k = n1 / (n1 + 2 n2)
from the order's count-of-counts (one discount per order and per kind of
count), P_0 uniform over the vocabulary, and the order below used alone
where the context was never seen. Model n reads raw counts at order n and
continuation counts below it.

Only the probability of the character that comes next is computed, for
every position of the scored text at once, one order at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)  # splitmix64's finaliser
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)


def _mix(x: np.ndarray) -> np.ndarray:
    """A 64-bit bijection that spreads every input bit over the output."""
    with np.errstate(over="ignore"):  # arithmetic modulo 2^64
        x = (x ^ (x >> _S30)) * _M1
        x = (x ^ (x >> _S27)) * _M2
        return x ^ (x >> _S31)


@dataclass(frozen=True)
class _Table:
    """Sorted 64-bit keys and a value per key."""

    keys: np.ndarray
    values: np.ndarray

    def lookup(self, queries: np.ndarray) -> np.ndarray:
        """Each query's value, 0 where the key is absent."""
        if len(self.keys) == 0:
            return np.zeros(len(queries), dtype=self.values.dtype)
        at = np.minimum(np.searchsorted(self.keys, queries), len(self.keys) - 1)
        return np.where(self.keys[at] == queries, self.values[at], 0)


@dataclass(frozen=True)
class _Order:
    """One order's counts, for one kind of count (raw or continuation)."""

    grams: _Table  # k-gram key -> count
    totals: _Table  # context (key >> bits) -> sum of its k-grams' counts
    kinds: _Table  # context -> how many different characters follow it
    discount: float


def _discount(counts: np.ndarray) -> float:
    n1, n2 = np.count_nonzero(counts == 1), np.count_nonzero(counts == 2)
    return float(n1 / (n1 + 2 * n2)) if n1 else 0.5


def _runs(sorted_values: np.ndarray) -> np.ndarray:
    """Where each run of equal values starts in a sorted array."""
    if len(sorted_values) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.concatenate([[True], sorted_values[1:] != sorted_values[:-1]]))


class _Keys:
    """How k-grams become 64-bit keys: the last character in the low `bits`."""

    def __init__(self, vocab_size: int):
        self.bits = np.uint64(max(1, int(vocab_size - 1).bit_length()))
        self.high = ~((np.uint64(1) << self.bits) - np.uint64(1))

    def of(self, chars: np.ndarray, prev: np.ndarray | None, k: int) -> np.ndarray:
        """The key of the k-gram ending at each position (before k - 1: 0),
        from the (k-1)-gram keys `prev`."""
        keys = np.zeros(len(chars), dtype=np.uint64)
        if prev is None:
            keys[:] = (_mix(np.zeros(1, dtype=np.uint64))[0] & self.high) | chars
        else:
            keys[k - 1 :] = (_mix(prev[k - 2 : -1]) & self.high) | chars[k - 1 :]
        return keys

    def order(self, grams: np.ndarray, counts: np.ndarray) -> _Order:
        """Sorted distinct keys with their counts -> the order's tables (sorted
        keys are grouped by context: the context is in the high bits)."""
        contexts = grams >> self.bits
        starts = _runs(contexts)
        totals = np.add.reduceat(counts, starts) if len(starts) else np.zeros(0)
        kinds = np.diff(np.append(starts, len(contexts)))
        ctx = contexts[starts]
        return _Order(_Table(grams, counts), _Table(ctx, totals), _Table(ctx, kinds), _discount(counts))


def _orders(train: np.ndarray, max_n: int, keys: _Keys) -> Iterator[tuple[_Order, _Order | None]]:
    """For k = 1..max_n: order k's raw counts, and order k - 1's continuation
    counts (None for k = 1), which the distinct k-grams give."""
    chars, prev = train.astype(np.uint64), None
    for k in range(1, max_n + 1):
        now = keys.of(chars, prev, k)
        grams, counts, first = _distinct(now[k - 1 :])
        cont = None
        if k > 1:  # each distinct k-gram adds one to the continuation count of the (k-1)-gram it ends with
            suffixes, n = np.unique(prev[first + k - 1], return_counts=True)
            cont = keys.order(suffixes, n.astype(np.float64))
        yield keys.order(grams, counts.astype(np.float64)), cont
        prev = now


def _distinct(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct keys (sorted), how often each occurs, and where one of them is."""
    order = np.argsort(keys)
    ordered = keys[order]
    starts = _runs(ordered)
    counts = np.diff(np.append(starts, len(ordered)))
    return ordered[starts], counts, order[starts]


class _Scoring:
    """One text's next-character probabilities under every order, built as
    the orders come: out[n - 1] is model n's."""

    def __init__(self, ids: np.ndarray, max_n: int, vocab_size: int, keys: _Keys):
        self.targets = np.arange(1, len(ids))  # the position each prediction is for
        self.chars, self.keys, self.prev = ids.astype(np.uint64), keys, None
        self.out = np.empty((max_n, len(self.targets)))
        self.lower = np.full(len(self.targets), 1.0 / vocab_size)  # P_cont of the order below; order 0: uniform

    def add(self, k: int, raw: _Order, cont_below: _Order | None) -> None:
        """Order k, given its raw counts and order k - 1's continuation counts."""
        t, bits = self.targets, self.keys.bits
        if cont_below is not None:  # the lower-order distribution moves up to order k - 1
            gram = self.prev[t]
            self.lower = np.where(t < k - 2, self.lower, _interpolate(cont_below, gram, gram >> bits, self.lower))
        self.prev = self.keys.of(self.chars, self.prev, k)
        gram = self.prev[t]
        below = self.out[k - 2] if k > 1 else self.lower
        # fewer than k - 1 characters of context: the order below stands
        self.out[k - 1] = np.where(t < k - 1, below, _interpolate(raw, gram, gram >> bits, self.lower))


def next_char_probs(train: np.ndarray, texts: list[np.ndarray], max_n: int, vocab_size: int) -> list[np.ndarray]:
    """Each text's (max_n, len(text) - 1) next-character probabilities under
    models of orders 1..max_n counted on `train`, an order at a time:
    memory for one order's counts, whatever max_n."""
    keys = _Keys(vocab_size)
    scorings = [_Scoring(ids, max_n, vocab_size, keys) for ids in texts]
    for k, (raw, cont) in enumerate(_orders(train, max_n, keys), 1):
        for scoring in scorings:
            scoring.add(k, raw, cont)
    return [s.out for s in scorings]


class NgramModels:
    """Interpolated Kneser-Ney models of orders 1..max_n on a training text
    (ids in a vocabulary of `vocab_size` characters), every order's counts
    kept, to score many texts (`next_char_probs` above keeps one order)."""

    def __init__(self, train: np.ndarray, max_n: int, vocab_size: int):
        if max_n < 1:
            raise ValueError("max_n must be at least 1")
        self.max_n, self.vocab_size, self.keys = max_n, vocab_size, _Keys(vocab_size)
        self.orders = list(_orders(train, max_n, self.keys))

    def next_char_probs(self, ids: np.ndarray) -> np.ndarray:
        """(max_n, len(ids) - 1): model n's probability of each next
        character, ids[p] given ids[:p] for p >= 1 (at most n - 1 of them)."""
        scoring = _Scoring(ids, self.max_n, self.vocab_size, self.keys)
        for k, (raw, cont) in enumerate(self.orders, 1):
            scoring.add(k, raw, cont)
        return scoring.out


def _interpolate(order: _Order, gram: np.ndarray, context: np.ndarray, lower: np.ndarray) -> np.ndarray:
    count, total, kinds = order.grams.lookup(gram), order.totals.lookup(context), order.kinds.lookup(context)
    d = order.discount
    with np.errstate(invalid="ignore", divide="ignore"):
        p = (np.maximum(count - d, 0) + d * kinds * lower) / total
    return np.where(total > 0, p, lower)
