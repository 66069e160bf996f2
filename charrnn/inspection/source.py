"""The text that `inspect` records: given (--text), read (--file), or
written by the model itself (--generate, after an optional prime)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..checkpoint import Checkpoint
from ..device import resolve_device
from ..errors import CharRNNError
from ..sample import SampleConfig, generate


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
    return prime + "".join(chars[0] for chars in generate(model, checkpoint.vocab, prime, source.sampling))
