"""Export a recording in the files LSTMVis (Strobelt et al.) reads, so
that tool opens it as it is: a project directory with

    lstm.yml     the project config
    states.h5    one dataset per recorded tensor, (T, units), float32
    train.h5     dataset word_ids: the character id at each position
    words.dict   one "token id" line per character of the vocab

LSTMVis splits dict lines on whitespace, so whitespace and control
characters get visible stand-ins (space is U+2423, newline is \\n).
Needs h5py (pip install 'charrnn[lstmvis]').
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..cells import Range
from ..errors import CharRNNError
from ..files import atomic_path, write_bytes_atomic
from ..model import split_name
from .record import Recording


def token(ch: str) -> str:
    if ch == " ":
        return "\u2423"
    if ch.isspace() or not ch.isprintable():
        return ascii(ch)[1:-1]  # \n, \t, \x1b, \u2028 ...
    return ch


def export(rec: Recording, directory: Path, name: str = "charrnn") -> None:
    try:
        import h5py
    except ImportError:
        raise CharRNNError("--lstmvis needs h5py: pip install 'charrnn[lstmvis]'") from None
    directory.mkdir(parents=True, exist_ok=True)
    index = {c: i for i, c in enumerate(rec.vocab.chars)}
    with atomic_path(directory / "train.h5") as tmp, h5py.File(tmp, "w") as f:
        f["word_ids"] = np.array([index[c] for c in rec.text], dtype=np.int32)
    with atomic_path(directory / "states.h5") as tmp, h5py.File(tmp, "w") as f:
        for tensor, acts in rec.tensors.items():
            f[tensor] = acts.astype(np.float32)
    lines = [f"{token(c)} {i}\n" for i, c in enumerate(rec.vocab.chars)]
    write_bytes_atomic(directory / "words.dict", "".join(lines).encode("utf-8"))
    write_bytes_atomic(directory / "lstm.yml", _config(rec, name).encode("utf-8"))


def _config(rec: Recording, name: str) -> str:
    types = []
    ranges = rec.config.cell.ranges
    for tensor in rec.tensors:
        layer, part = split_name(tensor)
        layer += 1  # LSTMVis counts layers from 1
        if part == "h":  # LSTMVis calls the hidden state the layer's output
            entry = {"type": "output", "layer": layer, "path": tensor, "transform": "none"}
        elif ranges[part] is Range.unbounded:  # LSTMVis maps it through tanh, its default
            entry = {"type": "state", "layer": layer, "path": tensor}
        else:  # bounded gates and states: sigmoid in [0, 1], or tanh in [-1, 1]
            entry = {"type": "state", "layer": layer, "path": tensor, "transform": "none"}
            if ranges[part] is Range.sigmoid:
                entry["unsigned"] = True
        types.append(entry)
    # JSON is valid YAML (flow style): no YAML library needed, no quoting surprises.
    body = {
        "name": name,
        "description": f"charrnn recording of {len(rec.text)} characters",
        "files": {"states": "states.h5", "train": "train.h5", "words": "words.dict"},
        "word_sequence": {"file": "train", "path": "word_ids", "dict_file": "words"},
        "states": {"file": "states", "types": types},
    }
    return "\n".join(f"{key}: {json.dumps(value, ensure_ascii=False)}" for key, value in body.items()) + "\n"
