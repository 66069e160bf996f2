"""load_corpus: a corpus path -> Corpus, whichever form the path holds: a
prepared directory (prepared.py: mapped, nothing decoded) or text (reader.py:
read and encoded)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from .prepared import is_prepared, open_prepared
from .reader import Corpus, read_text_corpus


def load_corpus(path: str | Path, encoding: str = "utf-8", extra_chars: Iterable[str] = ()) -> Corpus:
    """The corpus at `path`: a text file, a directory of them, or a
    directory `charrnn prepare` wrote (which records its own encoding, so
    `encoding` is not used). Its vocab is the corpus's characters and any
    `extra_chars` (a fine-tuned model keeps its parent's)."""
    path = Path(path)
    if is_prepared(path):
        return open_prepared(path, extra_chars)
    return read_text_corpus(path, encoding, extra_chars)
