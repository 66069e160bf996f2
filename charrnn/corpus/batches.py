"""Splits and batches: a corpus's ids cut into train, val and test, and
the streams that truncated backpropagation through time reads."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import CharRNNError
from .pieces import Pieces, blocks, by_files, files_split_sizes

SPLITS = ("contiguous", "blocks", "files")  # how a corpus is cut into train / val / test (split_corpus)
Ids = np.ndarray | Pieces  # a split: a view of the corpus's ids, or stretches of it read as one


@dataclass(frozen=True)
class Splits:
    """Train / val / test parts of a corpus: views or Pieces, no copies."""

    train: Ids
    val: Ids
    test: Ids


def check_split(val_frac: float, test_frac: float) -> None:
    if not (0 < val_frac < 1 and 0 <= test_frac < 1 and val_frac + test_frac < 1):
        raise CharRNNError(
            f"split fractions must satisfy 0 < --val-frac ({val_frac}), 0 <= --test-frac"
            f" ({test_frac}) and --val-frac + --test-frac < 1"
        )


def split_sizes(n: int, val_frac: float, test_frac: float) -> tuple[int, int, int]:
    """(train, val, test) characters of a corpus of n: val and test are the
    end, in that order, each the fraction's floor."""
    check_split(val_frac, test_frac)
    n_test = int(n * test_frac)
    n_val = int(n * val_frac)
    if n_val < 2:
        raise CharRNNError(
            f"the validation split has {n_val} characters (corpus: {n}); it needs at least 2:"
            " use a larger corpus or a larger --val-frac"
        )
    return n - n_val - n_test, n_val, n_test


def split_corpus(ids: np.ndarray, val_frac: float, test_frac: float, mode: str = "contiguous",
                 file_starts: tuple[int, ...] = (0,), seed: int = 0) -> Splits:  # fmt: skip
    """contiguous: train, val and test one after another, val and test at
    the end; blocks: the same sizes, interleaved through the corpus; files:
    whole files drawn by `seed` (pieces.py)."""
    n_train, n_val, n_test = split_sizes(len(ids), val_frac, test_frac)
    if mode == "blocks":
        return Splits(*blocks(ids, n_val, n_test))
    if mode == "files":
        split_chars(len(ids), val_frac, test_frac, mode, file_starts, seed)  # refuses what cannot be split
        return Splits(*by_files(ids, file_starts, n_val, n_test, seed))
    if mode != "contiguous":
        raise CharRNNError(f"--split must be one of {', '.join(SPLITS)}, not {mode!r}")
    return Splits(ids[:n_train], ids[n_train : n_train + n_val], ids[n_train + n_val :])


def split_chars(n: int, val_frac: float, test_frac: float, mode: str = "contiguous",
                file_starts: tuple[int, ...] = (0,), seed: int = 0) -> tuple[int, int, int]:  # fmt: skip
    """(train, val, test) characters split_corpus gives, without the ids."""
    sizes = split_sizes(n, val_frac, test_frac)
    if mode != "files":
        return sizes
    _check_files(file_starts)
    chars = files_split_sizes(n, file_starts, sizes[1], sizes[2], seed)
    if chars[1] < 2:
        raise CharRNNError(f"--split files found no file short enough for the validation split (at most"
                           f" {2 * sizes[1]:,} characters): use --split blocks or contiguous")  # fmt: skip
    return chars


MIN_FILES = 10  # for --split files: fewer, and val would be one or two files


def _check_files(file_starts: tuple[int, ...]) -> None:
    if len(file_starts) < MIN_FILES:
        raise CharRNNError(f"--split files draws whole files: it needs a directory of at least {MIN_FILES}"
                           f" (this corpus has {len(file_starts)}); use --split contiguous or blocks")  # fmt: skip


def steps_per_epoch(n: int, batch_size: int, seq_len: int) -> int:
    """Steps of one epoch over n characters (StreamBatches), refused when not one fits."""
    steps = (n - 1) // batch_size // seq_len
    if steps == 0:
        raise CharRNNError(_too_short(n, batch_size, seq_len))
    return steps


class StreamBatches:
    """Truncated-BPTT batches: B contiguous streams read T characters a step.

    The split is cut into B equal streams laid side by side; step k reads
    column block k of every stream, and the hidden state a stream ends block k
    with is the state it starts block k+1 with (carried, detached). Targets
    are the inputs shifted by one character::

        ids:  a b c d e f g h i j k l m n o p q r s t u v w x y
                                                   (B=3, T=4, L=8)
        x  stream 0: a b c d | e f g h     y: b c d e | f g h i
           stream 1: i j k l | m n o p        j k l m | n o p q
           stream 2: q r s t | u v w x        r s t u | v w x y
                     step 0    step 1

    State is reset to zero at each epoch's start. The last L mod T columns,
    and the last (N-1) mod B characters, are not read.

    Only views are taken (of an array) or positions mapped (of Pieces), so
    a memory-mapped corpus stays mapped and each process pages in only its
    own streams.
    """

    def __init__(self, ids: Ids, batch_size: int, seq_len: int, rows: slice = slice(None)):
        self.steps = steps_per_epoch(len(ids), batch_size, seq_len)
        stream_len = (len(ids) - 1) // batch_size
        self.seq_len = seq_len
        # `rows` picks this process's streams when several share the batch.
        if isinstance(ids, Pieces):
            self.pieces, self.first = ids, (np.arange(batch_size, dtype=np.int64) * stream_len)[rows]  # (B,)
            return
        self.pieces = None
        self.x = ids[: batch_size * stream_len].reshape(batch_size, stream_len)[rows]  # (B, L)
        self.y = ids[1 : batch_size * stream_len + 1].reshape(batch_size, stream_len)[rows]

    def __len__(self) -> int:
        return self.steps

    def fresh(self, k: int) -> bool:
        """Whether step k starts from the zero state: an epoch's first."""
        return k == 0

    def rows(self, k: int) -> int:
        return len(self.first) if self.pieces is not None else self.x.shape[0]

    def batch(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, targets) of step k of an epoch, each (B, T) int64."""
        if self.pieces is not None:
            pos = self.first[:, None] + np.arange(k * self.seq_len, (k + 1) * self.seq_len)[None, :]  # (B, T)
            return _as_long(self.pieces[pos]), _as_long(self.pieces[pos + 1])
        cols = slice(k * self.seq_len, (k + 1) * self.seq_len)
        return _as_long(self.x[:, cols]), _as_long(self.y[:, cols])


def _as_long(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a.astype(np.int64))


def _too_short(n: int, batch_size: int, seq_len: int) -> str:
    need = batch_size * seq_len + 1
    fits = (n - 1) // seq_len
    hint = (
        f"--batch-size {fits} would fit with --seq-len {seq_len}"
        if fits >= 1
        else f"--batch-size 1 --seq-len {max(1, n - 1)} would fit"
    )
    return (
        f"the training split has {n} characters, too few for one batch of"
        f" --batch-size {batch_size} x --seq-len {seq_len} (needs {need}): {hint},"
        " or use a larger corpus"
    )


IGNORE = -100  # a target that is read, not scored (F.cross_entropy's ignore_index)


def stream_count(n: int, streams: int, warmup: int) -> int:
    """How many of `streams` eval_streams uses on n characters: each must
    score at least as many as it warms up on."""
    targets = n - 1
    return max(1, min(streams, targets // (2 * warmup) if warmup else targets))


def eval_streams(
    ids: Ids, streams: int, seq_len: int, warmup: int, rank: int = 0, world: int = 1, sample: int | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Every target of `ids` (each character after the first) scored
    exactly once, by up to `streams` contiguous streams read side by side,
    `seq_len` steps at a time, the state carried. Stream 0 starts at the
    text's start, as one stream would; each other stream starts `warmup`
    characters before its first scored target, so its state has seen them
    (they are read, not scored: their targets are IGNORE). A stream must
    score at least as many characters as it warms up on, so a short text
    gets fewer streams; streams=1 is the exact single-stream score.
    With `sample` below the text's targets, only about that many are
    scored: one equal block a stream, the blocks spread evenly from the
    text's start to its end (the same characters every time; see
    sample_layout). Yields (x, y) of shape (streams, <= seq_len); with
    world > 1, this process takes streams rank, rank + world, ..."""
    targets = len(ids) - 1
    if targets < 1:
        return
    layout = sample_layout(targets, streams, warmup, sample) if sample else None
    first, scored, end = layout or full_layout(targets, streams, warmup)
    steps = int((end - first).max())  # every stream reads this many characters
    first, scored, end = first[rank::world], scored[rank::world], end[rank::world]
    if len(first) == 0:  # more processes than streams: this one has none
        return
    for t0 in range(0, steps, seq_len):
        pos = first[:, None] + np.arange(t0, min(t0 + seq_len, steps))[None, :]  # input positions
        x = ids[np.minimum(pos, targets - 1)]
        y = ids[np.minimum(pos + 1, targets)].astype(np.int64)
        y[(pos < scored[:, None]) | (pos >= end[:, None])] = IGNORE  # warm-up, or past the stream's part
        yield _as_long(x), torch.from_numpy(y)


Layout = tuple[np.ndarray, np.ndarray, np.ndarray]  # per stream: first read, first scored, end (input positions)


def full_layout(targets: int, streams: int, warmup: int) -> Layout:
    """Streams that tile every target: stream k scores from where stream
    k-1 stops, after reading the `warmup` characters before."""
    b = stream_count(targets + 1, streams, warmup)
    steps = -(-(targets + (b - 1) * warmup) // b)  # every stream reads this many characters
    scored = np.array([0] + [steps + (k - 1) * (steps - warmup) for k in range(1, b)], dtype=np.int64)
    first = np.maximum(scored - warmup, 0)
    return first, scored, np.minimum(first + steps, targets)


MAX_SAMPLE_ROWS = 512  # blocks of a sample read side by side at most; past this, the blocks grow


def sample_layout(targets: int, streams: int, warmup: int, sample: int) -> Layout | None:
    """Rows that score `sample` targets (rounded up to a multiple of the
    rows) in equal blocks spread evenly over the text, the first at its
    start, the last at its end, each warmed up as full_layout's are; None
    when the blocks would cover the text (then every target is scored)::

        text:   |==----==----==----==----==|   = scored, - skipped
        blocks:  0     1     2     3     4

    Many short blocks stand for the text better than a few long ones
    (measured on tinyshakespeare: 256 blocks of 250 characters erred by 0.009
    nats/char on average, 16 of 4,000 by 0.025), and each costs its
    warm-up: so a block is 4 warm-ups long (the warm-up a fifth of what is
    read), and there are as many as that makes, read side by side, up to
    MAX_SAMPLE_ROWS (at least `streams`, where the sample allows)."""
    if warmup:
        b = max(1, min(sample // (4 * warmup), MAX_SAMPLE_ROWS))
        b = max(b, min(streams, sample // warmup))  # a small sample: blocks as short as a warm-up
    else:
        b = max(1, min(streams, sample))
    size = -(-sample // b)
    if b * size >= targets:
        return None
    scored = np.round(np.linspace(0, targets - size, b)).astype(np.int64)
    first = np.maximum(scored - warmup, 0)
    return first, scored, scored + size
