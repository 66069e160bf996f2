"""The one way charrnn writes a file it means to keep: all or nothing.

Write a temporary file in the same directory, fsync it, rename it over the
target, fsync the directory. A reader sees the old file or the new one,
never half; a crash or a full disk leaves the old one and no temporary
file (unless the process is killed mid-write: training cleans those up in
its run directory with `remove_temp_files`; elsewhere a hidden
`.NAME.*.tmp` can remain). The new file gets the usual mode (0666 less the
umask).
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import CharRNNError


@contextmanager
def atomic_path(path: Path, size: int | None = None) -> Iterator[Path]:
    """A temporary path to write `path`'s new contents to (by any library);
    when the block ends without an exception it is fsynced and renamed
    over `path`, otherwise deleted. A full disk is a one-line error that
    says how much the write needed, when `size` tells."""
    try:
        with _replacing(path) as tmp:
            yield tmp
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
        raise no_space(f"write {path}", size, "the previous file is kept") from None


def no_space(what: str, size: int | None, kept: str) -> CharRNNError:
    needed = f" ({_size(size)} needed)" if size is not None else ""
    return CharRNNError(f"no space left on the device to {what}{needed}; {kept}")


def append_line(path: Path, line: str, kept: str) -> None:
    """Append one line whole or not at all: if a write fails (a full disk)
    the file is cut back to its old length, so it never ends torn. `kept`
    says, in the error, where what was not written survives."""
    data = (line.rstrip("\n") + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)  # the umask applies
    try:
        start = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:  # a write may take fewer bytes than given
                view = view[os.write(fd, view) :]
        except OSError as e:
            os.ftruncate(fd, start)
            if e.errno != errno.ENOSPC:
                raise
            raise no_space(f"append to {path}", len(data), kept) from None
    finally:
        os.close(fd)


@contextmanager
def _replacing(path: Path) -> Iterator[Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    with atomic_path(path, len(data)) as tmp:
        tmp.write_bytes(data)


def remove_temp_files(directory: Path, names: tuple[str, ...]) -> None:
    """Delete the temporary files a killed write of any of `names` left."""
    for name in names:
        for tmp in directory.glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)


def _size(n: int) -> str:
    return f"{n / 1e6:,.1f} MB" if n >= 100_000 else f"{n / 1e3:,.1f} kB"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    if os.name != "posix":
        return  # Windows cannot open a directory; its rename is durable enough
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_replaceable(path: Path, force: bool, flag: str) -> None:
    """Refuse, before any work, to write over a file the user did not ask
    to replace (--force), or over a directory."""
    if path.is_dir():
        raise CharRNNError(f"{flag} {path} is a directory")
    if path.exists() and not force:
        raise CharRNNError(f"{flag} {path} exists: --force replaces it")
