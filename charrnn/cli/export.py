"""`charrnn export`: a checkpoint -> a weights-only model file, and/or a
web page that generates text in the browser."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import CharRNNError
from ..export import Exported, export_page, export_weights
from .options import CheckpointArg, Dtype, ForceOpt, err


def export(
    checkpoint: CheckpointArg,
    out: Annotated[Optional[Path], typer.Argument(
        help="The model file to write (e.g. model.safetensors).", show_default=False)] = None,  # fmt: skip
    web: Annotated[Optional[Path], typer.Option(
        help="Also, or instead, write one self-contained page that generates text in the browser.",
    )] = None,  # fmt: skip
    dtype: Annotated[Optional[Dtype], typer.Option(
        help="Weights as fp32, or halved to bf16 or fp16. Default: fp32 in a model file, fp16 in a page.",
        show_default=False)] = None,  # fmt: skip
    force: ForceOpt = False,
) -> None:
    """Write a model's config, vocabulary and weights without its training
    state (for sample, eval, inspect and train --init-from), or a web page
    that runs it."""
    if out is None and web is None:
        raise CharRNNError("give an output file, --web PAGE, or both")
    if out is not None:
        _report(export_weights(checkpoint, out, dtype.value if dtype else "fp32", force))
    if web is not None:
        _report(export_page(checkpoint, web, dtype.value if dtype else "fp16", force))


def _report(done: Exported) -> None:
    err.print(
        f"wrote {done.path}: {done.bytes:,} bytes ({done.dtype}), {done.bytes / done.source_bytes:.0%} of"
        f" {done.source} ({done.source_bytes:,} bytes)",
        markup=False, highlight=False,
    )  # fmt: skip
