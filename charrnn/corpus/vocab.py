"""The vocabulary: a model's characters and their ids, and the text they
encode and decode."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ..errors import CharRNNError
from .messages import unseen_error


@dataclass(frozen=True)
class Vocab:
    """The model's characters (Unicode code points), sorted; id = position."""

    chars: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.chars:
            raise CharRNNError("the vocabulary is empty")
        if any(len(c) != 1 for c in self.chars) or list(self.chars) != sorted(set(self.chars)):
            raise CharRNNError("a vocabulary must be distinct single characters in sorted order")
        max_cp = ord(self.chars[-1])
        # Code point -> id lookup table; the extra last slot (-1) catches any
        # code point above the vocab's largest.
        lut = np.full(max_cp + 2, -1, dtype=np.int64)
        lut[[ord(c) for c in self.chars]] = np.arange(len(self.chars))
        object.__setattr__(self, "_lut", lut)

    @classmethod
    def from_chars(cls, chars: Iterable[str]) -> Vocab:
        return cls(tuple(sorted(set(chars))))

    @property
    def size(self) -> int:
        return len(self.chars)

    @property
    def dtype(self) -> np.dtype:
        """Smallest unsigned integer type that holds every id."""
        for dt in (np.uint8, np.uint16, np.uint32):
            if self.size - 1 <= np.iinfo(dt).max:
                return np.dtype(dt)
        raise AssertionError("unreachable: Unicode has fewer than 2**32 code points")

    def code_points(self, text: str) -> np.ndarray:
        try:
            return np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
        except UnicodeEncodeError as e:
            raise CharRNNError(f"text holds an unpaired surrogate at character {e.start}") from None

    def encode(self, text: str) -> np.ndarray:
        """Text -> ids (compact dtype); characters outside the vocab are
        refused, as `encode_known` refuses them."""
        return self.encode_known(text)[0]

    def encode_known(self, text: str, where: str = "text", skip_unknown: bool = False,
                     skipping: str = "") -> tuple[np.ndarray, int]:  # fmt: skip
        """Text -> (ids, characters left out), by `translate`."""
        lut = self._lut  # type: ignore[attr-defined]
        ids = lut[np.minimum(self.code_points(text), len(lut) - 1)]
        if (ids >= 0).all():  # the usual case, in one pass
            return ids.astype(self.dtype), 0
        alphabet = Vocab.from_chars(text)
        return self.translate(alphabet.encode(text), alphabet, where, skip_unknown, skipping)

    def translate(self, ids: np.ndarray, alphabet: Vocab, where: str = "text", skip_unknown: bool = False,
                  skipping: str = "") -> tuple[np.ndarray, int]:  # fmt: skip
        """A text written in `alphabet`'s ids -> the same text in this vocab's
        ids, and how many characters were left out: the one place a text's
        characters outside the vocab (ones the model has never seen) are
        handled. They are refused in one line naming each and how often it
        occurs (`where` holds them; `skipping` says what --unknown skip
        would do), or with skip_unknown left out."""
        lut = self._lut  # type: ignore[attr-defined]
        mine = lut[np.minimum(alphabet.code_points("".join(alphabet.chars)), len(lut) - 1)]  # alphabet id -> id or -1
        known = mine >= 0
        mapped = np.where(known, mine, 0).astype(self.dtype)
        if known.all():
            return mapped[ids], 0
        counts = np.bincount(ids, minlength=alphabet.size)
        unseen = {alphabet.chars[i]: int(counts[i]) for i in np.flatnonzero(~known) if counts[i]}
        if unseen and not skip_unknown:
            raise unseen_error(where, unseen, skipping)
        return mapped[ids[known[ids]]], sum(unseen.values())

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.chars[int(i)] for i in ids)

    def diff(self, other: Vocab) -> tuple[list[str], list[str]]:
        """(characters `other` adds, characters it removes) relative to self."""
        mine, theirs = set(self.chars), set(other.chars)
        return sorted(theirs - mine), sorted(mine - theirs)
