"""The single owner of checkpoint save and load.

A checkpoint is one safetensors file. Its tensors are the model weights
(`model.*`) and, for a training checkpoint, the optimizer state (`optim.*`),
the hidden state carried into the next step (`carried.*`) and the RNG states
(`rng.*`). Its metadata holds one JSON document (format version, model
config, vocab, training state) and a SHA-256 over that JSON and every
tensor's name, dtype, shape and bytes, checked on load.

Loading parses the safetensors header and raw tensor bytes only: no pickle,
no code from the file ever runs. Saving is atomic and durable (files.py):
a reader sees the old file or the new one, never half.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .corpus import CorpusInfo, Vocab, check_split
from .errors import CharRNNError
from .files import write_bytes_atomic
from .model import NEWEST_FORMAT, CharRNN, ModelConfig, State
from .rundir import BEST, checkpoint_path
from .typecheck import finite_number

FORMAT = "charrnn"
VERSION = NEWEST_FORMAT  # the newest format this charrnn reads and writes: each model field names its own (model.py)
Tensors = dict[str, torch.Tensor]


class _Codec(NamedTuple):
    """How one field of Run is stored: `save` gives its JSON value (or
    _ABSENT: tensors only) and its tensors; `load` takes both back."""

    save: Callable[[Any], tuple[Any, Tensors]]
    load: Callable[[Any, Tensors], Any]


_ABSENT = object()


def _plain(type_: type, optional: bool = False, default: Any = _ABSENT) -> dict:
    """A JSON value of one type, checked on load."""

    def load(value, _tensors):
        if value is _ABSENT and default is not _ABSENT:
            return default
        if optional and value is None:
            return None
        return float(value) if type_ is float else _typed(value, type_)

    return {"codec": _Codec(lambda v: (v, {}), load)}


def _via(to_json: Callable, from_json: Callable) -> dict:
    """A dataclass stored as its JSON dict."""
    return {"codec": _Codec(lambda v: (to_json(v), {}), lambda x, _t: from_json(_typed(x, dict)))}


def _prefixed(prefix: str) -> dict:
    """A dict of tensors, stored as tensors named prefix.KEY only."""
    return {"codec": _Codec(lambda v: (_ABSENT, {f"{prefix}.{k}": t for k, t in v.items()}),
                            lambda _x, t: with_prefix(t, prefix))}  # fmt: skip


def _numbered(prefix: str) -> dict:
    """A tuple of tensors, stored as prefix.0, prefix.1, ... and their count."""
    return {"codec": _Codec(lambda v: (len(v), {f"{prefix}.{i}": s for i, s in enumerate(v)}),
                            lambda n, t: tuple(t[f"{prefix}.{i}"] for i in range(_typed(n, int))))}  # fmt: skip


def with_prefix(tensors: Tensors, prefix: str) -> Tensors:
    """The tensors named `prefix.KEY`, as KEY."""
    return {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(f"{prefix}.")}


def _optimizer() -> dict:
    """A torch optimizer state_dict: its tensors apart, the rest as JSON."""
    return {"codec": _Codec(lambda v: _flatten_optimizer(v), lambda x, t: _unflatten_optimizer(_typed(x, dict), t))}


@dataclass
class TrainingState:
    """Everything beyond the weights that resuming a training run exactly
    needs. Each field is stored by its codec, under its own name: this
    class is the one list of what a checkpoint's training state holds.
    The training settings are kept as the plain dicts training wrote (its
    TrainConfig and run plan): this layer stores them, training reads them."""

    train_config: dict = field(metadata=_plain(dict))  # TrainConfig's fields, every default settled
    corpus: CorpusInfo = field(metadata=_via(asdict, lambda d: CorpusInfo(**d)))
    step: int = field(metadata=_plain(int))  # optimizer steps done since the run began
    epoch: int = field(metadata=_plain(int))
    step_in_epoch: int = field(metadata=_plain(int))  # batches of this epoch already consumed
    chars_seen: int = field(metadata=_plain(int))
    progress: float = field(metadata=_plain(float))  # learning-rate schedule position in [0, 1]
    elapsed_s: float = field(metadata=_plain(float))  # training wall time, summed over resumes
    best_val_loss: float | None = field(metadata=_plain(float, optional=True))
    metrics: list[dict] = field(metadata=_plain(list))  # one entry per evaluation so far
    optimizer: dict = field(metadata=_optimizer())  # torch optimizer state_dict
    carried: State = field(metadata=_numbered("carried"))  # recurrent state for the next batch, on CPU
    rng: dict[str, torch.Tensor] = field(default_factory=dict, metadata=_prefixed("rng"))
    scaler: dict = field(default_factory=dict, metadata=_plain(dict, default={}))  # fp16 gradient scaler
    parent: dict = field(default_factory=dict, metadata=_plain(dict, default={}))  # fine-tuned from (finetune.Parent)
    plan: dict = field(default_factory=dict, metadata=_plain(dict, default={}))  # the plan of the run's last start

    def encode(self) -> tuple[dict, Tensors]:
        meta, tensors = {}, {}
        for f in fields(self):
            value, ts = f.metadata["codec"].save(getattr(self, f.name))
            if value is not _ABSENT:
                meta[f.name] = value
            tensors.update(ts)
        return meta, tensors

    @classmethod
    def decode(cls, meta: dict, tensors: Tensors) -> TrainingState:
        _typed(meta, dict)
        values = {}
        for f in fields(cls):
            try:
                values[f.name] = f.metadata["codec"].load(meta.get(f.name, _ABSENT), tensors)
            except TypeError as e:
                raise TypeError(f"run.{f.name}: {'missing' if f.name not in meta else e}") from None
        return cls(**values)

    def check(self, config: ModelConfig) -> None:
        """What resuming will use, checked against the model it resumes (a
        crafted file can pass the checksum): counters, the carried state's
        shape and every generator state's layout."""
        counts = {"step": self.step, "epoch": self.epoch, "step_in_epoch": self.step_in_epoch,
                  "chars_seen": self.chars_seen}  # fmt: skip
        for name, value in counts.items():
            if value < 0:
                raise ValueError(f"run.{name} is negative ({value})")
        if not (0 <= self.progress <= 1 and math.isfinite(self.elapsed_s) and self.elapsed_s >= 0):
            raise ValueError("run.progress or run.elapsed_s is out of range")
        if self.best_val_loss is not None and not math.isfinite(self.best_val_loss):
            raise ValueError(f"run.best_val_loss is {self.best_val_loss}")
        for entry in self.metrics:
            if not _is_entry(entry):
                raise ValueError(f"run.metrics holds an entry that is not an evaluation's: {entry!r:.60}")
        batch = self.train_config.get("batch_size")
        if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
            raise ValueError(f"run.train_config.batch_size is {batch!r}")
        fracs = [self.train_config.get(name) for name in ("val_frac", "test_frac")]
        if not all(finite_number(f) for f in fracs):
            raise ValueError(f"run.train_config's val_frac and test_frac are {fracs}")
        check_split(*fracs)  # what eval's --split reads
        shape = (config.layers, batch, config.hidden)
        parts = len(config.cell.state_names)
        if len(self.carried) != parts or any(s.dtype != torch.float32 or s.shape != shape for s in self.carried):
            raise ValueError(f"the carried state is not {parts} float32 tensor(s) of shape {shape}")
        cpu_rng = torch.get_rng_state()
        for name, t in self.rng.items():
            if t.dtype != torch.uint8 or t.dim() != 1 or (name.endswith("cpu") and t.shape != cpu_rng.shape):
                raise ValueError(f"generator state rng.{name} is not a byte string of the right length")


@dataclass
class Checkpoint:
    config: ModelConfig
    vocab: Vocab
    model: CharRNN  # on CPU, eval mode
    run: TrainingState | None  # None for a weights-only export
    path: Path | None = None
    sha256: str = ""  # the file's checksum (its header's), as read


# --------------------------------------------------------------------------
# Save


def save_checkpoint(path: str | Path, model: CharRNN, vocab: Vocab, run: TrainingState | None = None) -> None:
    """Write atomically; refuses weights or optimizer state that are not finite."""
    write_bytes_atomic(Path(path), checkpoint_bytes(model, vocab, run))


def checkpoint_bytes(model: CharRNN, vocab: Vocab, run: TrainingState | None = None) -> bytes:
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    meta: dict = {
        "format": FORMAT,
        "version": model.config.format_version(),
        "model": model.config.to_dict(),
        "vocab": list(vocab.chars),
        "torch": torch.__version__,
    }
    if run is not None:
        meta["run"], run_tensors = run.encode()
        tensors.update(run_tensors)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise CharRNNError(f"refusing to write a checkpoint: {name} holds NaN or infinite values")
    meta_json = json.dumps(meta, ensure_ascii=True, allow_nan=False, sort_keys=True)
    return st_save(tensors, metadata={"format": FORMAT, "meta": meta_json, "sha256": digest(meta_json, tensors)})


def _flatten_optimizer(sd: dict) -> tuple[dict, Tensors]:
    """Optimizer state_dict -> (JSON, tensors). Tensors go to safetensors;
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
    return {"state": state_meta, "param_groups": sd["param_groups"]}, tensors


def _unflatten_optimizer(meta: dict, tensors: Tensors) -> dict:
    state: dict[int, dict] = {int(pid): dict(vals) for pid, vals in meta["state"].items()}
    for name, t in tensors.items():
        if name.startswith("optim."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = t
    return {"state": state, "param_groups": meta["param_groups"]}


def digest(meta_json: str, tensors: dict[str, torch.Tensor]) -> str:
    """The checksum a checkpoint carries: over its JSON and every tensor's
    name, dtype, shape and bytes (what another writer must compute)."""
    h = hashlib.sha256(meta_json.encode())
    for name in sorted(tensors):
        t = tensors[name]
        h.update(f"\0{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------
# Load


def load_checkpoint(path: str | Path, prefer: str = BEST) -> Checkpoint:
    """Read, verify and rebuild a checkpoint (model on CPU, eval mode)."""
    p = checkpoint_path(path, prefer)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise CharRNNError(f"cannot read checkpoint {p}: {e.strerror or e}") from None
    header = _read_header(p, data)
    meta_json, checksum = header.get("meta"), header.get("sha256")
    if header.get("format") != FORMAT or not isinstance(meta_json, str) or not isinstance(checksum, str):
        raise CharRNNError(f"{p} is a safetensors file but not a charrnn checkpoint")
    try:
        tensors = st_load(data)
    except Exception:  # safetensors raises its own error type for any malformed file
        raise CharRNNError(f"checkpoint {p} is corrupt or truncated (its tensors cannot be read)") from None
    if digest(meta_json, tensors) != checksum:
        raise CharRNNError(f"checkpoint {p} is corrupt: its checksum does not match its contents")
    # The checksum catches accidents, not intent: anyone can write a file
    # whose checksum matches, so every field is still checked as it is read.
    try:
        meta = json.loads(meta_json)
        version = meta["version"]
    except (KeyError, TypeError, ValueError) as e:
        raise CharRNNError(f"checkpoint {p} is inconsistent: {type(e).__name__}: {e}") from None
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CharRNNError(f"checkpoint {p} is inconsistent: bad format version {version!r}")
    if version > VERSION:
        raise CharRNNError(
            f"checkpoint {p} has format version {version}, newer than this charrnn reads ({VERSION}): upgrade charrnn"
        )
    try:
        return replace(_rebuild(p, meta, tensors), sha256=checksum)
    except CharRNNError as e:  # a config that fails its own checks
        raise CharRNNError(f"checkpoint {p} is inconsistent: {e}") from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError) as e:
        first = (str(e).splitlines() or [""])[0]  # torch's own errors can carry a C++ stack below
        raise CharRNNError(f"checkpoint {p} is inconsistent: {type(e).__name__}: {first}") from None


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
    if any(v.dtype not in (torch.float32, torch.bfloat16, torch.float16) for v in weights.values()):
        raise ValueError("its weights are not float32, bfloat16 or float16")  # an export may be halved
    # Building even a meta model costs time per declared layer: a crafted
    # config asking for millions must be refused by what the file holds.
    if config.layers != sum(name.startswith("rnn.weight_ih_l") for name in weights):
        raise ValueError(f"the model config declares {config.layers} layers, the weights hold another number")
    with torch.device("meta"):  # check shapes before allocating what the config asks for
        expected = {k: tuple(v.shape) for k, v in CharRNN(config).state_dict().items()}
    if expected != {k: tuple(v.shape) for k, v in weights.items()}:
        raise ValueError("its weights do not match its model config")
    model = CharRNN(config)
    model.load_state_dict(weights, strict=True)
    model.eval()
    run = TrainingState.decode(meta["run"], tensors) if "run" in meta else None
    if run is not None:
        run.check(config)
    return Checkpoint(config, vocab, model, run, p)


def _is_entry(entry) -> bool:
    """A metrics entry as the loop writes it: numbers, text or nothing, with
    the step and the val loss that resuming and the advice read."""
    return (isinstance(entry, dict) and isinstance(entry.get("step"), int) and finite_number(entry.get("val_loss"))
            and all(v is None or isinstance(v, str) or finite_number(v) for v in entry.values()))  # fmt: skip


def _typed(value, type_: type):
    if not isinstance(value, type_) or isinstance(value, bool) != (type_ is bool):
        raise TypeError(f"expected {type_.__name__}, found {type(value).__name__}")
    return value


ADAMW_STATE = {"step", "exp_avg", "exp_avg_sq"}


def restore_optimizer(optimizer: torch.optim.Optimizer, saved: dict) -> None:
    """Load a checkpoint's AdamW moments into `optimizer`, checked against
    its model first (a file can pass its checksum and still hold anything).
    The hyper-parameters stay the optimizer's own (the loop sets lr before
    every step), so the file's param_groups only have to list the same
    parameters. Refuses with CharRNNError in one line."""
    try:
        optimizer.load_state_dict(_checked_moments(saved, optimizer))
    except (KeyError, ValueError, TypeError, RuntimeError, AttributeError) as e:
        raise CharRNNError(f"the checkpoint's optimizer state does not fit its model: {e}") from None


def _checked_moments(saved: dict, optimizer: torch.optim.Optimizer) -> dict:
    fresh = optimizer.state_dict()
    listed = [g.get("params") if isinstance(g, dict) else None for g in saved.get("param_groups", ())]
    if listed != [g["params"] for g in fresh["param_groups"]]:
        raise ValueError("its parameter groups are not this model's")
    params = [p for g in optimizer.param_groups for p in g["params"]]
    for pid, moments in saved["state"].items():
        if not 0 <= pid < len(params):
            raise ValueError(f"it holds state for parameter {pid}, which the model lacks")
        tensors = moments.values()
        if moments and (set(moments) != ADAMW_STATE or not all(isinstance(t, torch.Tensor) for t in tensors)
                        or not all(t.is_floating_point() for t in tensors) or moments["step"].numel() != 1
                        or any(moments[k].shape != params[pid].shape for k in ("exp_avg", "exp_avg_sq"))):  # fmt: skip
            raise ValueError(f"parameter {pid}'s moments are not AdamW's for its shape")
    return {"state": saved["state"], "param_groups": fresh["param_groups"]}
