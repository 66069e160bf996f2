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

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from . import files
from .checkpoint import Checkpoint, checkpoint_bytes, load_checkpoint
from .device import STORAGE
from .errors import CharRNNError
from .web import render


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
    return _export(source, out, dtype, force, "the output", lambda c: checkpoint_bytes(c.model, c.vocab))


def export_page(source: Path, out: Path, dtype: str = "fp16", force: bool = False) -> Exported:
    """Write one self-contained web page that generates text from the model
    in `source` in the browser (charrnn/web), its weights in `dtype`."""
    return _export(source, out, dtype, force, "--web", lambda c: render(c, dtype).encode("utf-8"))


def _export(source: Path, out: Path, dtype: str, force: bool, flag: str,
            build: Callable[[Checkpoint], bytes]) -> Exported:  # fmt: skip
    """Check, load, convert the weights to `dtype`, `build` the file's bytes, write them atomically."""
    if dtype not in STORAGE:
        raise CharRNNError(f"--dtype must be one of {', '.join(STORAGE)}, not {dtype!r}")
    files.check_replaceable(out, force, flag)
    checkpoint = load_checkpoint(source)
    checkpoint.model.to(STORAGE[dtype])
    if not all(bool(torch.isfinite(p).all()) for p in checkpoint.model.parameters()):
        raise CharRNNError(f"the weights overflow {dtype}'s range: use --dtype bf16 or fp32")
    data = build(checkpoint)
    files.write_bytes_atomic(out, data)
    return Exported(checkpoint.path, out, checkpoint.path.stat().st_size, len(data), dtype)
