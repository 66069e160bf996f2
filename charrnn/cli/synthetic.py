"""`charrnn synthetic`: write a corpus with known structure, to check that
`inspect` finds what is there."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .. import files
from ..inspection import synthetic as structured
from .options import ForceOpt, err


def synthetic(
    out: Annotated[Path, typer.Argument(help="File to write.")],
    chars: Annotated[int, typer.Option(help="Corpus length in characters.", min=1)] = 2_000_000,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same text.")] = 0,
    force: ForceOpt = False,
) -> None:
    """Write a corpus with known structure: quoted spans in their own
    vocabulary, C comments, nested indented brackets, lines of varying length."""
    files.check_replaceable(out, force, "output file")
    files.write_bytes_atomic(out, structured.generate(chars, seed).encode("utf-8"))
    err.print(f"wrote {out}: {chars:,} characters")
