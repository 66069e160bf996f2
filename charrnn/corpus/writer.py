"""Encoding a corpus into ids.bin, in worker processes where that helps.

The files are cut into pieces: each file, and a UTF-8 file past
PIECE_BYTES cut again where a character starts (other encodings are read
whole, their characters' edges unknown without decoding). Two passes map
over the pieces in a pool of processes, each piece read in chunks, so a
process holds one chunk whatever the corpus's size:

    pass 1  piece -> its characters (marked code points), how many, its
            last one, the sha256 of its bytes
            (meanwhile the main process hashes every byte in order: the
            source checksum, the one part that cannot be shared out)
    --      the vocabulary; each piece's place in ids.bin; the newline
            between two files where one does not end with one
    pass 2  piece -> its ids, written at its place (pwrite); the sha256
            of its bytes again, which must be pass 1's: a file changed
            between the passes is refused

The result is the same whatever the number of workers (tests/test_prepare.py).
"""

from __future__ import annotations

import codecs
import hashlib
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from ..errors import CharRNNError
from . import reader
from .vocab import Vocab

PIECE_BYTES = 1 << 26  # 64 MB: enough pieces to keep the workers busy, few enough to cost nothing
HASH_BYTES = 1 << 24


@dataclass(frozen=True)
class Piece:
    path: Path
    file: int  # the file's index in the corpus
    start: int  # bytes [start, end) of the file
    end: int


@dataclass(frozen=True)
class Scanned:
    code_points: np.ndarray  # the distinct code points the piece holds
    n_chars: int
    last: str  # its last character ("" if none)
    sha256: str  # of its bytes


@dataclass(frozen=True)
class Encoded:
    vocab: Vocab
    n_chars: int
    sha256: str  # of the source's bytes, as reader.scan computes it
    ids_sha256: str
    spans: list[tuple[int, int]]  # each file's [start, end) in ids.bin


def default_workers() -> int:
    return max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def pieces(files: list[Path], encoding: str) -> list[Piece]:
    utf8 = codecs.lookup(encoding).name == "utf-8"
    out = []
    for i, path in enumerate(files):
        size = path.stat().st_size
        cuts = [0]
        while utf8 and size - cuts[-1] > PIECE_BYTES:
            cuts.append(_char_start(path, cuts[-1] + PIECE_BYTES))
        out += [Piece(path, i, a, b) for a, b in zip(cuts, cuts[1:] + [size])]
    return out


def _char_start(path: Path, at: int) -> int:
    """The first byte at or after `at` that is not a UTF-8 continuation byte."""
    with open(path, "rb") as f:
        f.seek(at)
        head = f.read(4)
    skip = next((k for k, b in enumerate(head) if b & 0xC0 != 0x80), len(head))
    return at + skip


def encode(files: list[Path], encoding: str, ids_path: Path, workers: int, source: Path) -> Encoded:
    """Write the corpus's ids to `ids_path` (which must not exist)."""
    parts = pieces(files, encoding)
    workers = max(1, min(workers, len(parts)))
    with _pool(workers) as run:
        hashed: dict = {}
        hasher = threading.Thread(target=_hash_into, args=(files, hashed), daemon=True)  # while pass 1 runs
        scans = run(partial(_scan_piece, encoding=encoding), parts, hasher.start)
        hasher.join()
        if "error" in hashed:
            raise hashed["error"]
        lasts, chars = _file_ends(scans, parts, len(files))
        seps = [i < len(files) - 1 and bool(last) and last != "\n" for i, last in enumerate(lasts)]
        n_chars = sum(s.n_chars for s in scans) + sum(seps)
        if n_chars == 0:
            raise CharRNNError(f"corpus {source} is empty")
        vocab = Vocab.from_chars(chars | ({"\n"} if any(seps) else set()))
        offsets, spans = _layout(scans, parts, seps, len(files))
        table = np.zeros(ord(vocab.chars[-1]) + 1, dtype=vocab.dtype.newbyteorder("<"))  # code point -> id
        table[[ord(c) for c in vocab.chars]] = np.arange(vocab.size)
        fd = os.open(ids_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            os.ftruncate(fd, n_chars * vocab.dtype.itemsize)
            newline = table[ord("\n")].tobytes() if any(seps) else b""
            for (_, end), sep in zip(spans, seps):
                if sep:
                    os.pwrite(fd, newline, end * vocab.dtype.itemsize)
            again = run(partial(_encode_piece, encoding=encoding, table=table, ids_path=ids_path),
                        list(zip(parts, offsets)))  # fmt: skip
            if [a.sha256 for a in again] != [s.sha256 for s in scans] or any(
                a.n_chars != s.n_chars for a, s in zip(again, scans)
            ):
                raise CharRNNError(f"corpus {source} changed while it was being read")
            os.fsync(fd)
        finally:
            os.close(fd)
    return Encoded(vocab, n_chars, hashed["sha256"], _hash_files([ids_path]), spans)


def _pool(workers: int):
    """A context giving run(fn, items, started=None) -> [fn(item) for item in items], in order, in `workers`
    processes (forked: nothing to import again) or in this one."""
    return _Pool(workers)


class _Pool:
    def __init__(self, workers: int):
        self.workers = workers
        self.executor: Executor | None = None

    def __enter__(self):
        if self.workers > 1:
            context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
            self.executor = ProcessPoolExecutor(self.workers, mp_context=context)
        return self.run

    def __exit__(self, *exc):
        if self.executor is not None:
            self.executor.shutdown(cancel_futures=True)

    def run(self, fn: Callable, items: list, started: Callable[[], None] | None = None) -> list:
        if self.executor is None:
            if started:
                started()
            return [fn(item) for item in items]
        futures = [self.executor.submit(fn, item) for item in items]
        if started:  # after the submits: the workers are forked before any thread of ours starts
            started()
        return [f.result() for f in futures]  # in order: the first piece's error is the one shown


def _scan_piece(piece: Piece, encoding: str) -> Scanned:
    digest = hashlib.sha256()
    seen = np.zeros(reader.MAX_CODE_POINT + 1, dtype=bool)
    n, last = 0, ""
    for text in reader.read_file(piece.path, encoding, digest, piece.start, piece.end):
        seen[reader.code_points(text)] = True
        n += len(text)
        last = text[-1]
    return Scanned(np.flatnonzero(seen).astype(np.uint32), n, last, digest.hexdigest())


def _encode_piece(item: tuple[Piece, int], encoding: str, table: np.ndarray, ids_path: Path) -> Scanned:
    piece, pos = item
    digest = hashlib.sha256()
    n = 0
    fd = os.open(ids_path, os.O_WRONLY)
    try:
        for text in reader.read_file(piece.path, encoding, digest, piece.start, piece.end):
            cp = reader.code_points(text)
            if cp.max() >= len(table):  # a character pass 1 did not see: the file changed (the checksum says so)
                cp = np.minimum(cp, len(table) - 1)
            view, at = memoryview(table[cp].tobytes()), (pos + n) * table.itemsize
            while view:  # a write may take fewer bytes than given
                written = os.pwrite(fd, view, at)
                view, at = view[written:], at + written
            n += len(text)
    finally:
        os.close(fd)
    return Scanned(np.zeros(0, dtype=np.uint32), n, "", digest.hexdigest())


def _file_ends(scans: list[Scanned], parts: list[Piece], n_files: int) -> tuple[list[str], set[str]]:
    """Each file's last character ("" for an empty file), and every character of the corpus."""
    last = [""] * n_files
    seen = np.zeros(reader.MAX_CODE_POINT + 1, dtype=bool)
    for s, p in zip(scans, parts):
        if s.last:
            last[p.file] = s.last
        seen[s.code_points] = True
    return last, {chr(c) for c in np.flatnonzero(seen)}


def _layout(scans: list[Scanned], parts: list[Piece], seps: list[bool],
            n_files: int) -> tuple[list[int], list[tuple[int, int]]]:  # fmt: skip
    """Each piece's first position in ids.bin, and each file's [start, end)."""
    offsets, starts, ends, pos = [], [None] * n_files, [0] * n_files, 0
    for s, p in zip(scans, parts):
        if starts[p.file] is None:
            if p.file and seps[p.file - 1]:
                pos += 1  # the newline after the file before
            starts[p.file] = pos
        offsets.append(pos)
        pos += s.n_chars
        ends[p.file] = pos
    return offsets, list(zip(starts, ends))


def _hash_into(files: list[Path], out: dict) -> None:
    try:
        out["sha256"] = _hash_files(files)
    except OSError as e:  # raised again by the main thread
        out["error"] = e


def _hash_files(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        with open(path, "rb") as f:
            while block := f.read(HASH_BYTES):
                digest.update(block)
    return digest.hexdigest()
