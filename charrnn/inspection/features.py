"""Hypothesis features of a text: one number per character (inside
quotes, bracket depth, position in line, ...), for the finder and the
probes to correlate units with. `--feature NAME=REGEX` adds one that is 1
inside the regex's matches."""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

from ..errors import CharRNNError

Feature = Callable[[str], np.ndarray]


def _inside(text: str, openers: str, closers: str) -> np.ndarray:
    """1 on the characters between a quote opening (any of `openers`) and its
    closing (any of `closers`), quotes excluded."""
    out = np.zeros(len(text), dtype=np.float32)
    inside = False
    for t, ch in enumerate(text):
        if ch in openers if not inside else ch in closers:
            inside = not inside
            continue
        out[t] = inside
    return out


def _single_quotes(text: str) -> np.ndarray:
    # An apostrophe between letters (don't) is not a quote.
    cleaned = re.sub(r"(?<=\w)'(?=\w)", "\0", text)
    return _inside(cleaned, "'", "'")


def _depth(text: str) -> np.ndarray:
    out = np.zeros(len(text), dtype=np.float32)
    d = 0
    for t, ch in enumerate(text):
        if ch in "([{":
            d += 1
        out[t] = d
        if ch in ")]}":
            d = max(0, d - 1)
    return out


def _line_position(text: str) -> np.ndarray:
    out = np.zeros(len(text), dtype=np.float32)
    col = 0
    for t, ch in enumerate(text):
        out[t] = col
        col = 0 if ch == "\n" else col + 1
    return out


def _indentation(text: str) -> np.ndarray:
    out = np.zeros(len(text), dtype=np.float32)
    start = 0
    for line in text.splitlines(keepends=True):
        indent = len(line) - len(line.lstrip(" \t"))
        out[start : start + len(line)] = indent
        start += len(line)
    return out


def regex_feature(pattern: str) -> Feature:
    try:
        rx = re.compile(pattern, re.MULTILINE | re.DOTALL)
    except re.error as e:
        raise CharRNNError(f"--feature regex {pattern!r} is invalid: {e}") from None

    def feature(text: str) -> np.ndarray:
        out = np.zeros(len(text), dtype=np.float32)
        for m in rx.finditer(text):
            out[m.start() : m.end()] = 1
        return out

    return feature


def _chars(pred: Callable[[str], bool]) -> Feature:
    return lambda text: np.fromiter((pred(c) for c in text), dtype=np.float32, count=len(text))


BUILTIN_FEATURES: dict[str, Feature] = {
    "inside double quotes": lambda text: _inside(text, '"', '"'),
    "inside single quotes": _single_quotes,
    "bracket depth": _depth,
    "position in line": _line_position,
    "indentation": _indentation,
    "inside a comment": regex_feature(r"#[^\n]*|//[^\n]*|/\*.*?\*/"),
    "start of word": regex_feature(r"(?<!\w)\w"),
    "after a newline": regex_feature(r"(?<=\n)."),
    "uppercase": _chars(str.isupper),
    "digit": _chars(str.isdigit),
}


def parse_feature(spec: str) -> tuple[str, Feature]:
    """'NAME=REGEX' -> (NAME, feature active inside the regex's matches)."""
    name, sep, pattern = spec.partition("=")
    if not sep or not name or not pattern:
        raise CharRNNError(f"--feature must be NAME=REGEX, not {spec!r}")
    return name, regex_feature(pattern)


def is_binary(values: np.ndarray) -> bool:
    """Whether a feature is a yes/no one that is sometimes yes and sometimes
    no (the probes fit those)."""
    return set(np.unique(values)) <= {0.0, 1.0} and 0 < values.mean() < 1
