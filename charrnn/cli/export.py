"""`charrnn export`: a checkpoint -> a weights-only model file."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer

from ..export import export_weights
from .options import CheckpointArg, ForceOpt, err


class Dtype(str, enum.Enum):
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


def export(
    checkpoint: CheckpointArg,
    out: Annotated[Path, typer.Argument(help="The model file to write (e.g. model.safetensors).", show_default=False)],
    dtype: Annotated[Dtype, typer.Option(help="Weights as fp32, or halved to bf16 or fp16.")] = Dtype.fp32,
    force: ForceOpt = False,
) -> None:
    """Write a model's config, vocabulary and weights, without its training
    state: for sample, eval, inspect and train --init-from."""
    done = export_weights(checkpoint, out, dtype.value, force)
    err.print(
        f"wrote {done.path}: {done.bytes:,} bytes ({done.dtype}), {done.bytes / done.source_bytes:.0%} of"
        f" {done.source} ({done.source_bytes:,} bytes)",
        markup=False, highlight=False,
    )  # fmt: skip
