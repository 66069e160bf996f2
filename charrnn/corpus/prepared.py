"""Prepared corpora: a corpus encoded once into a directory that every
later run maps instead of decoding the text again.

    DIR/ids.bin        the ids, raw little-endian uint8, uint16 or uint32
                       (the vocabulary's smallest type), one per character
    DIR/manifest.json  the format version, dtype, n_chars, the vocabulary's
                       characters, the encoding, the source's path and the
                       sha256 of its raw bytes (as CorpusInfo records it for
                       the raw text, so a run may begin on one form and
                       resume on the other), the sha256 of ids.bin, and each
                       source file's relative path and [start, end)
                       character offsets

Writing streams, in worker processes where there are several CPUs
(writer.py): the text is read twice in chunks, once to learn its
characters and once to encode it straight into ids.bin, so memory is a
chunk a worker whatever the corpus's size. The directory is built under a
hidden temporary name beside --out and renamed into place whole.

Reading maps ids.bin read-only (np.memmap): every process of a run shares
the page cache's one copy, and pages in only what it reads. Opening checks
the manifest and ids.bin's size, not its checksum: hashing costs about a
second per GB on every start; `charrnn prepare --verify` does it on demand.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import CharRNNError
from ..files import no_space
from . import reader, writer
from .reader import Corpus, CorpusInfo
from .vocab import Vocab

FORMAT = "charrnn-prepared"
VERSION = 1
MANIFEST, IDS = "manifest.json", "ids.bin"
DTYPES = ("uint8", "uint16", "uint32")
HASH_BYTES = 1 << 24  # what --verify hashes at once


@dataclass(frozen=True)
class SourceFile:
    path: str  # relative to the source directory ("" for a single file: the source itself)
    start: int  # [start, end): the file's characters in ids.bin (the newline joining files is in neither)
    end: int


@dataclass(frozen=True)
class Manifest:
    dtype: str
    n_chars: int
    chars: tuple[str, ...]
    encoding: str
    source: str  # the source's absolute path when it was prepared
    source_sha256: str  # reader.scan's: of the raw bytes of every file, in order
    source_bytes: int
    ids_sha256: str
    files: tuple[SourceFile, ...]

    def to_json(self) -> str:
        d = {"format": FORMAT, "version": VERSION, **asdict(self)}
        d["chars"] = "".join(self.chars)
        d["files"] = [[f.path, f.start, f.end] for f in self.files]
        return json.dumps(d, ensure_ascii=False, indent=1) + "\n"


def is_prepared(path: Path) -> bool:
    return path.is_dir() and (path / MANIFEST).is_file()


# ---------------------------------------------------------------- writing


def prepare(source: str | Path, out: str | Path, encoding: str = "utf-8", force: bool = False,
            workers: int | None = None) -> Manifest:  # fmt: skip
    """Encode the corpus at `source` (a text file or a directory of them)
    into a prepared directory `out`, in `workers` processes (None: one a
    CPU, up to 8); an existing `out` is replaced only with `force`, and
    only if it is a prepared corpus (or empty)."""
    source, out = Path(source), Path(out)
    reader.check_encoding(encoding)
    if is_prepared(source):
        raise CharRNNError(f"{source} is already a prepared corpus")
    files = reader.corpus_files(source, encoding)
    _check_out(source, out, force)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    except OSError as e:
        raise _os_error(e, source, out) from None
    try:
        done = writer.encode(files, encoding, tmp / IDS, workers or writer.default_workers(), source)
        names = [str(f.relative_to(source)) if source.is_dir() else "" for f in files]
        manifest = Manifest(done.vocab.dtype.name, done.n_chars, done.vocab.chars, encoding, str(source.resolve()),
                            done.sha256, sum(f.stat().st_size for f in files), done.ids_sha256,
                            tuple(SourceFile(n, s, e) for n, (s, e) in zip(names, done.spans)))  # fmt: skip
        _write_synced(tmp / MANIFEST, manifest.to_json().encode("utf-8"))
        _fsync(tmp)
        _move_into_place(tmp, out)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _os_error(e, source, out, sum(f.stat().st_size for f in files)) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _check_out(source: Path, out: Path, force: bool) -> None:
    """Refuse, before any work, an --out the user did not ask to replace."""
    if source.is_dir() and out.resolve().is_relative_to(source.resolve()):
        raise CharRNNError(f"--out {out} is inside the corpus {source}: it would become part of it")
    if not out.exists() and not out.is_symlink():
        return
    if not out.is_dir():
        raise CharRNNError(f"--out {out} exists and is not a directory")
    if not force:
        raise CharRNNError(f"--out {out} exists: --force replaces it")
    if not is_prepared(out) and any(out.iterdir()):
        raise CharRNNError(f"--out {out} holds files that are not a prepared corpus: --force replaces only one")


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _move_into_place(tmp: Path, out: Path) -> None:
    """Rename the finished directory to `out`. A directory cannot be renamed
    over a non-empty one, so an old `out` is first moved aside, and put
    back if the second rename fails."""
    if not out.exists():
        os.rename(tmp, out)
    else:
        aside = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".old"))
        os.rename(out, aside / "old")
        try:
            os.rename(tmp, out)
        except BaseException:
            os.rename(aside / "old", out)
            raise
        shutil.rmtree(aside, ignore_errors=True)
    _fsync(out.parent)


def _fsync(directory: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _os_error(e: OSError, source: Path, out: Path, size: int | None = None) -> CharRNNError:
    if e.errno == errno.ENOSPC:
        return no_space(f"write {out}", size, "nothing was written")
    return CharRNNError(f"cannot prepare {source} into {out}: {e.strerror or e}")


# ---------------------------------------------------------------- reading


def read_manifest(path: Path) -> Manifest:
    """The manifest of the prepared directory `path`, every field checked."""
    where = f"prepared corpus {path}"
    try:
        d = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except OSError as e:
        raise CharRNNError(f"cannot read {path / MANIFEST}: {e.strerror or e}") from None
    except (UnicodeError, ValueError):
        raise CharRNNError(f"{where}: {MANIFEST} is not valid JSON (prepare it again)") from None
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise CharRNNError(f"{path} holds a {MANIFEST} that is not a charrnn prepared corpus's")
    if d.get("version") != VERSION:
        raise CharRNNError(f"{where} has format version {d.get('version')!r}; this charrnn reads version {VERSION}:"
                           " prepare it again")  # fmt: skip
    try:
        files = tuple(SourceFile(str(p), int(s), int(e)) for p, s, e in d["files"])
        m = Manifest(d["dtype"], d["n_chars"], tuple(d["chars"]), d["encoding"], d["source"], d["source_sha256"],
                     d["source_bytes"], d["ids_sha256"], files)  # fmt: skip
        ok = (m.dtype in DTYPES and isinstance(m.n_chars, int) and m.n_chars > 0
              and all(isinstance(getattr(m, k), str) for k in ("encoding", "source", "source_sha256", "ids_sha256"))
              and all(0 <= f.start <= f.end <= m.n_chars for f in files) and files)  # fmt: skip
        vocab = Vocab(m.chars) if ok and isinstance(d["chars"], str) else None
    except (KeyError, TypeError, ValueError, CharRNNError) as e:
        raise CharRNNError(f"{where}: {MANIFEST} is damaged ({type(e).__name__}: {e}): prepare it again") from None
    if vocab is None or vocab.dtype.name != m.dtype:
        raise CharRNNError(f"{where}: {MANIFEST} has inconsistent fields: prepare it again")
    return m


def open_prepared(path: Path, extra_chars: Iterable[str] = ()) -> Corpus:
    """The prepared corpus at `path`, its ids a read-only memory map. With
    `extra_chars` outside its vocabulary (a fine-tuned model's parent's),
    the ids are translated into the larger vocabulary in memory, as
    reading the raw text would give them: 1 to 4 bytes a character."""
    m = read_manifest(path)
    ids = _map(path, m)
    vocab = Vocab(m.chars)
    info = CorpusInfo(str(path.resolve()), m.source_sha256, m.n_chars, len(m.files), m.encoding)
    starts = tuple(f.start for f in m.files)
    if set(extra_chars) <= set(vocab.chars):
        return Corpus(ids, vocab, info, starts)
    wider = Vocab.from_chars(set(vocab.chars) | set(extra_chars))
    new_id = wider.encode("".join(vocab.chars))  # old id -> id in the wider vocab
    out = np.empty(m.n_chars, dtype=wider.dtype)
    for start in range(0, m.n_chars, reader.CHUNK_BYTES):
        out[start : start + reader.CHUNK_BYTES] = new_id[ids[start : start + reader.CHUNK_BYTES]]
    return Corpus(out, wider, info, starts)


def _map(path: Path, m: Manifest) -> np.ndarray:
    ids_path = path / IDS
    dtype = np.dtype(m.dtype).newbyteorder("<")
    try:
        size = ids_path.stat().st_size
    except FileNotFoundError:
        raise CharRNNError(f"prepared corpus {path} has no {IDS}: prepare it again") from None
    if size != m.n_chars * dtype.itemsize:
        raise CharRNNError(f"prepared corpus {path}: {IDS} is {size:,} bytes, its manifest says"
                           f" {m.n_chars * dtype.itemsize:,}: it is damaged; prepare it again")  # fmt: skip
    try:
        return np.memmap(ids_path, dtype=dtype, mode="r", shape=(m.n_chars,))
    except OSError as e:
        raise CharRNNError(f"cannot map {ids_path}: {e.strerror or e}") from None


def verify(path: str | Path) -> Manifest:
    """Check a prepared directory whole: the manifest, ids.bin's size and
    checksum, and that every id is inside the vocabulary."""
    path = Path(path)
    if not is_prepared(path):
        raise CharRNNError(f"{path} is not a prepared corpus (no {MANIFEST})")
    m = read_manifest(path)
    ids = _map(path, m)
    digest = hashlib.sha256()
    step = HASH_BYTES // ids.itemsize
    top = 0
    for start in range(0, len(ids), step):
        part = ids[start : start + step]
        digest.update(part.tobytes())
        top = max(top, int(part.max()))
    if digest.hexdigest() != m.ids_sha256:
        raise CharRNNError(f"prepared corpus {path}: {IDS} does not match its checksum: it is damaged; prepare it again")
    if top >= len(m.chars):
        raise CharRNNError(f"prepared corpus {path}: {IDS} holds id {top}, outside its {len(m.chars)}-character vocabulary")
    return m
