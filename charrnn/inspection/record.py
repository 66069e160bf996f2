"""Recording what every unit does on every character.

A recording holds, for a text of T characters and every layer k, the
tensors (T, H) that `CharRNN.step` traces, under the same names: `l{k}.h`
(hidden state), and the cell kind's other state parts and gates (for an
LSTM `l{k}.c` and `l{k}.i/f/g/o`, for a GRU `l{k}.r/z/n`), plus, per
position, the model's top-k next-character predictions and the surprisal
(loss, nats) of the character that actually came next.

It is computed a layer at a time and a chunk of characters at a time, not
character by character: each layer's h comes from the layer module that
training uses (the kind's sequence module; state carried across chunks), then the cell kind's `record`
gives the rest from h(t-1) (built-in kinds: gates from one batched matmul
over the chunk, and the LSTM cell from its elementwise recurrence). Tests
hold every tensor equal to the step path's within 1e-5.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..corpus.documents import DOC_END, END_ID, chunks
from ..cells import WEIGHT_NAMES
from ..corpus import Vocab
from ..device import ieee_fp32
from ..errors import CharRNNError
from ..files import atomic_path
from ..model import CharRNN, ModelConfig, split_name

CHUNK = 4096  # characters per pass: bounds the float32 working memory
SPILL_BYTES = 1 << 29  # recordings larger than this (512 MiB) stream to disk


@dataclass
class Recording:
    text: str
    vocab: Vocab
    config: ModelConfig  # of the model recorded
    layers: list[int]  # the layers recorded
    tensors: dict[str, np.ndarray]  # name -> (T, units)
    units: dict[str, np.ndarray]  # name -> which unit indices the columns are
    top_ids: np.ndarray  # (T, k) most likely next characters, best first
    top_probs: np.ndarray  # (T, k)
    loss: np.ndarray  # (T,) nats; the last position has no next character: NaN

    def manifest(self) -> dict:
        return {
            "format": "charrnn-activations",
            "version": 1,
            "chars": len(self.text),
            "tensors": {n: {"shape": list(a.shape), "dtype": str(a.dtype)} for n, a in self.tensors.items()},
            "model": self.config.to_dict(),
            "layers": self.layers,
            "top_k": self.top_ids.shape[1],
        }

    def part(self, name: str) -> str:
        """What a recorded tensor is, in its layer: 'l1.c' -> 'c'."""
        return split_name(name)[1]

    def char_probs(self) -> np.ndarray:
        """(T,) the probability the model gave each character before it
        came (from the loss of the position before); NaN for the first."""
        probs = np.full(len(self.text), np.nan, dtype=np.float32)
        probs[1:] = np.exp(-self.loss[:-1])
        return probs

    def unit(self, spec: str) -> tuple[str, int]:
        """'l1.c:42' -> ('l1.c', the column unit 42 was recorded in)."""
        name, _, index = spec.partition(":")
        if name not in self.tensors or not index.isdigit():
            raise CharRNNError(f"--unit must be TENSOR:UNIT with TENSOR one of {', '.join(self.tensors)}, not {spec!r}")
        columns = list(self.units[name])
        if int(index) not in columns:
            raise CharRNNError(f"unit {index} of {name} was not recorded")
        return name, columns.index(int(index))

    def save_npz(self, path: str | Path) -> None:
        """Every tensor, the text (as code points), the vocab, predictions
        and losses, and a JSON manifest: loads with plain numpy."""
        arrays = {name: a for name, a in self.tensors.items()}
        arrays.update({f"units/{n}": u for n, u in self.units.items()})
        arrays["text"] = np.array([ord(c) for c in self.text], dtype=np.uint32)
        arrays["vocab"] = np.array([ord(c) for c in self.vocab.chars], dtype=np.uint32)
        arrays["top_ids"], arrays["top_probs"], arrays["loss"] = self.top_ids, self.top_probs, self.loss
        arrays["manifest"] = np.array(json.dumps(self.manifest()))
        size = sum(a.nbytes for a in arrays.values())  # uncompressed: about what savez writes
        with atomic_path(Path(path), size) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)


def select_layers(spec: str | None, n_layers: int) -> list[int]:
    """'0,2' -> [0, 2]; None -> all."""
    if spec is None:
        return list(range(n_layers))
    try:
        layers = sorted({int(x) for x in spec.split(",")})
    except ValueError:
        raise CharRNNError(f"--layers must be layer numbers like 0,1, not {spec!r}") from None
    bad = [k for k in layers if not 0 <= k < n_layers]
    if bad:
        raise CharRNNError(f"--layers {bad}: the model has layers 0 to {n_layers - 1}")
    return layers


def select_units(spec: str | None, hidden: int) -> np.ndarray:
    """'0-9,42' -> [0..9, 42]; None -> all."""
    if spec is None:
        return np.arange(hidden)
    units: set[int] = set()
    try:
        for part in spec.split(","):
            lo, _, hi = part.partition("-")
            first, last = int(lo), int(hi or lo)
            if last < first:
                raise ValueError
            units.update(range(first, last + 1))
    except ValueError:  # also a backwards range (3-1), which would select nothing
        raise CharRNNError(f"--units must look like 0-9,42, not {spec!r}") from None
    if min(units) < 0 or max(units) >= hidden:
        raise CharRNNError(f"--units must be in 0..{hidden - 1}")
    return np.array(sorted(units))


@torch.inference_mode()
def record(
    model: CharRNN,
    vocab: Vocab,
    text: str,
    layers: list[int] | None = None,
    units: np.ndarray | None = None,
    dtype: np.dtype = np.float32,
    top_k: int = 5,
    chunk: int = CHUNK,
    spill: Path | None = None,
) -> Recording:
    """Run `text` through the model and keep every selected tensor. With
    `spill`, a directory, tensors are written to .npy files there as they
    are computed (memory-mapped) instead of being held in memory."""
    cfg = model.config
    model = model.eval()
    layers = list(range(cfg.layers)) if layers is None else layers
    units = np.arange(cfg.hidden) if units is None else units
    device = model.head.weight.device  # recorded where the model is; kept on the host
    ids = torch.as_tensor(vocab.encode(as_model_reads(text, cfg.documents)).astype(np.int64), device=device)
    columns = torch.as_tensor(units, device=device)
    if len(ids) == 0:
        raise CharRNNError("there is no text to record")
    n, k = len(ids), min(top_k, vocab.size)
    names = [name for name in cfg.trace_names if split_name(name)[0] in layers]
    sinks = {name: _Sink(spill, name, (n, len(units)), np.dtype(dtype)) for name in names}
    top_ids, top_probs = np.empty((n, k), dtype=np.int32), np.empty((n, k), dtype=np.float32)
    loss = np.full(n, np.nan, dtype=np.float32)
    state = model.init_state(1)
    with ieee_fp32(device):
        if cfg.documents:  # the text is read as a document begins: after the end marker
            _, state = model(torch.as_tensor([[END_ID]], device=device), state)
        layer_modules = single_layers(model)
        for start, stop, fresh in chunks(ids, chunk, bool(cfg.documents)):
            x = ids[start:stop]
            if fresh:  # each document from the zero state, as in training
                state = model.init_state(1)
            tensors, logits, state = _chunk(model, layer_modules, x, state)
            for name in names:
                sinks[name].write(start, tensors[name][:, columns].cpu().numpy())
            logp = F.log_softmax(logits, -1)
            best = logp.topk(k, -1)
            top_ids[start : start + len(x)] = best.indices.cpu().numpy()
            top_probs[start : start + len(x)] = best.values.exp().cpu().numpy()
            nxt = ids[start + 1 : start + len(x) + 1]
            loss[start : start + len(nxt)] = (-logp[torch.arange(len(nxt), device=device), nxt]).cpu().numpy()
    unit_map = {name: units for name in names}
    out = {name: sink.finish() for name, sink in sinks.items()}
    return Recording(text, vocab, cfg, layers, out, unit_map, top_ids, top_probs, loss)


def as_model_reads(text: str, documents: str) -> str:
    """The text as a model of `documents` reads it, character for character:
    a model of lines ends each line with the end marker, not a newline."""
    return text.replace("\n", DOC_END) if documents == "lines" else text


def _chunk(model: CharRNN, layers: list, ids: torch.Tensor, state: tuple) -> tuple[dict, torch.Tensor, tuple]:
    """Every layer's tensors for a chunk of characters, state carried in
    ((layers, 1, H) each) and out."""
    cell = model.cell
    x = model.embed(ids)  # (T, E)
    tensors: dict[str, torch.Tensor] = {}
    new_state = []
    for k in range(model.config.layers):
        w = model.layer_weights(k)
        prev = tuple(part[k, 0] for part in state)  # (H,) each
        h, _ = layers[k](x[None], cell.to_module_state(tuple(p[None, None] for p in prev)))  # a batch of 1
        h = h[0]  # (T, H): the layer module's numbers, as training computes them
        h_prev = torch.cat([prev[0][None], h[:-1]])
        rest = cell.record(w.input(x), w.recurrent(h_prev), h, prev)
        parts = {"h": h, **rest}
        tensors.update({f"l{k}.{name}": parts[name] for name in cell.traced})
        new_state.append(tuple(parts[name][-1] for name in cell.state_names))
        x = h
    logits = model.head(x)  # (T, V)
    return tensors, logits, tuple(torch.stack(part)[:, None] for part in zip(*new_state))


@contextmanager
def recorded(model: CharRNN, vocab: Vocab, text: str, layers: list[int], units: np.ndarray,
             dtype: np.dtype = np.float32) -> Iterator[Recording]:  # fmt: skip
    """`record`, held in memory, or streamed to a temporary directory when it
    would take more than SPILL_BYTES (deleted when the block ends)."""
    per_char = len(units) * len(layers) * len(model.cell.traced) * np.dtype(dtype).itemsize
    with tempfile.TemporaryDirectory(prefix="charrnn-inspect-") as spill:
        spill_dir = Path(spill) if len(text) * per_char > SPILL_BYTES else None
        yield record(model, vocab, text, layers, units, np.dtype(dtype), spill=spill_dir)


class _Sink:
    """Where one recorded tensor goes, chunk by chunk: an array in memory,
    or (spill) a .npy file appended to with plain writes, so its pages are
    never held by this process, then opened memory-mapped, read-only."""

    def __init__(self, spill: Path | None, name: str, shape: tuple, dtype: np.dtype):
        self.shape, self.dtype = shape, dtype
        self.path = None if spill is None else spill / f"{name}.npy"
        if self.path is None:
            self.array = np.empty(shape, dtype=dtype)
            return
        spill.mkdir(parents=True, exist_ok=True)
        self.file = open(self.path, "wb")
        header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_1_0(self.file, header)

    def write(self, start: int, rows: np.ndarray) -> None:
        if self.path is None:
            self.array[start : start + len(rows)] = rows
        else:  # chunks arrive in order, and rows are C-contiguous: append
            self.file.write(np.ascontiguousarray(rows, dtype=self.dtype).tobytes())

    def finish(self) -> np.ndarray:
        if self.path is None:
            return self.array
        self.file.close()
        return np.load(self.path, mmap_mode="r")


def single_layers(model: CharRNN) -> list[torch.nn.Module]:
    """Each layer of the model as its own one-layer module (the kind's
    `build`, same weights), so a layer's h can be taken for every position."""
    cfg = model.config
    layers = []
    for k in range(cfg.layers):
        w = model.layer_weights(k)
        with torch.random.fork_rng(devices=[]):  # its random init is overwritten: leave the caller's generator be
            layer = model.cell.build(w.w_ih.shape[1], cfg.hidden, 1, 0.0)
        layer = layer.to(w.w_ih.device).eval()
        layer.load_state_dict({f"{name}_l0": t for name, t in zip(WEIGHT_NAMES, w) if t is not None})
        layers.append(layer)
    return layers
