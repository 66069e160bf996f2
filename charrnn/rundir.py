"""A run directory: what it holds, where a new one goes, and its metrics log.

    checkpoints/<corpus>-<kind>/
        best.safetensors    the lowest validation loss so far
        last.safetensors    the newest state (resume continues from it)
        metrics.jsonl       one JSON line per evaluation
        .lock               held by the one process training in it

Wherever a command takes a checkpoint, a run directory means its best
(`train --resume`: its last).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from . import files
from .errors import CharRNNError

BEST = "best.safetensors"
LAST = "last.safetensors"
METRICS = "metrics.jsonl"
LOCK = ".lock"
RUN_FILES = (BEST, LAST, METRICS, LOCK)
CHECKPOINTS = Path("checkpoints")  # where runs go by default, relative to the working directory


def has_run(directory: Path) -> bool:
    return any((directory / f).exists() for f in (BEST, LAST))


def checkpoint_path(path: str | Path, prefer: str = BEST) -> Path:
    """A checkpoint file, or a run directory meaning its `prefer` checkpoint."""
    p = Path(path)
    if p.is_dir():
        target = p / prefer
        if not target.is_file():
            raise CharRNNError(f"run directory {p} has no {prefer}")
        return target
    if not p.exists():
        raise CharRNNError(f"checkpoint not found: {p}")
    if not p.is_file():
        raise CharRNNError(f"checkpoint is not a file: {p}")
    return p


def newest_run(parent: Path = CHECKPOINTS) -> Path:
    """The run directory under `parent` whose best checkpoint is newest."""
    runs = [p.parent for p in parent.glob(f"*/{BEST}")]
    if not runs:
        raise CharRNNError(f"no checkpoint given and no run under {parent}/: train one first")
    return max(runs, key=lambda d: (d / BEST).stat().st_mtime)


def default_out_dir(corpus: Path, kind: str) -> Path:
    return CHECKPOINTS / f"{corpus.stem or 'corpus'}-{kind}"


def prepare_out_dir(out: Path | None, default: Path, force: bool) -> Path:
    """The directory a new run will write to. An explicit --out that already
    holds a run is refused unless --force (the run is replaced only once the
    new one has passed its checks, in training); the default name gets a -2,
    -3, ... suffix instead of clobbering anything. Creates nothing."""
    if out is None:
        out, n = default, 1
        while out.exists() and (not out.is_dir() or has_run(out)):
            n += 1
            out = default.with_name(f"{default.name}-{n}")
    elif out.exists() and not out.is_dir():
        raise CharRNNError(f"--out {out} is a file, not a directory")
    elif has_run(out) and not force:
        raise CharRNNError(
            f"{out} already holds a run: --resume {out} continues it, --force replaces it, or choose another --out"
        )
    if out.exists() and not os.access(out, os.W_OK):
        raise CharRNNError(f"cannot write to output directory {out}")
    return out


@contextmanager
def exclusive(directory: Path) -> Iterator[None]:
    """Hold the run directory's lock for as long as the block runs: one
    writer per run directory. A second `train` on it (--resume, --force, the
    same --out) is refused in one line naming the holder. The lock is an
    flock, which the kernel releases when its process ends however it ends,
    so a killed run never blocks the next. Creating the lock file is also
    the check that the directory is writable, before any training."""
    try:
        import fcntl
    except ImportError:  # Windows: no flock; one writer per directory is the user's to keep
        yield
        return
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(directory / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as e:
        raise CharRNNError(f"cannot write to run directory {directory}: {e.strerror or e}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 256, 0).decode("utf-8", "replace").strip() or "another process"
            raise CharRNNError(f"{directory} is in use by {holder}: one run at a time per directory") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def remove_temp_files(directory: Path) -> None:
    """Delete temporary files a killed save left behind in a run directory."""
    files.remove_temp_files(directory, RUN_FILES)


# --------------------------------------------------------------------------
# The metrics log


def write_metrics(directory: Path, entries: list[dict]) -> None:
    """Replace the log with these entries (the checkpoint's history)."""
    text = "".join(json.dumps(e) + "\n" for e in entries)
    files.write_bytes_atomic(directory / METRICS, text.encode())


def append_metrics(directory: Path, entry: dict) -> None:
    # An append, not an atomic rewrite: a crash can tear only the last line,
    # which read_metrics forgives, and the checkpoint holds the history anyway
    # (a resumed run rewrites this file from it).
    files.append_line(directory / METRICS, json.dumps(entry), "the checkpoint saved just before holds this entry")


def read_metrics(run_dir: Path) -> list[dict]:
    """A run's evaluations, from its directory or its metrics.jsonl."""
    path = run_dir / METRICS if run_dir.is_dir() else run_dir
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise CharRNNError(f"cannot read {path}: {e.strerror or e}") from None
    entries = []
    for n, line in enumerate(lines, 1):
        try:
            entries.append(json.loads(line))
        except ValueError:
            if n < len(lines):  # only a last line torn by a crash is forgiven
                raise CharRNNError(f"{path} line {n} is not JSON") from None
    if not entries:
        raise CharRNNError(f"{path} holds no evaluations yet")
    return entries
