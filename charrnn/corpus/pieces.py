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
