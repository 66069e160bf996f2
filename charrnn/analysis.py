"""Finding the interpretable units in a recording.

- Gate saturation, as in Karpathy, Johnson and Fei-Fei (2015): how often
  each unit's gate is left- (< 0.1) or right-saturated (> 0.9).
- Feature finder: correlate every unit with hypothesis features of the
  text (inside quotes, bracket depth, position in line, ...). Units are
  chosen on the first half of the text and their correlation reported on
  the second half, beside the same unit's correlation in the same
  architecture at random initialisation: a feature that the current
  character gives away correlates even in an untrained network.
- Top contexts: where a unit is highest and lowest, with the text around.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .activations import Recording
from .errors import CharRNNError

SATURATED_LOW, SATURATED_HIGH = 0.1, 0.9
SATURATING_GATES = {"i", "f", "o", "r", "z"}  # sigmoid gates


# --------------------------------------------------------------------------
# Features: one number per character of the text


def _inside(text: str, open_c: str, close_c: str) -> np.ndarray:
    """1 on the characters between a quote opening and its closing, quotes excluded."""
    out = np.zeros(len(text), dtype=np.float32)
    inside = False
    for t, ch in enumerate(text):
        if ch == open_c if not inside else ch == close_c:
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


def regex_feature(pattern: str) -> Callable[[str], np.ndarray]:
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


def _chars(pred: Callable[[str], bool]) -> Callable[[str], np.ndarray]:
    return lambda text: np.fromiter((pred(c) for c in text), dtype=np.float32, count=len(text))


BUILTIN_FEATURES: dict[str, Callable[[str], np.ndarray]] = {
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
BINARY = {"inside double quotes", "inside single quotes", "inside a comment", "start of word",
          "after a newline", "uppercase", "digit"}  # fmt: skip


def parse_feature(spec: str) -> tuple[str, Callable[[str], np.ndarray]]:
    """'NAME=REGEX' -> (NAME, feature active inside the regex's matches)."""
    name, sep, pattern = spec.partition("=")
    if not sep or not name or not pattern:
        raise CharRNNError(f"--feature must be NAME=REGEX, not {spec!r}")
    return name, regex_feature(pattern)


# --------------------------------------------------------------------------
# Statistics


def correlations(acts: np.ndarray, feature: np.ndarray) -> np.ndarray:
    """Pearson r of every column of acts (T, U) with feature (T,); 0 where
    either is constant."""
    a = acts.astype(np.float64)
    a = a - a.mean(0)
    f = feature.astype(np.float64) - feature.mean()
    denom = np.sqrt((a * a).sum(0) * (f * f).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * f[:, None]).sum(0) / denom
    return np.nan_to_num(r)


@dataclass(frozen=True)
class Found:
    tensor: str
    unit: int
    r: float  # on the held-out half
    r_control: float  # the same unit of the randomly initialised network, held-out half

    def to_dict(self) -> dict:
        return {"tensor": self.tensor, "unit": self.unit, "r": self.r, "r_control": self.r_control}


def find_units(
    rec: Recording, control: Recording, features: dict[str, np.ndarray], top: int = 5
) -> dict[str, list[Found]]:
    """For each feature, the `top` units by |r| on the first half of the
    text, reported with r (and the control's r) on the second half."""
    n = len(rec.text)
    if n < 20:
        raise CharRNNError("the text is too short to find units (it needs at least 20 characters)")
    half = n // 2
    found = {}
    for fname, feature in features.items():
        if feature[:half].std() == 0 or feature[half:].std() == 0:
            found[fname] = []  # absent (or constant) in a half: nothing to correlate
            continue
        candidates = []
        for name, acts in rec.tensors.items():
            r_pick = correlations(acts[:half], feature[:half])
            for j in np.argsort(-np.abs(r_pick))[:top]:
                candidates.append((abs(r_pick[j]), name, int(j)))
        candidates.sort(reverse=True)
        rows = []
        for _, name, j in candidates[:top]:
            r = correlations(rec.tensors[name][half:, j : j + 1], feature[half:])[0]
            rc = correlations(control.tensors[name][half:, j : j + 1], feature[half:])[0]
            rows.append(Found(name, int(rec.units[name][j]), float(r), float(rc)))
        found[fname] = rows
    return found


def saturation(rec: Recording) -> dict[str, dict]:
    """Per sigmoid gate tensor: the fraction of time each unit is left- and
    right-saturated, and their means over units."""
    out = {}
    for name, acts in rec.tensors.items():
        if name.split(".")[1] not in SATURATING_GATES:
            continue
        a = acts.astype(np.float32)
        left, right = (a < SATURATED_LOW).mean(0), (a > SATURATED_HIGH).mean(0)
        out[name] = {
            "left_mean": float(left.mean()),
            "right_mean": float(right.mean()),
            "left": left.round(4).tolist(),
            "right": right.round(4).tolist(),
        }
    return out


def top_contexts(rec: Recording, name: str, column: int, k: int = 5, width: int = 30) -> dict[str, list[dict]]:
    """The k positions where a unit is highest and lowest, with text around."""
    acts = rec.tensors[name][:, column].astype(np.float32)
    order = np.argsort(acts)

    def ctx(t: int) -> dict:
        return {
            "position": int(t),
            "value": float(acts[t]),
            "before": rec.text[max(0, t - width) : t],
            "char": rec.text[t],
            "after": rec.text[t + 1 : t + 1 + width],
        }

    return {"highest": [ctx(t) for t in order[::-1][:k]], "lowest": [ctx(t) for t in order[:k]]}
