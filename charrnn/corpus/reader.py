"""Reading a corpus: a text file or a directory of them, checked, scanned
and encoded.

A corpus is read twice in chunks, never held whole as a Python string:
pass 1 validates the text and collects its character set, pass 2 encodes it
into a preallocated array of the smallest unsigned type that fits the vocab
(1 byte per character for most corpora). Peak memory is that array plus one
chunk, so a 100 MB corpus costs about 100 MB.
"""

from __future__ import annotations

import codecs
import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import CharRNNError
from ..typecheck import check_types
from .documents import DOC_END, as_lines, check_mode
from .vocab import Vocab

SHIPPED_CORPUS = Path(__file__).resolve().parent.parent.parent / "corpora" / "shakespeare.txt"
CHUNK_BYTES = 1 << 20
MAX_CODE_POINT = 0x10FFFF
SNIFF_BYTES = 8192  # how much of a file we read to decide whether it is text


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
    # Where each file begins in ids: file i is [file_starts[i], file_starts[i + 1]),
    # the newline joining it to the next included (the files split draws whole files).
    file_starts: tuple[int, ...] = (0,)


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


def read_file(path: Path, encoding: str, digest, start: int = 0, end: int | None = None) -> Iterator[str]:
    """Decoded chunks of one file, or of its bytes [start, end) (which must
    begin and end on character boundaries); bad bytes raise with their
    byte offset in the file."""
    dec = codecs.getincrementaldecoder(encoding)(errors="strict")
    utf8 = codecs.lookup(encoding).name == "utf-8"
    nul_means_binary = _ascii_compatible(encoding)
    fed = start  # bytes of the file consumed so far
    with open(path, "rb") as f:
        f.seek(start)
        while True:
            raw = f.read(CHUNK_BYTES if end is None else min(CHUNK_BYTES, end - fed))
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


def _read_chunks(files: list[Path], encoding: str, digest, next_file: Callable[[], None] = lambda: None,
                 documents: str = "") -> Iterator[str]:  # fmt: skip
    """Decoded chunks of all files; files are separated by a newline when
    one does not already end with one. `next_file` is called as each file
    begins. In documents mode, the text as documents (documents.py): each
    line, or each non-empty file, one."""
    if documents == "lines":
        yield from as_lines(_read_chunks(files, encoding, digest, next_file))
        return
    if documents == "files":
        yield from _as_files(files, encoding, digest, next_file)
        return
    for i, path in enumerate(files):
        next_file()
        last = ""
        for text in read_file(path, encoding, digest):
            last = text
            yield text
        if i < len(files) - 1 and last and not last.endswith("\n"):
            yield "\n"


def _as_files(files: list[Path], encoding: str, digest, next_file: Callable[[], None]) -> Iterator[str]:
    yield DOC_END
    for path in files:
        next_file()
        empty = True
        for text in read_file(path, encoding, digest):
            empty = False
            yield text
        if not empty:
            yield DOC_END


def shipped_corpus() -> Path:
    """The corpus `charrnn train` uses when given none (corpora/README.md)."""
    if not SHIPPED_CORPUS.is_file():
        raise CharRNNError(
            f"the shipped corpus {SHIPPED_CORPUS} is not in this installation"
            " (it comes with a source checkout: pip install -e .); give a corpus path"
        )
    return SHIPPED_CORPUS


def read_text_corpus(path: str | Path, encoding: str = "utf-8", extra_chars: Iterable[str] = (),
                     documents: str = "") -> Corpus:  # fmt: skip
    """Read and encode a text corpus (a file, or a directory of them). Its
    vocab is the corpus's characters and any `extra_chars` (a fine-tuned
    model keeps its parent's). `documents` ("lines" or "files") reads it
    as documents, joined by their end marker (documents.py)."""
    check_mode(documents)
    path = Path(path)
    check_encoding(encoding)
    files = corpus_files(path, encoding)
    try:
        charset, n_chars, sha = scan(files, encoding, documents)
        if n_chars == 0 or (documents and charset <= {DOC_END}):
            raise CharRNNError(f"corpus {path} is empty" + (f" (no {documents[:-1]} holds a character)" if documents else ""))
        vocab = Vocab.from_chars(charset | set(extra_chars))
        ids = np.empty(n_chars, dtype=vocab.dtype)
        pos, starts = 0, []
        for text in _read_chunks(files, encoding, hashlib.sha256(), lambda: starts.append(pos), documents):
            chunk = vocab.encode(text)
            ids[pos : pos + len(chunk)] = chunk
            pos += len(chunk)
    except OSError as e:
        raise CharRNNError(f"cannot read corpus {path}: {e.strerror or e}") from None
    if pos != n_chars:
        raise CharRNNError(f"corpus {path} changed while it was being read")
    # An absolute path, so eval and resume find the corpus from any directory.
    info = CorpusInfo(str(path.resolve()), sha, n_chars, len(files), encoding)
    return Corpus(ids, vocab, info, (0,) if documents else tuple(starts))  # documents are split by documents.py


def check_encoding(encoding: str) -> None:
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise CharRNNError(f"unknown encoding: {encoding}") from None


def scan(files: list[Path], encoding: str, documents: str = "") -> tuple[set[str], int, str]:
    """Pass 1: (the character set, the number of characters, the sha256 of
    the raw bytes of every file in order), text checked as it is read."""
    seen = np.zeros(MAX_CODE_POINT + 1, dtype=bool)  # marking code points: 4x faster than a set of str
    n_chars = 0
    digest = hashlib.sha256()
    for text in _read_chunks(files, encoding, digest, documents=documents):
        seen[code_points(text)] = True
        n_chars += len(text)
    return {chr(c) for c in np.flatnonzero(seen)}, n_chars, digest.hexdigest()


def code_points(text: str) -> np.ndarray:
    """The text's code points: uint8 for ASCII text (the common case, 15x
    faster to make), else uint32. Decoded text holds no lone surrogates
    (the decoders are strict), so this cannot fail."""
    if text.isascii():
        return np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    return np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
