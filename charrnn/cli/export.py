"""`charrnn export`: a checkpoint -> a weights-only model file, a web page
that generates text in the browser, and/or an ES module that other pages
import."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .. import files
from ..errors import CharRNNError
from ..export import Exported, check_model_dtype, export_module, export_page, export_weights
from .options import CheckpointArg, ExportDtype, ForceOpt, err


def export(
    checkpoint: CheckpointArg,
    out: Annotated[Optional[Path], typer.Argument(
        help="The model file to write (e.g. model.safetensors).", show_default=False)] = None,  # fmt: skip
    web: Annotated[Optional[Path], typer.Option(
        help="Also, or instead, write one self-contained page that generates text in the browser.",
    )] = None,  # fmt: skip
    module: Annotated[Optional[Path], typer.Option(
        help="Also, or instead, write an ES module (e.g. model.js) that other pages import to run the model.",
    )] = None,  # fmt: skip
    dtype: Annotated[Optional[ExportDtype], typer.Option(
        help="Weights as fp32, or halved to bf16 or fp16; int8 (a page or module only) halves fp16 again."
             " Default: fp32 in a model file, fp16 in a page or module.",
        show_default=False)] = None,  # fmt: skip
    force: ForceOpt = False,
) -> None:
    """Write a model's config, vocabulary and weights without its training
    state (for sample, eval, inspect and train --init-from), or a web page
    that runs it, or a JavaScript module that other pages import."""
    if out is None and web is None and module is None:
        raise CharRNNError("give an output file, --web PAGE, --module FILE, or any of them")
    if len({p.resolve() for p in (out, web, module) if p is not None}) < sum(p is not None for p in (out, web, module)):
        raise CharRNNError("the output file, --web and --module must be different files")
    # Every refusal before anything is written: no export half done.
    if out is not None and dtype is not None:
        check_model_dtype(dtype.value)
    for path, flag in ((out, "the output"), (web, "--web"), (module, "--module")):
        if path is not None:
            files.check_replaceable(path, force, flag)
    if out is not None:
        _report(export_weights(checkpoint, out, dtype.value if dtype else "fp32", force))
    if web is not None:
        _report(export_page(checkpoint, web, dtype.value if dtype else "fp16", force))
    if module is not None:
        _report(export_module(checkpoint, module, dtype.value if dtype else "fp16", force))


def _report(done: Exported) -> None:
    err.print(
        f"wrote {done.path}: {done.bytes:,} bytes ({done.dtype}), {done.bytes / done.source_bytes:.0%} of"
        f" {done.source} ({done.source_bytes:,} bytes)",
        markup=False, highlight=False,
    )  # fmt: skip
