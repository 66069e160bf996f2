"""The single owner of checkpoint save and load.

A checkpoint is one safetensors file. Its tensors are the model weights
(`model.*`) and, for a training checkpoint, the optimizer state (`optim.*`),
the hidden state carried into the next step (`carried.*`) and the RNG states
(`rng.*`). Its metadata holds one JSON document (format version, model
config, vocab, training state) and a SHA-256 over that JSON and every
tensor's name, dtype, shape and bytes, checked on load.

Loading parses the safetensors header and raw tensor bytes only: no pickle,
no code from the file ever runs. Saving is atomic and durable: write a
temporary file in the same directory, fsync it, rename it over the target,
fsync the directory. A reader sees the old file or the new one, never half.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .data import Vocab
from .errors import CharRNNError
from .model import CharRNN, ModelConfig, State

FORMAT = "charrnn"
VERSION = 1
BEST = "best.safetensors"
LAST = "last.safetensors"
METRICS = "metrics.jsonl"
RUN_FILES = (BEST, LAST, METRICS)


@dataclass
class RunState:
    """Everything beyond the weights that resuming a run exactly needs."""

    train_config: dict  # TrainConfig.to_dict()
    corpus: dict  # CorpusInfo fields
    step: int  # optimizer steps done since the run began
    epoch: int
    step_in_epoch: int  # batches of this epoch already consumed
    chars_seen: int
    progress: float  # learning-rate schedule position in [0, 1]
    elapsed_s: float  # training wall time, summed over resumes
    best_val_loss: float | None
    metrics: list[dict]  # one record per evaluation so far
    optimizer: dict  # torch optimizer state_dict
    carried: State  # hidden state for the next batch, on CPU
    rng: dict[str, torch.Tensor] = field(default_factory=dict)
    scaler: dict = field(default_factory=dict)  # fp16 gradient scaler state, if used


@dataclass
class Checkpoint:
    config: ModelConfig
    vocab: Vocab
    model: CharRNN  # on CPU, eval mode
    run: RunState | None  # None for a weights-only export
    path: Path | None = None


# --------------------------------------------------------------------------
# Paths


def resolve_checkpoint(path: str | Path, prefer: str = BEST) -> Path:
    """A checkpoint file, or a run directory meaning its `prefer` checkpoint."""
    p = Path(path)
    if p.is_dir():
        target = p / prefer
        if not target.is_file():
            raise CharRNNError(f"run directory {p} has no {prefer}")
        return target
    if not p.exists():
        raise CharRNNError(f"checkpoint not found: {p}")
    if not p.is_file():
        raise CharRNNError(f"checkpoint is not a file: {p}")
    return p


# --------------------------------------------------------------------------
# Save


def save_checkpoint(path: str | Path, model: CharRNN, vocab: Vocab, run: RunState | None = None) -> None:
    """Write atomically; refuses weights or optimizer state that are not finite."""
    write_bytes_atomic(Path(path), checkpoint_bytes(model, vocab, run))


def checkpoint_bytes(model: CharRNN, vocab: Vocab, run: RunState | None = None) -> bytes:
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    meta: dict = {
        "format": FORMAT,
        "version": VERSION,
        "model": model.config.to_dict(),
        "vocab": list(vocab.chars),
        "torch": torch.__version__,
    }
    if run is not None:
        opt_tensors, opt_meta = _flatten_optimizer(run.optimizer)
        tensors.update(opt_tensors)
        tensors.update({f"carried.{i}": s for i, s in enumerate(run.carried)})
        tensors.update({f"rng.{k}": v for k, v in run.rng.items()})
        meta["run"] = {
            "train_config": run.train_config,
            "corpus": run.corpus,
            "step": run.step,
            "epoch": run.epoch,
            "step_in_epoch": run.step_in_epoch,
            "chars_seen": run.chars_seen,
            "progress": run.progress,
            "elapsed_s": run.elapsed_s,
            "best_val_loss": run.best_val_loss,
            "metrics": run.metrics,
            "optimizer": opt_meta,
            "carried": len(run.carried),
            "scaler": run.scaler,
        }
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise CharRNNError(f"refusing to write a checkpoint: {name} holds NaN or infinite values")
    meta_json = json.dumps(meta, ensure_ascii=True, allow_nan=False, sort_keys=True)
    digest = _digest(meta_json, tensors)
    return st_save(tensors, metadata={"format": FORMAT, "meta": meta_json, "sha256": digest})


def _flatten_optimizer(sd: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Optimizer state_dict -> (tensors, JSON). Tensors go to safetensors;
    every other value (lr, betas, step counts as numbers) to JSON."""
    tensors: dict[str, torch.Tensor] = {}
    state_meta: dict[str, dict] = {}
    for pid, st in sd["state"].items():
        state_meta[str(pid)] = {}
        for key, val in st.items():
            if isinstance(val, torch.Tensor):
                tensors[f"optim.{pid}.{key}"] = val
            else:
                state_meta[str(pid)][key] = val
    return tensors, {"state": state_meta, "param_groups": sd["param_groups"]}


def _unflatten_optimizer(meta: dict, tensors: dict[str, torch.Tensor]) -> dict:
    state: dict[int, dict] = {int(pid): dict(vals) for pid, vals in meta["state"].items()}
    for name, t in tensors.items():
        if name.startswith("optim."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = t
    return {"state": state, "param_groups": meta["param_groups"]}


def _digest(meta_json: str, tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256(meta_json.encode())
    for name in sorted(tensors):
        t = tensors[name]
        h.update(f"\0{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Temp file in the same directory, fsync, rename, fsync the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def remove_stale_temp_files(directory: Path) -> None:
    """Delete temporary files a killed save left behind in a run directory."""
    for name in RUN_FILES:
        for tmp in directory.glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)


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


# --------------------------------------------------------------------------
# Load


def load_checkpoint(path: str | Path, prefer: str = BEST) -> Checkpoint:
    """Read, verify and rebuild a checkpoint (model on CPU, eval mode)."""
    p = resolve_checkpoint(path, prefer)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise CharRNNError(f"cannot read checkpoint {p}: {e.strerror or e}") from None
    header = _read_header(p, data)
    meta_json, digest = header.get("meta"), header.get("sha256")
    if header.get("format") != FORMAT or not isinstance(meta_json, str) or not isinstance(digest, str):
        raise CharRNNError(f"{p} is a safetensors file but not a charrnn checkpoint")
    try:
        tensors = st_load(data)
    except Exception:  # safetensors raises its own error type for any malformed file
        raise CharRNNError(f"checkpoint {p} is corrupt or truncated (its tensors cannot be read)") from None
    if _digest(meta_json, tensors) != digest:
        raise CharRNNError(f"checkpoint {p} is corrupt: its checksum does not match its contents")
    # The checksum catches accidents, not intent: anyone can write a file
    # whose checksum matches, so every field is still checked as it is read.
    try:
        meta = json.loads(meta_json)
        version = meta["version"]
        if not isinstance(version, int) or version < 1:
            raise ValueError(f"bad format version {version!r}")
        if version > VERSION:
            raise CharRNNError(
                f"checkpoint {p} has format version {version}, newer than this charrnn reads ({VERSION}):"
                " upgrade charrnn"
            )
        return _rebuild(p, meta, tensors)
    except CharRNNError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError) as e:
        raise CharRNNError(f"checkpoint {p} is inconsistent: {type(e).__name__}: {e}") from None


def _read_header(p: Path, data: bytes) -> dict[str, str]:
    """The safetensors header's metadata, read without trusting the file."""
    bad = CharRNNError(f"{p} is not a charrnn checkpoint (not a safetensors file, or truncated)")
    if len(data) < 8:
        raise bad
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8 or n > 100_000_000:
        raise bad
    try:
        header = json.loads(data[8 : 8 + n])
    except (UnicodeDecodeError, ValueError):
        raise bad from None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(meta, dict):
        raise CharRNNError(f"{p} is a safetensors file but not a charrnn checkpoint")
    return meta


def _rebuild(p: Path, meta: dict, tensors: dict[str, torch.Tensor]) -> Checkpoint:
    config = ModelConfig.from_dict(meta["model"])
    vocab = Vocab(tuple(meta["vocab"]))
    if vocab.size != config.vocab_size:
        raise ValueError(f"vocab has {vocab.size} characters but the model expects {config.vocab_size}")
    weights = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    with torch.device("meta"):  # check shapes before allocating what the config asks for
        expected = {k: tuple(v.shape) for k, v in CharRNN(config).state_dict().items()}
    if expected != {k: tuple(v.shape) for k, v in weights.items()}:
        raise ValueError("its weights do not match its model config")
    model = CharRNN(config)
    model.load_state_dict(weights, strict=True)
    model.eval()
    run = None
    if "run" in meta:
        r = meta["run"]
        run = RunState(
            train_config=_typed(r["train_config"], dict),
            corpus=_typed(r["corpus"], dict),
            step=_typed(r["step"], int),
            epoch=_typed(r["epoch"], int),
            step_in_epoch=_typed(r["step_in_epoch"], int),
            chars_seen=_typed(r["chars_seen"], int),
            progress=float(r["progress"]),
            elapsed_s=float(r["elapsed_s"]),
            best_val_loss=None if r["best_val_loss"] is None else float(r["best_val_loss"]),
            metrics=_typed(r["metrics"], list),
            optimizer=_unflatten_optimizer(r["optimizer"], tensors),
            carried=tuple(tensors[f"carried.{i}"] for i in range(r["carried"])),
            rng={k[len("rng.") :]: v for k, v in tensors.items() if k.startswith("rng.")},
            scaler=_typed(r.get("scaler", {}), dict),
        )
    return Checkpoint(config, vocab, model, run, p)


def _typed(value, kind: type):
    if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
        raise TypeError(f"expected {kind.__name__}, found {type(value).__name__}")
    return value
