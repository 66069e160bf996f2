"""load_corpus: a corpus path -> Corpus, whichever form the path holds: a
prepared directory (prepared.py: mapped, nothing decoded) or text (reader.py:
read and encoded)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..errors import CharRNNError
from .prepared import is_prepared, open_prepared
from .reader import Corpus, read_text_corpus


def load_corpus(path: str | Path, encoding: str = "utf-8", extra_chars: Iterable[str] = (),
                documents: str = "") -> Corpus:  # fmt: skip
    """The corpus at `path`: a text file, a directory of them, or a
    directory `charrnn prepare` wrote (which records its own encoding, so
    `encoding` is not used). Its vocab is the corpus's characters and any
    `extra_chars` (a fine-tuned model keeps its parent's). `documents`
    ("lines" or "files") reads a text as documents (documents.py)."""
    path = Path(path)
    if is_prepared(path):
        if documents:
            raise CharRNNError(f"{path} is a prepared corpus, one stream of ids: --documents {documents} reads the"
                               " text itself, so give the text (documents of names and lines are small)")  # fmt: skip
        return open_prepared(path, extra_chars)
    return read_text_corpus(path, encoding, extra_chars, documents)
