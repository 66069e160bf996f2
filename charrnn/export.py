"""Exporting a model: a weights-only checkpoint, for sampling, evaluating,
inspecting and fine-tuning, but not for resuming.

A training checkpoint carries AdamW's two moment tensors per weight, the
carried state and the generators' states: about three times the weights.
An export keeps the model's config, its vocabulary and its weights (in
fp32, or halved to bf16 or fp16), in the same checksummed safetensors
format, so every command that reads a model reads it; `train --resume`
refuses it, having nothing to resume.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from . import files
from .checkpoint import checkpoint_bytes, load_checkpoint
from .errors import CharRNNError

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Exported:
    source: Path  # the checkpoint read
    path: Path  # the file written
    source_bytes: int
    bytes: int
    dtype: str


def export_weights(source: Path, out: Path, dtype: str = "fp32", force: bool = False) -> Exported:
    """Write the model in `source` (a checkpoint, or a run directory meaning
    its best) to `out`, weights only, in `dtype`."""
    if dtype not in DTYPES:
        raise CharRNNError(f"--dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    files.check_replaceable(out, force, "the output")
    checkpoint = load_checkpoint(source)
    model = checkpoint.model.to(DTYPES[dtype])
    if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
        raise CharRNNError(f"the weights overflow {dtype}'s range: export as bf16 or fp32")
    data = checkpoint_bytes(model, checkpoint.vocab)
    files.write_bytes_atomic(out, data)
    return Exported(checkpoint.path, out, checkpoint.path.stat().st_size, len(data), dtype)


def export_page(source: Path, out: Path, dtype: str = "fp16", force: bool = False) -> Exported:
    """Write one self-contained web page that generates text from the model
    in `source` in the browser (charrnn/web), its weights in `dtype`."""
    from .web import render  # the page's templates are read only by this command

    if dtype not in DTYPES:
        raise CharRNNError(f"--dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    files.check_replaceable(out, force, "--web")
    checkpoint = load_checkpoint(source)
    data = render(checkpoint, dtype).encode("utf-8")
    files.write_bytes_atomic(out, data)
    return Exported(checkpoint.path, out, checkpoint.path.stat().st_size, len(data), dtype)
