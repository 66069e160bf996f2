"""Pieces: a split made of several stretches of the corpus, read as one
array without copying any of it, and the interleaved layout that makes them.

A contiguous split puts val and test at the corpus's end: for a directory
that is its last files alphabetically, which may be nothing like the rest.
The blocks split cuts the corpus into K equal periods and lays each out as
the contiguous split lays out the whole::

    contiguous  [ train ............................... | val ... | test .. ]
    blocks K=3  [ train ....... | v | t ][ train ....... | v | t ][ train ....... | v | t ]

so val and test sample the whole corpus at K places. Each split's size is
exactly the contiguous split's (the fraction's floor, shared out among the
periods), so everything the plan derives from the sizes is the same.

The files split draws whole files for test, then val, in an order
shuffled by the run's seed, until each holds at least its fraction of the
corpus; the rest, in their order, are train::

    files       [ a.c | b.c | c.c | d.c | e.c | f.c | g.c | h.c | ... ]
                  train  val  train train test  train train val

Its val scores files the model has never read, as new text from the same
source would be; the sizes come out near the fractions, not on them.
"""

from __future__ import annotations

import numpy as np

MAX_BLOCKS = 256  # periods at most: val in up to 256 places
MIN_VAL_BLOCK = 1024  # characters of val per period at least: each piece long enough to read in context


class Pieces:
    """Stretches [start, start + length) of `base`, in order, read as one
    array of len(self) ids: integer-array indexing and slices, each
    position mapped to its place in `base` (so a process reads only the
    positions it asks for, and a memory-mapped base stays mapped)."""

    def __init__(self, base: np.ndarray, starts: np.ndarray, lengths: np.ndarray):
        keep = lengths > 0
        self.base = base
        self.starts = np.asarray(starts, dtype=np.int64)[keep]
        self.offsets = np.concatenate([[0], np.cumsum(np.asarray(lengths, dtype=np.int64)[keep])])  # where each begins here

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def dtype(self) -> np.dtype:
        return self.base.dtype

    def physical(self, pos: np.ndarray) -> np.ndarray:
        """Positions here -> positions in `base`, any shape."""
        piece = np.searchsorted(self.offsets, pos, side="right") - 1
        return self.starts[piece] + (pos - self.offsets[piece])

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            key = np.arange(start, stop, step)
        pos = np.asarray(key, dtype=np.int64)
        if pos.size and (pos.min() < 0 or pos.max() >= len(self)):
            raise IndexError(f"position out of range for {len(self)} ids")
        return self.base[self.physical(pos)]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """The whole split in memory (for a caller that needs one array)."""
        ends = self.starts + np.diff(self.offsets)
        whole = np.concatenate([self.base[s:e] for s, e in zip(self.starts, ends)])
        return whole if dtype is None else whole.astype(dtype)


def by_files(ids: np.ndarray, file_starts: tuple[int, ...], n_val: int, n_test: int,
             seed: int) -> tuple[Pieces, Pieces, Pieces]:  # fmt: skip
    """(train, val, test) of whole files (each with the newline after it),
    chosen as the module's docstring says. A file longer than what its
    split still needs stays in train: one large file must not become the
    whole of val."""
    start = np.asarray(file_starts, dtype=np.int64)
    length = np.diff(np.append(start, len(ids)))
    part = np.zeros(len(start), dtype=np.int8)  # 0 train, 1 val, 2 test
    need = {2: n_test, 1: n_val}
    for i in np.random.default_rng(seed).permutation(len(start)):
        for which in (2, 1):
            if need[which] > 0 and length[i] <= max(need[which], 1) * 2:
                part[i], need[which] = which, need[which] - length[i]
                break
    return tuple(Pieces(ids, start[part == k], length[part == k]) for k in (0, 1, 2))  # type: ignore[return-value]


def files_split_sizes(n: int, file_starts: tuple[int, ...], n_val: int, n_test: int, seed: int) -> tuple[int, int, int]:
    parts = by_files(np.broadcast_to(np.uint8(0), (n,)), file_starts, n_val, n_test, seed)
    return len(parts[0]), len(parts[1]), len(parts[2])


def block_count(n_val: int) -> int:
    return max(1, min(MAX_BLOCKS, n_val // MIN_VAL_BLOCK))


def blocks(ids: np.ndarray, n_val: int, n_test: int) -> tuple[Pieces, Pieces, Pieces]:
    """(train, val, test) interleaved in block_count(n_val) periods, of
    len(ids) - n_val - n_test, n_val and n_test ids."""
    n, k = len(ids), block_count(n_val)
    edges = np.arange(k + 1, dtype=np.int64)
    period = edges * n // k  # period j is [period[j], period[j + 1])
    val = np.diff(edges * n_val // k)  # val's and test's share of each period
    test = np.diff(edges * n_test // k)
    train = np.diff(period) - val - test
    if (train < 0).any():  # a corpus almost all val and test: shares cannot round into every period
        return blocks_of_one(ids, n_val, n_test)
    start = period[:-1]
    return Pieces(ids, start, train), Pieces(ids, start + train, val), Pieces(ids, start + train + val, test)


def blocks_of_one(ids: np.ndarray, n_val: int, n_test: int) -> tuple[Pieces, Pieces, Pieces]:
    n_train = len(ids) - n_val - n_test
    one = np.ones(1, dtype=np.int64)
    return (Pieces(ids, 0 * one, n_train * one), Pieces(ids, n_train * one, n_val * one),
            Pieces(ids, (n_train + n_val) * one, n_test * one))  # fmt: skip
