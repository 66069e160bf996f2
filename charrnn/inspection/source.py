"""The text that `inspect` records: given (--text), read (--file), or
written by the model itself (--generate, after an optional prime)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ..checkpoint import Checkpoint
from ..device import resolve_device
from ..errors import CharRNNError
from ..documents_sample import sample_documents
from ..sample import SampleConfig, generate

DOCUMENTS_A_BATCH, MAX_BATCHES = 32, 100  # --generate of a model of documents


@dataclass(frozen=True)
class TextSource:
    """Exactly one of text, file and generate_n; prime and sampling go with generate_n."""

    text: str | None = None
    file: Path | None = None
    generate_n: int | None = None  # characters the model samples
    prime: str = ""  # read before sampling, and recorded too
    sampling: SampleConfig = SampleConfig()
    skip_unknown: bool = False  # leave out characters the model has never seen, rather than refuse the text

    def __post_init__(self) -> None:
        if sum(x is not None for x in (self.text, self.file, self.generate_n)) != 1:
            raise CharRNNError("give exactly one of --text, --file or --generate")


def source_text(checkpoint: Checkpoint, source: TextSource, device: str = "auto") -> str:
    """The text itself; sampling runs on `device`."""
    if source.text is not None:
        return source.text
    if source.file is not None:
        try:
            return source.file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise CharRNNError(f"cannot read --file {source.file}: {e}") from None
    model = checkpoint.model.to(resolve_device(device))
    prime = source.prime
    if checkpoint.config.documents:
        return _documents(model, checkpoint, prime, source.sampling)
    return prime + "".join(chars[0] for chars in generate(model, checkpoint.vocab, prime, source.sampling))


def _documents(model, checkpoint: Checkpoint, prime: str, config: SampleConfig) -> str:
    """A model of documents' text of config.length characters: whole
    documents, each begun with the prime, drawn a batch at a time, each on
    its own line (of files: after a blank line) until they hold that many."""
    joiner = "\n" if checkpoint.config.documents == "lines" else "\n\n"
    text = ""
    for batch in range(MAX_BATCHES):
        if len(text) >= config.length:
            break
        seed = None if config.seed is None else config.seed + batch
        drawn = sample_documents(model, checkpoint, prime, replace(config, num_samples=DOCUMENTS_A_BATCH, seed=seed))
        text += "".join(doc + joiner for doc in drawn.texts if doc)
    return text[: config.length]
