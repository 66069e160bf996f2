"""One call from a checkpoint to a recording: what `charrnn inspect` asks
of the library before it writes or shows anything.

    checkpoint -> source text -> selected layers and units -> Recording
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import rundir
from ..checkpoint import Checkpoint, load_checkpoint
from ..corpus import Vocab
from ..device import resolve_device
from ..errors import CharRNNError
from .analysis import Report, analyse
from .features import Feature
from .record import Recording, recorded, select_layers, select_units
from .source import TextSource, source_text


@dataclass(frozen=True)
class Selection:
    """What to record: layers like '0,1' and units like '0-63,100' (None: all),
    stored as fp32 or fp16."""

    layers: str | None = None
    units: str | None = None
    dtype: str = "fp32"
    max_chars: int = 100_000

    def storage(self) -> np.dtype:
        if self.dtype not in RECORDED:  # numpy, and so an npz, has no bf16
            raise CharRNNError(f"--dtype {self.dtype}: a recording is stored as {' or '.join(RECORDED)}")
        return np.dtype(RECORDED[self.dtype])


RECORDED = {"fp32": np.float32, "fp16": np.float16}  # how a recording's tensors may be stored


@dataclass(frozen=True)
class Inspection:
    checkpoint: Checkpoint
    recording: Recording
    skipped: int = 0  # characters left out of the text: the model has never seen them

    def report(self, extra: dict[str, Feature] | None = None, top: int = 5) -> Report:
        return analyse(self.recording, self.checkpoint.model, extra, top)


@contextmanager
def inspect_checkpoint(path: Path | None, source: TextSource, selection: Selection = Selection(),
                       device: str = "auto") -> Iterator[Inspection]:  # fmt: skip
    """Record a checkpoint (or a run directory's best; None: the newest run)
    on its source text. A large recording lives in a temporary directory
    until the block ends."""
    checkpoint = load_checkpoint(path if path is not None else rundir.newest_run())
    text, skipped = _known(source_text(checkpoint, source, device), checkpoint.vocab, source)
    text = text[: selection.max_chars]
    model = checkpoint.model.to(resolve_device(device))
    layers = select_layers(selection.layers, checkpoint.config.layers)
    units = select_units(selection.units, checkpoint.config.hidden)
    with recorded(model, checkpoint.vocab, text, layers, units, selection.storage()) as recording:
        yield Inspection(checkpoint, recording, skipped)


def _known(text: str, vocab: Vocab, source: TextSource) -> tuple[str, int]:
    """The text without the characters the model has never seen, and how
    many were left out; or, unless the source says to skip them, a refusal
    naming them and how often each occurs."""
    where = f"--file {source.file}" if source.file is not None else "the text"
    ids, skipped = vocab.encode_known(text, where, source.skip_unknown, "leaves them out and records the rest")
    return (vocab.decode(ids) if skipped else text), skipped
