"""Corpora of documents: one item per line (names, words, log lines) or one
per file, each read from a fresh state and ended by a marker the model
learns to predict.

In documents mode the corpus's ids are the documents joined by the end
marker, with one before the first::

    names.txt "emma\\nolivia\\nava\\n"  ->  ids of  ⌁emma⌁olivia⌁ava⌁   (⌁: DOC_END)

Document i reads from its leading marker to the character before its
trailing one and predicts from its first character through the trailing
marker, so the marker is both the start token every document is read from
(from the zero state: the state a document starts in is learned, the same
for every document) and the end the model learns to predict.

The marker is U+0000, which no corpus can hold (the reader refuses NUL as
binary), so it never collides with a character of the text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

import numpy as np
import torch

from ..errors import CharRNNError
from .batches import IGNORE, Splits, check_split, split_corpus

DOC_END = "\x00"
END_ID = 0  # DOC_END's id in any vocab that holds it: U+0000 sorts before every other character
MODES = ("lines", "files")  # how a corpus is cut into documents; "" : it is one stream
_RUN = re.compile(f"{DOC_END}{{2,}}")


def check_mode(mode: str) -> None:
    if mode and mode not in MODES:
        raise CharRNNError(f"--documents must be one of {', '.join(MODES)}, not {mode!r}")


def as_lines(chunks: Iterable[str]) -> Iterator[str]:
    """Text chunks -> the same text as line documents: each line ending
    (\\n or \\r\\n) becomes DOC_END, empty lines are dropped, and the
    whole starts and ends with DOC_END. Streams chunk by chunk."""
    yield DOC_END
    at_end, held = True, ""  # at_end: the last character given out is DOC_END; held: a \r the next chunk may end
    for text in chunks:
        text = held + text
        held = "\r" if text.endswith("\r") else ""
        text = (text[:-1] if held else text).replace("\r\n", "\n").replace("\n", DOC_END)
        text = _RUN.sub(DOC_END, text)
        if at_end:
            text = text.lstrip(DOC_END)
        if text:
            at_end = text.endswith(DOC_END)
            yield text
    if held:
        yield held
        at_end = False
    if not at_end:
        yield DOC_END


def chunks(ids, size: int, documents: bool) -> Iterator[tuple[int, int, bool]]:
    """(start, stop, fresh): `ids` (an array or a 1-d tensor) read `size`
    at a time; for a model of documents also cut before each end marker,
    fresh there: the reader zeroes its state before reading the marker, as
    every document is read in training."""
    n = len(ids)
    cuts = set(range(0, n, size))
    if documents:
        marks = np.flatnonzero(np.asarray(ids.cpu() if isinstance(ids, torch.Tensor) else ids) == END_ID)
        cuts |= set(marks.tolist())
    bounds = sorted(cuts) + [n]
    for start, stop in zip(bounds, bounds[1:]):
        if start < stop:
            yield start, stop, documents and int(ids[start]) == END_ID


def spans(ids: np.ndarray, end_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends): the positions of each document's leading and trailing
    markers in `ids` (which starts and ends with one). Document i's inputs
    are ids[starts[i]:ends[i]], its targets ids[starts[i]+1:ends[i]+1]."""
    marks = np.flatnonzero(ids == end_id)
    if len(marks) < 2 or marks[0] != 0 or marks[-1] != len(ids) - 1:
        raise CharRNNError("the text holds no whole document (documents mode needs its end markers)")
    starts, ends = marks[:-1], marks[1:]
    keep = ends - starts > 1  # an empty document has nothing to read
    return starts[keep], ends[keep]


def join(ids: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The documents [starts[i], ends[i]] of `ids`, in this order, joined
    into one text of the same form (markers between, one at each end)."""
    if len(starts) == 0:
        return ids[:0]
    pieces = [ids[s:e] for s, e in zip(starts.tolist(), ends.tolist())]
    return np.concatenate(pieces + [ids[ends[-1] : ends[-1] + 1]])


def split_documents(ids: np.ndarray, end_id: int, val_frac: float, test_frac: float) -> Splits:
    """Train, val and test as whole documents: the held-out ones spread
    evenly through the corpus (every k-th, not the last few, which in a
    sorted or ranked list would be all alike), each split joined as ids are."""
    starts, ends = spans(ids, end_id)
    train, val, test = split_indices(len(starts), val_frac, test_frac)
    part = lambda idx: join(ids, starts[idx], ends[idx])  # noqa: E731
    return Splits(part(train), part(val), part(test))


def split_indices(n: int, val_frac: float, test_frac: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which of n documents are train, val and test (split_documents)."""
    check_split(val_frac, test_frac)
    n_val, n_test = int(n * val_frac), int(n * test_frac)
    if n_val < 1 or n - n_val - n_test < 1:
        raise CharRNNError(
            f"the corpus holds {n} documents: too few for a validation split of {val_frac:g}"
            " (it needs at least one document, and one to train on): use more documents or a larger --val-frac"
        )
    held = spread(n, n_val + n_test)  # every held-out document, evenly spread
    test = held[spread(len(held), n_test)]
    return np.setdiff1d(np.arange(n), held), np.setdiff1d(held, test), test


def epoch_steps(lengths: np.ndarray, val_frac: float, test_frac: float, batch_size: int, seq_len: int) -> int:
    """The steps of an epoch of DocumentBatches over the training split of
    documents of these lengths (each's inputs: its characters and its
    leading marker): the groups depend on the lengths alone."""
    train = lengths[split_indices(len(lengths), val_frac, test_frac)[0]]
    groups, _ = _groups(np.argsort(train, kind="stable"), train, batch_size, seq_len)
    return sum(-(-int(train[g].max()) // seq_len) for g in groups)


def split_text(ids: np.ndarray, val_frac: float, test_frac: float, documents: str = "", mode: str = "contiguous",
               file_starts: tuple[int, ...] = (0,), seed: int = 0) -> Splits:  # fmt: skip
    """A corpus's splits: whole documents in documents mode (whatever
    --split says), else as --split says (batches.split_corpus)."""
    if documents:
        return split_documents(ids, END_ID, val_frac, test_frac)
    return split_corpus(ids, val_frac, test_frac, mode, file_starts, seed)


def spread(n: int, k: int) -> np.ndarray:
    """k distinct indices of 0..n-1, spread evenly (k <= n)."""
    return np.unique(np.floor((np.arange(k) + 0.5) * n / k).astype(np.int64)) if k else np.zeros(0, dtype=np.int64)


class DocumentBatches:
    """Documents as the rows of a batch, each from a fresh state::

        group (4 rows of the same length, +: padding, read but not scored)
          row 0: ⌁ e m m a +       targets: e m m a ⌁ +
          row 1: ⌁ o l i v i a              o l i v i a ⌁
          ...
        a step reads one window of a group (up to T characters of every row);
        a group longer than T is read in windows with the state carried.

    Documents are grouped by length (sorted, so a group pads little) and the
    groups are put in a seeded random order. A group of short documents
    holds as many as fit batch_size * seq_len characters, in a multiple of
    batch_size rows, so a step reads about as many characters as a stream
    batch does; the last group is filled up with other documents, read but not scored.
    `rows` (a slice of a multiple of batch_size) is this process's share of
    every group's rows. seed None keeps the documents in their order (to
    score them)."""

    def __init__(self, ids: np.ndarray, end_id: int, batch_size: int, seq_len: int, rank: int = 0, world: int = 1,
                 seed: int | None = 0, docs: np.ndarray | None = None):  # fmt: skip
        starts, ends = spans(ids, end_id)
        if docs is not None:
            starts, ends = starts[docs], ends[docs]
        if len(starts) == 0:
            raise CharRNNError("the split holds no documents")
        self.ids, self.seq_len, self.rank, self.world = ids, seq_len, rank, world
        order = np.arange(len(starts))
        if seed is not None:
            order = np.random.default_rng(seed).permutation(len(starts))
        order = order[np.argsort(ends[order] - starts[order], kind="stable")]  # by length; ties in the seeded order
        self.groups, self.real = _groups(order, ends - starts, batch_size, seq_len)
        if seed is not None:
            shuffled = np.random.default_rng(seed + 1).permutation(len(self.groups))
            self.groups, self.real = [self.groups[i] for i in shuffled], [self.real[i] for i in shuffled]
        self.starts, self.ends = starts, ends
        self.widths = [int((ends[rows] - starts[rows]).max()) for rows in self.groups]  # each group's longest
        self.windows = [(g, w) for g, width in enumerate(self.widths) for w in range(-(-width // seq_len))]

    def __len__(self) -> int:
        return len(self.windows)

    def fresh(self, k: int) -> bool:
        """Whether step k begins a group: every row starts from the zero state."""
        return self.windows[k][1] == 0

    def rows(self, k: int) -> int:
        """This process's rows at step k."""
        return len(self.groups[self.windows[k][0]]) // self.world

    def batch(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, targets) of step k, each (rows, <= T) int64; padding's targets are IGNORE."""
        g, w = self.windows[k]
        share = len(self.groups[g]) // self.world
        mine = np.arange(self.rank * share, (self.rank + 1) * share)  # this process's rows of the group
        docs = self.groups[g][mine]
        s, e = self.starts[docs][:, None], self.ends[docs][:, None]
        cols = np.arange(w * self.seq_len, min((w + 1) * self.seq_len, self.widths[g]))[None, :]
        pos = s + cols  # input positions
        inside = pos < e
        x = self.ids[np.where(inside, pos, e)].astype(np.int64)  # padding reads the trailing marker
        y = self.ids[np.minimum(pos + 1, e)].astype(np.int64)
        y[~inside | (mine >= self.real[g])[:, None]] = IGNORE  # padding, and the rows filling up the last group
        return torch.from_numpy(x), torch.from_numpy(y)

    def targets(self, k: int) -> int:
        """Characters step k scores over every process (its padding not counted)."""
        g, w = self.windows[k]
        real = self.groups[g][: self.real[g]]
        return int(np.clip(self.ends[real] - self.starts[real] - w * self.seq_len, 0, self.seq_len).sum())


def _groups(order: np.ndarray, lengths: np.ndarray, batch_size: int,
            seq_len: int) -> tuple[list[np.ndarray], list[int]]:  # fmt: skip
    """`order` (documents by ascending length) cut into groups: each a
    multiple of batch_size rows, as many as fit batch_size * seq_len
    characters at the group's longest length (at least batch_size); and
    how many of each group's rows are its own (the last is filled up with
    other documents, read but not scored)."""
    groups, real, i, n = [], [], 0, len(order)
    while i < n:
        k = 1
        while i + batch_size * (k + 1) <= n and (k + 1) * lengths[order[i + batch_size * (k + 1) - 1]] <= seq_len:
            k += 1
        rows = order[i : i + batch_size * k]
        real.append(len(rows))
        if len(rows) < batch_size * k:  # the last group: filled up with the shortest documents
            rows = np.concatenate([rows, np.resize(order, batch_size * k - len(rows))])
        groups.append(rows)
        i += batch_size * k
    return groups, real
