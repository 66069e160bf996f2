"""`charrnn plot`: a run's metrics log -> learning curves as a PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .. import curves, files, rundir
from .options import ForceOpt, err


def plot(
    run: Annotated[Path, typer.Argument(help="A run directory (or its metrics.jsonl).")],
    out: Annotated[Path, typer.Option(help="Image to write (PNG; another suffix picks another format).")] = Path(
        "curves.png"
    ),
    force: ForceOpt = False,
) -> None:
    """Plot train and val loss against characters seen and wall time (needs matplotlib: charrnn\\[plot])."""
    out = out if out.suffix else out.with_suffix(".png")  # as matplotlib names a file given no suffix
    files.check_replaceable(out, force, "--out")
    curves.plot(rundir.read_metrics(run), out, str(run))
    err.print(f"wrote {out}")
