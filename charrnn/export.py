"""Exporting a model: a weights-only checkpoint, for sampling, evaluating,
inspecting and fine-tuning, but not for resuming.

A training checkpoint carries AdamW's two moment tensors per weight, the
carried state and the generators' states: about three times the weights.
An export keeps the model's config, its vocabulary and its weights (in
fp32, or halved to bf16 or fp16), in the same checksummed safetensors
format, so every command that reads a model reads it; `train --resume`
refuses it, having nothing to resume. A page or a module carries the model
into the browser (charrnn/web).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


from . import files
from .checkpoint import Checkpoint, checkpoint_bytes, load_checkpoint
from .device import STORAGE
from .errors import CharRNNError
from .web import check_dtype, check_range, render, render_module


@dataclass(frozen=True)
class Exported:
    source: Path  # the checkpoint read
    path: Path  # the file written
    source_bytes: int
    bytes: int
    dtype: str


def check_model_dtype(dtype: str) -> None:
    """Refuse a dtype a model file cannot hold."""
    if dtype == "int8":
        raise CharRNNError("int8 is for --web and --module: a model file holds fp32, bf16 or fp16")
    if dtype not in STORAGE:
        raise CharRNNError(f"--dtype must be one of {', '.join(STORAGE)}, not {dtype!r}")


def export_weights(source: Path, out: Path, dtype: str = "fp32", force: bool = False) -> Exported:
    """Write the model in `source` (a checkpoint, or a run directory meaning
    its best) to `out`, weights only, in `dtype`."""
    check_model_dtype(dtype)

    def build(c: Checkpoint) -> bytes:
        check_range(c.model.state_dict(), dtype)
        return checkpoint_bytes(c.model.to(STORAGE[dtype]), c.vocab)

    return _export(source, out, dtype, force, "the output", build)


def export_page(source: Path, out: Path, dtype: str = "fp16", force: bool = False) -> Exported:
    """Write one self-contained web page that generates text from the model
    in `source` in the browser (charrnn/web), its weights in `dtype`."""
    return _export(source, out, dtype, force, "--web", _web(render, dtype))


def export_module(source: Path, out: Path, dtype: str = "fp16", force: bool = False) -> Exported:
    """Write an ES module holding the model in `source`, for other pages
    (and other JavaScript) to import and drive (charrnn/web/model.js)."""
    return _export(source, out, dtype, force, "--module", _web(render_module, dtype))


def _web(render_as: Callable[[Checkpoint, str], str], dtype: str) -> Callable[[Checkpoint], bytes]:
    check_dtype(dtype)

    def build(c: Checkpoint) -> bytes:
        check_range(c.model.state_dict(), dtype)
        return render_as(c, dtype).encode("utf-8")

    return build


def _export(source: Path, out: Path, dtype: str, force: bool, flag: str,
            build: Callable[[Checkpoint], bytes]) -> Exported:  # fmt: skip
    """Check, load, `build` the file's bytes, write them atomically."""
    files.check_replaceable(out, force, flag)
    checkpoint = load_checkpoint(source)
    data = build(checkpoint)
    files.write_bytes_atomic(out, data)
    return Exported(checkpoint.path, out, checkpoint.path.stat().st_size, len(data), dtype)
