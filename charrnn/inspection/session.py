"""One call from a checkpoint to a recording: what `charrnn inspect` asks
of the library before it writes or shows anything.

    checkpoint -> source text -> selected layers and units -> Recording
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from ..checkpoint import Checkpoint
from ..clamp import parse_unit
from ..corpus import Vocab
from ..corpus.documents import DOC_END
from ..errors import CharRNNError
from ..model import CharRNN
from .analysis import Report, analyse
from .features import Feature
from .record import Recording, as_model_reads, recorded, select_layers, select_units
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

    def report(self, extra: dict[str, Feature] | None = None, top: int = 5, ablate: Sequence[str] = (),
               ablate_with: str = "zero", features: str = "auto") -> Report:  # fmt: skip
        """The analysis (analysis.py): the `features` set's features (auto,
        generic, c, python, prose) and `extra` ones, `top` units each, and the
        `ablate` units (as 'l1.h:42') held at 0 or their mean ("zero",
        "mean") over the text."""
        units = [parse_unit(spec, self.checkpoint.config, "--ablate") for spec in ablate]
        return analyse(self.recording, self.checkpoint.model, extra, top, units, ablate_with, features)


@contextmanager
def inspect_model(checkpoint: Checkpoint, model: CharRNN, source: TextSource,
                  selection: Selection = Selection()) -> Iterator[Inspection]:  # fmt: skip
    """Record a checkpoint's model (on the device to record on) on its
    source text. A large recording lives in a temporary directory until the
    block ends."""
    device = model.head.weight.device
    text, skipped = _known(source_text(checkpoint, source, str(device)), checkpoint.vocab, source,
                           checkpoint.config.documents)
    text = text[: selection.max_chars]
    layers = select_layers(selection.layers, checkpoint.config.layers)
    units = select_units(selection.units, checkpoint.config.hidden)
    with recorded(model, checkpoint.vocab, text, layers, units, selection.storage()) as recording:
        yield Inspection(checkpoint, recording, skipped)


def _known(text: str, vocab: Vocab, source: TextSource, documents: str = "") -> tuple[str, int]:
    """The text without the characters the model has never seen, and how
    many were left out; or, unless the source says to skip them, a refusal
    naming them and how often each occurs. (A model of lines knows line
    ends as its end marker.)"""
    where = f"--file {source.file}" if source.file is not None else "the text"
    read = as_model_reads(text, documents)
    ids, skipped = vocab.encode_known(read, where, source.skip_unknown, "leaves them out and records the rest")
    return (vocab.decode(ids).replace(DOC_END, "\n") if skipped else text), skipped
