"""`charrnn prepare`: a corpus -> a prepared directory (ids.bin + manifest.json)
that `charrnn train` maps instead of decoding; or --verify one."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..corpus import prepared
from ..errors import CharRNNError
from .options import EncodingOpt, err


def prepare(
    corpus: Annotated[Path, typer.Argument(
        help="A UTF-8 text file or a directory of them, as `charrnn train` reads it; with --verify, a prepared"
        " directory.")],  # fmt: skip
    out: Annotated[Optional[Path], typer.Option(help="The directory to write (it must not exist, unless --force).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace --out if it is a prepared corpus (or empty).")] = False,
    encoding: EncodingOpt = "utf-8",
    workers: Annotated[Optional[int], typer.Option(
        help="Processes to encode with. Default: one a CPU, up to 8 (a UTF-8 file is shared out in 64 MB pieces,"
        " files in other encodings one a process).", min=1, show_default=False)] = None,  # fmt: skip
    verify: Annotated[bool, typer.Option(
        "--verify", help="Check a prepared directory whole (ids.bin against its checksum, every id in the"
        " vocabulary) and exit; training checks only its size, on every start.")] = False,  # fmt: skip
) -> None:
    """Encode a corpus once into a directory that `charrnn train`, `eval` and
    `score` memory-map: no decoding at start-up or on --resume, and one copy
    in the page cache for all the processes of a run."""
    t0 = time.perf_counter()
    if verify:
        if out is not None:
            raise CharRNNError("--verify checks CORPUS, a prepared directory: drop --out")
        m = prepared.verify(corpus)
        err.print(f"{corpus}: ok, {m.n_chars:,} characters ({len(m.chars)} distinct, {m.dtype}) from"
                  f" {len(m.files):,} files, checked in {time.perf_counter() - t0:.1f} s")  # fmt: skip
        return
    if out is None:
        raise CharRNNError("give the directory to write: --out DIR")
    m = prepared.prepare(corpus, out, encoding, force, workers)
    seconds = time.perf_counter() - t0
    err.print(f"wrote {out}: {m.n_chars:,} characters ({len(m.chars)} distinct, {m.dtype}) from {len(m.files):,}"
              f" files, {m.source_bytes / 1e6:,.1f} MB in {seconds:.1f} s ({m.source_bytes / 1e6 / seconds:,.1f} MB/s)")  # fmt: skip
