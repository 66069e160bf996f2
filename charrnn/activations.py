"""Recording what every unit does on every character.

A recording holds, for a text of T characters and every layer k, the
tensors (T, H) named `l{k}.h` (hidden state), and for an LSTM `l{k}.c`
(cell) and the gates `l{k}.i/f/g/o`, for a GRU the gates `l{k}.r/z/n` --
the same names `CharRNN.step` traces -- plus, per position, the model's
top-k next-character predictions and the surprisal (loss, nats) of the
character that actually came next.

It is computed a layer at a time and a chunk of characters at a time, not
character by character: each layer's h comes from the fused kernel that
training uses (state carried across chunks), its gates from one batched
matmul over the chunk given h(t-1), and the LSTM cell from its elementwise
recurrence c(t) = f(t) c(t-1) + i(t) g(t). Tests hold every tensor equal to
the step path's within 1e-5.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .data import Vocab
from .errors import CharRNNError
from .model import CellKind, CharRNN, split_name, trace_names

CHUNK = 4096  # characters per pass: bounds the float32 working memory


@dataclass
class Recording:
    text: str
    vocab: Vocab
    tensors: dict[str, np.ndarray]  # name -> (T, units)
    units: dict[str, np.ndarray]  # name -> which unit indices the columns are
    top_ids: np.ndarray  # (T, k) most likely next characters, best first
    top_probs: np.ndarray  # (T, k)
    loss: np.ndarray  # (T,) nats; the last position has no next character: NaN
    meta: dict = field(default_factory=dict)

    def manifest(self) -> dict:
        return {
            "format": "charrnn-activations",
            "version": 1,
            "chars": len(self.text),
            "tensors": {n: {"shape": list(a.shape), "dtype": str(a.dtype)} for n, a in self.tensors.items()},
            **self.meta,
        }

    def save_npz(self, path: str | Path) -> None:
        """Every tensor, the text (as code points), the vocab, predictions
        and losses, and a JSON manifest: loads with plain numpy."""
        arrays = {name: a for name, a in self.tensors.items()}
        arrays.update({f"units/{n}": u for n, u in self.units.items()})
        arrays["text"] = np.array([ord(c) for c in self.text], dtype=np.uint32)
        arrays["vocab"] = np.array([ord(c) for c in self.vocab.chars], dtype=np.uint32)
        arrays["top_ids"], arrays["top_probs"], arrays["loss"] = self.top_ids, self.top_probs, self.loss
        arrays["manifest"] = np.array(json.dumps(self.manifest()))
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            with open(tmp, "wb") as f:  # written whole, then renamed: never half a file
                np.savez(f, **arrays)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


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
            units.update(range(int(lo), int(hi or lo) + 1))
    except ValueError:
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
    ids = torch.as_tensor(vocab.encode(text).astype(np.int64))
    if len(ids) == 0:
        raise CharRNNError("there is no text to record")
    n, k = len(ids), min(top_k, vocab.size)
    names = [name for name in trace_names(cfg) if split_name(name)[0] in layers]
    sinks = {name: _Sink(spill, name, (n, len(units)), np.dtype(dtype)) for name in names}
    top_ids, top_probs = np.empty((n, k), dtype=np.int32), np.empty((n, k), dtype=np.float32)
    loss = np.full(n, np.nan, dtype=np.float32)
    state = model.init_state(1)
    fused = single_layers(model)
    for start in range(0, n, chunk):
        x = ids[start : start + chunk]
        tensors, logits, state = _chunk(model, fused, x, state)
        for name in names:
            sinks[name].write(start, tensors[name][:, units].numpy())
        logp = F.log_softmax(logits, -1)
        best = logp.topk(k, -1)
        top_ids[start : start + len(x)] = best.indices.numpy()
        top_probs[start : start + len(x)] = best.values.exp().numpy()
        nxt = ids[start + 1 : start + len(x) + 1]
        loss[start : start + len(nxt)] = (-logp[torch.arange(len(nxt)), nxt]).numpy()
    meta = {"model": cfg.to_dict(), "layers": layers, "top_k": k}
    unit_map = {name: units for name in names}
    out = {name: sink.finish() for name, sink in sinks.items()}
    return Recording(text, vocab, out, unit_map, top_ids, top_probs, loss, meta)


def _chunk(model: CharRNN, layers: list, ids: torch.Tensor, state: tuple) -> tuple[dict, torch.Tensor, tuple]:
    """Every layer's tensors for a chunk of characters, state carried in."""
    cfg, kind = model.config, model.config.kind
    x = model.embed(ids)  # (T, E)
    tensors: dict[str, torch.Tensor] = {}
    new_h, new_c = [], []
    for k in range(cfg.layers):
        w_ih, w_hh, b_ih, b_hh = model.layer_weights(k)
        h0 = state[0][k, 0]  # (H,)
        c0 = state[1][k, 0] if kind is CellKind.lstm else None
        h0_ = h0[None]  # (1, H): unbatched input (T, in)
        h, _ = layers[k](x, (h0_, c0[None]) if kind is CellKind.lstm else h0_)  # (T, H): the fused kernel's numbers
        h_prev = torch.cat([h0[None], h[:-1]])
        gi = F.linear(x, w_ih, b_ih)  # (T, G*H)
        gh = F.linear(h_prev, w_hh, b_hh)
        tensors[f"l{k}.h"] = h
        if kind is CellKind.lstm:
            i, f, g, o = (gi + gh).chunk(4, dim=1)
            i, f, g, o = i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()
            c = _cell_recurrence(f, i * g, c0)
            tensors.update({f"l{k}.c": c, f"l{k}.i": i, f"l{k}.f": f, f"l{k}.g": g, f"l{k}.o": o})
            new_c.append(c[-1])
        elif kind is CellKind.gru:
            ir, iz, in_ = gi.chunk(3, dim=1)
            hr, hz, hn = gh.chunk(3, dim=1)
            r = (ir + hr).sigmoid()
            tensors.update({f"l{k}.r": r, f"l{k}.z": (iz + hz).sigmoid(), f"l{k}.n": (in_ + r * hn).tanh()})
        new_h.append(h[-1])
        x = h
    logits = model.head(x)  # (T, V)
    h_state = torch.stack(new_h)[:, None]  # (layers, 1, H)
    new_state = (h_state, torch.stack(new_c)[:, None]) if kind is CellKind.lstm else (h_state,)
    return tensors, logits, new_state


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
    """Each layer of the model as its own one-layer fused module (same
    weights), so a layer's h can be taken for every position."""
    cfg = model.config
    cls = {CellKind.rnn: torch.nn.RNN, CellKind.gru: torch.nn.GRU, CellKind.lstm: torch.nn.LSTM}[cfg.kind]
    layers = []
    for k in range(cfg.layers):
        w_ih, w_hh, b_ih, b_hh = model.layer_weights(k)
        layer = cls(w_ih.shape[1], cfg.hidden, num_layers=1).to(w_ih.device).eval()
        layer.load_state_dict({"weight_ih_l0": w_ih, "weight_hh_l0": w_hh, "bias_ih_l0": b_ih, "bias_hh_l0": b_hh})
        layers.append(layer)
    return layers


def _cell_recurrence(f: torch.Tensor, ig: torch.Tensor, c0: torch.Tensor) -> torch.Tensor:
    """c(t) = f(t) * c(t-1) + i(t) g(t), for every t (T, H)."""
    c = torch.empty_like(f)
    prev = c0
    for t in range(len(f)):
        prev = torch.addcmul(ig[t], f[t], prev, out=c[t])
    return c

