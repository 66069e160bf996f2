"""Corpus loading, the vocabulary, splits and truncated-BPTT batches.

A corpus is read twice in chunks, never held whole as a Python string:
pass 1 validates the text and collects its character set, pass 2 encodes it
into a preallocated array of the smallest unsigned type that fits the vocab
(1 byte per character for most corpora). Peak memory is that array plus one
chunk, so a 100 MB corpus costs about 100 MB.
"""

from __future__ import annotations

import codecs
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import CharRNNError
from .typecheck import check_types

SHIPPED_CORPUS = Path(__file__).resolve().parent.parent / "corpora" / "shakespeare.txt"
CHUNK_BYTES = 1 << 20
SNIFF_BYTES = 8192  # how much of a file we read to decide whether it is text


@dataclass(frozen=True)
class Vocab:
    """The model's characters (Unicode code points), sorted; id = position."""

    chars: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.chars:
            raise CharRNNError("the vocabulary is empty")
        if any(len(c) != 1 for c in self.chars) or list(self.chars) != sorted(set(self.chars)):
            raise CharRNNError("a vocabulary must be distinct single characters in sorted order")
        max_cp = ord(self.chars[-1])
        # Code point -> id lookup table; the extra last slot (-1) catches any
        # code point above the vocab's largest.
        lut = np.full(max_cp + 2, -1, dtype=np.int64)
        lut[[ord(c) for c in self.chars]] = np.arange(len(self.chars))
        object.__setattr__(self, "_lut", lut)

    @classmethod
    def from_chars(cls, chars: Iterable[str]) -> Vocab:
        return cls(tuple(sorted(set(chars))))

    @property
    def size(self) -> int:
        return len(self.chars)

    @property
    def dtype(self) -> np.dtype:
        """Smallest unsigned integer type that holds every id."""
        for dt in (np.uint8, np.uint16, np.uint32):
            if self.size - 1 <= np.iinfo(dt).max:
                return np.dtype(dt)
        raise AssertionError("unreachable: Unicode has fewer than 2**32 code points")

    def code_points(self, text: str) -> np.ndarray:
        try:
            return np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
        except UnicodeEncodeError as e:
            raise CharRNNError(f"text holds an unpaired surrogate at character {e.start}") from None

    def encode(self, text: str) -> np.ndarray:
        """Text -> ids (compact dtype); characters outside the vocab are
        refused, as `encode_known` refuses them."""
        return self.encode_known(text)[0]

    def encode_known(self, text: str, where: str = "text", skip_unknown: bool = False,
                     skipping: str = "") -> tuple[np.ndarray, int]:  # fmt: skip
        """Text -> (ids, characters left out), by `translate`."""
        lut = self._lut  # type: ignore[attr-defined]
        ids = lut[np.minimum(self.code_points(text), len(lut) - 1)]
        if (ids >= 0).all():  # the usual case, in one pass
            return ids.astype(self.dtype), 0
        alphabet = Vocab.from_chars(text)
        return self.translate(alphabet.encode(text), alphabet, where, skip_unknown, skipping)

    def translate(self, ids: np.ndarray, alphabet: Vocab, where: str = "text", skip_unknown: bool = False,
                  skipping: str = "") -> tuple[np.ndarray, int]:  # fmt: skip
        """A text written in `alphabet`'s ids -> the same text in this vocab's
        ids, and how many characters were left out: the one place a text's
        characters outside the vocab (ones the model has never seen) are
        handled. They are refused in one line naming each and how often it
        occurs (`where` holds them; `skipping` says what --unknown skip
        would do), or with skip_unknown left out."""
        lut = self._lut  # type: ignore[attr-defined]
        mine = lut[np.minimum(alphabet.code_points("".join(alphabet.chars)), len(lut) - 1)]  # alphabet id -> id or -1
        known = mine >= 0
        mapped = np.where(known, mine, 0).astype(self.dtype)
        if known.all():
            return mapped[ids], 0
        counts = np.bincount(ids, minlength=alphabet.size)
        unseen = {alphabet.chars[i]: int(counts[i]) for i in np.flatnonzero(~known) if counts[i]}
        if unseen and not skip_unknown:
            raise unseen_error(where, unseen, skipping)
        return mapped[ids[known[ids]]], sum(unseen.values())

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.chars[int(i)] for i in ids)

    def diff(self, other: Vocab) -> tuple[list[str], list[str]]:
        """(characters `other` adds, characters it removes) relative to self."""
        mine, theirs = set(self.chars), set(other.chars)
        return sorted(theirs - mine), sorted(mine - theirs)


def describe_chars(chars: Iterable[str], limit: int = 20) -> str:
    """Characters quoted, with control and other invisible ones escaped
    (repr), so they never reach a terminal raw."""
    chars = list(chars)
    shown = " ".join(repr(c) for c in chars[:limit])
    return shown + (f" ... ({len(chars)} in all)" if len(chars) > limit else "")


def describe_unseen(counts: dict[str, int], limit: int = 20) -> str:
    """'\\xe6' (3 times), '\\u7dad' (once): characters a model never saw, most
    frequent first, escaped as describe_chars does."""
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    shown = ", ".join(f"{c!r} ({'once' if n == 1 else f'{n:,} times'})" for c, n in ranked[:limit])
    return shown + (f" ... ({len(ranked)} characters in all)" if len(ranked) > limit else "")


def unseen_error(where: str, counts: dict[str, int], skipping: str = "") -> CharRNNError:
    hint = f" (--unknown skip {skipping})" if skipping else ""
    return CharRNNError(f"{where} holds characters the model has never seen: {describe_unseen(counts)}{hint}")


# --------------------------------------------------------------------------
# Reading files


@dataclass(frozen=True)
class CorpusInfo:
    """What a checkpoint remembers about its corpus (to find it and check it)."""

    path: str
    sha256: str  # of the raw bytes of every file, in order
    n_chars: int
    n_files: int
    encoding: str

    def __post_init__(self) -> None:
        check_types(self)  # read back from checkpoints


@dataclass(frozen=True)
class Corpus:
    ids: np.ndarray  # (N,) compact unsigned ids
    vocab: Vocab
    info: CorpusInfo


def _ascii_compatible(encoding: str) -> bool:
    """Whether NUL bytes in a file mean binary (false for UTF-16 and UTF-32)."""
    try:
        return "a\0".encode(encoding) == b"a\0"
    except (UnicodeError, LookupError):
        return False


def _is_text_file(path: Path, encoding: str) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(SNIFF_BYTES)
    except OSError:
        return False
    if _ascii_compatible(encoding):
        return b"\0" not in head
    return "\0" not in head.decode(encoding, errors="ignore")


def corpus_files(path: Path, encoding: str = "utf-8") -> list[Path]:
    """The files a corpus path means: the file itself, or a directory's text
    files (recursively, sorted, hidden ones skipped)."""
    if not path.exists():
        raise CharRNNError(f"corpus not found: {path}")
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise CharRNNError(f"corpus is neither a file nor a directory: {path}")
    files = [
        p
        for p in sorted(path.rglob("*"))
        if p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(path).parts)
        and _is_text_file(p, encoding)
    ]
    if not files:
        raise CharRNNError(f"directory {path} holds no text files")
    return files


def _read_file(path: Path, encoding: str, digest) -> Iterator[str]:
    """Decoded chunks of one file; bad bytes raise with their byte offset."""
    dec = codecs.getincrementaldecoder(encoding)(errors="strict")
    utf8 = codecs.lookup(encoding).name == "utf-8"
    nul_means_binary = _ascii_compatible(encoding)
    fed = 0  # bytes of the file consumed so far
    with open(path, "rb") as f:
        while True:
            raw = f.read(CHUNK_BYTES)
            final = not raw
            digest.update(raw)
            if fed == 0 and utf8 and raw.startswith(codecs.BOM_UTF8):
                raw, fed = raw[len(codecs.BOM_UTF8) :], len(codecs.BOM_UTF8)  # strip a BOM
            nul = raw.find(b"\0") if nul_means_binary else -1
            if nul >= 0:
                raise CharRNNError(
                    f"{path} looks binary: NUL byte at byte offset {fed + nul}"
                    " (UTF-16 or UTF-32 text needs --encoding)"
                )
            pending = len(dec.getstate()[0])
            try:
                text = dec.decode(raw, final=final)
            except UnicodeDecodeError as e:
                offset = fed - pending + e.start
                raise CharRNNError(
                    f"{path} is not valid {encoding}: byte 0x{e.object[e.start]:02x} at byte offset {offset}"
                    " (use --encoding if the file uses another encoding)"
                ) from None
            except UnicodeError as e:  # not a byte's fault: e.g. UTF-16 with no byte-order mark
                raise CharRNNError(f"{path} is not valid {encoding}: {e} (use --encoding utf-16-le or -be)") from None
            if not nul_means_binary and "\0" in text:
                raise CharRNNError(f"{path} looks binary: it holds U+0000 characters")
            fed += len(raw)
            if text:
                yield text
            if final:
                return


def _read_chunks(files: list[Path], encoding: str, digest) -> Iterator[str]:
    """Decoded chunks of all files; files are separated by a newline when
    one does not already end with one."""
    for i, path in enumerate(files):
        last = ""
        for text in _read_file(path, encoding, digest):
            last = text
            yield text
        if i < len(files) - 1 and last and not last.endswith("\n"):
            yield "\n"


def shipped_corpus() -> Path:
    """The corpus `charrnn train` uses when given none (corpora/README.md)."""
    if not SHIPPED_CORPUS.is_file():
        raise CharRNNError(
            f"the shipped corpus {SHIPPED_CORPUS} is not in this installation"
            " (it comes with a source checkout: pip install -e .); give a corpus path"
        )
    return SHIPPED_CORPUS


def load_corpus(path: str | Path, encoding: str = "utf-8", extra_chars: Iterable[str] = ()) -> Corpus:
    """Read and encode a corpus (a text file, or a directory of them). Its
    vocab is the corpus's characters and any `extra_chars` (a fine-tuned
    model keeps its parent's)."""
    path = Path(path)
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise CharRNNError(f"unknown encoding: {encoding}") from None
    files = corpus_files(path, encoding)
    try:
        charset, n_chars, sha = _scan(files, encoding)
        if n_chars == 0:
            raise CharRNNError(f"corpus {path} is empty")
        vocab = Vocab.from_chars(charset | set(extra_chars))
        ids = np.empty(n_chars, dtype=vocab.dtype)
        pos = 0
        for text in _read_chunks(files, encoding, hashlib.sha256()):
            chunk = vocab.encode(text)
            ids[pos : pos + len(chunk)] = chunk
            pos += len(chunk)
    except OSError as e:
        raise CharRNNError(f"cannot read corpus {path}: {e.strerror or e}") from None
    if pos != n_chars:
        raise CharRNNError(f"corpus {path} changed while it was being read")
    # An absolute path, so eval and resume find the corpus from any directory.
    info = CorpusInfo(str(path.resolve()), sha, n_chars, len(files), encoding)
    return Corpus(ids, vocab, info)


def _scan(files: list[Path], encoding: str) -> tuple[set[str], int, str]:
    charset: set[str] = set()
    n_chars = 0
    digest = hashlib.sha256()
    for text in _read_chunks(files, encoding, digest):
        charset.update(text)
        n_chars += len(text)
    return charset, n_chars, digest.hexdigest()


# --------------------------------------------------------------------------
# Splits and batches


@dataclass(frozen=True)
class Splits:
    """Contiguous train / val / test parts of a corpus (views, no copies)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


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


def split_corpus(ids: np.ndarray, val_frac: float, test_frac: float) -> Splits:
    n_train, n_val, _ = split_sizes(len(ids), val_frac, test_frac)
    return Splits(ids[:n_train], ids[n_train : n_train + n_val], ids[n_train + n_val :])


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
    """

    def __init__(self, ids: np.ndarray, batch_size: int, seq_len: int, rows: slice = slice(None)):
        self.steps = steps_per_epoch(len(ids), batch_size, seq_len)
        stream_len = (len(ids) - 1) // batch_size
        self.seq_len = seq_len
        # `rows` picks this process's streams when several share the batch.
        self.x = ids[: batch_size * stream_len].reshape(batch_size, stream_len)[rows]  # (B, L)
        self.y = ids[1 : batch_size * stream_len + 1].reshape(batch_size, stream_len)[rows]

    def __len__(self) -> int:
        return self.steps

    def batch(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, targets) of step k of an epoch, each (B, T) int64."""
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
    ids: np.ndarray, streams: int, seq_len: int, warmup: int, rank: int = 0, world: int = 1
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Every target of `ids` (each character after the first) scored
    exactly once, by up to `streams` contiguous streams read side by side,
    `seq_len` steps at a time, the state carried. Stream 0 starts at the
    text's start, as one stream would; each other stream starts `warmup`
    characters before its first scored target, so its state has seen them
    (they are read, not scored: their targets are IGNORE). A stream must
    score at least as many characters as it warms up on, so a short text
    gets fewer streams; streams=1 is the exact single-stream score.
    Yields (x, y) of shape (streams, <= seq_len); with world > 1, this
    process takes streams rank, rank + world, ..."""
    targets = len(ids) - 1
    if targets < 1:
        return
    b = stream_count(len(ids), streams, warmup)
    steps = -(-(targets + (b - 1) * warmup) // b)  # every stream reads this many characters
    # stream k reads from first[k]; it scores from scored[k] (stream 0 from its start)
    scored = np.array([0] + [steps + (k - 1) * (steps - warmup) for k in range(1, b)], dtype=np.int64)
    first = np.maximum(scored - warmup, 0)
    first, scored = first[rank::world], scored[rank::world]
    if len(first) == 0:  # more processes than streams: this one has none
        return
    for t0 in range(0, steps, seq_len):
        pos = first[:, None] + np.arange(t0, min(t0 + seq_len, steps))[None, :]  # input positions
        x = ids[np.minimum(pos, targets - 1)]
        y = ids[np.minimum(pos + 1, targets)].astype(np.int64)
        y[(pos < scored[:, None]) | (pos >= targets)] = IGNORE  # warm-up, or past the text's end
        yield _as_long(x), torch.from_numpy(y)


