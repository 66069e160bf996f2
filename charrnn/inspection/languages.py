"""Features that know their language: strings, comments and brackets as a
C or Python reader sees them, so that the finder looks for the cells a
model of code would grow.

The generic features toggle "inside double quotes" at every `"`: in C the
char literal `'"'`, the escape `\\"` and a quote inside a comment turn it
inside out for the rest of the file. A scanner that knows the language's
lexical rules marks each character as code, string, char literal or
comment, and counts brackets in code alone.

Feature sets (`charrnn inspect --features`): generic (features.py), c (C
and its family: C++, Java, JavaScript, Go), python, and prose (typographic
quotes); `auto` picks one from the text.
"""

from __future__ import annotations

import re

import numpy as np

from ..errors import CharRNNError
from .features import BUILTIN_FEATURES, Feature, _indentation, _inside, _line_position, regex_feature

CODE, LINE_COMMENT, BLOCK_COMMENT, STRING, CHAR = range(5)


def c_lexical(text: str) -> dict[str, np.ndarray]:
    """Per character, C's lexical classes: inside a string (quotes
    excluded), inside a char literal, inside a comment (delimiters
    included), bracket depth counted in code alone, and inside the
    parenthesised condition of an `if` (parentheses excluded)."""
    n = len(text)
    out = {name: np.zeros(n, dtype=np.float32) for name in ("string", "char", "comment", "depth", "if")}
    state, depth, i = CODE, 0, 0
    ifs: list[int] = []  # the depth inside each open if's parentheses
    pending_if = False  # `if` read, its "(" not yet
    while i < n:
        ch, nxt = text[i], text[i + 1] if i + 1 < n else ""
        if state == CODE:
            if ch == "/" and nxt in "/*":
                state = LINE_COMMENT if nxt == "/" else BLOCK_COMMENT
                out["comment"][i : i + 2] = 1
                out["depth"][i : i + 2] = depth
                _mark_if(out, i, 2, ifs, depth)
                i += 2
                continue
            if ch == '"' or ch == "'":
                state = STRING if ch == '"' else CHAR
            elif ch in "([{":
                depth += 1
                if ch == "(" and pending_if:
                    ifs.append(depth)
                    pending_if = False
                    out["depth"][i] = depth
                    i += 1
                    continue
            elif ch in ")]}":
                if ifs and ifs[-1] == depth and ch == ")":
                    ifs.pop()
                    out["depth"][i] = depth
                    depth = max(0, depth - 1)
                    i += 1
                    continue
                depth = max(0, depth - 1)
            elif ch == "i" and nxt == "f" and _word_at(text, i, 2):
                pending_if = True
                out["depth"][i : i + 2] = depth
                _mark_if(out, i, 2, ifs, depth)
                i += 2
                continue
            elif not ch.isspace():
                pending_if = False
            out["depth"][i] = depth
            _mark_if(out, i, 1, ifs, depth)
            i += 1
            continue
        # inside a comment, a string or a char literal: depth and an if's condition carry on
        out["depth"][i] = depth
        _mark_if(out, i, 1, ifs, depth)
        if state == LINE_COMMENT:
            if ch == "\n":
                state = CODE
            else:
                out["comment"][i] = 1
        elif state == BLOCK_COMMENT:
            out["comment"][i] = 1
            if ch == "*" and nxt == "/":
                out["comment"][i + 1] = 1
                out["depth"][i + 1] = depth
                _mark_if(out, i + 1, 1, ifs, depth)
                state = CODE
                i += 1
        else:
            quote = '"' if state == STRING else "'"
            if ch == quote or ch == "\n":  # the closing quote (a newline ends a malformed literal)
                state = CODE
            else:
                out["string" if state == STRING else "char"][i] = 1
                if ch == "\\" and nxt and nxt != "\n":  # an escape: the next character is part of it
                    out["string" if state == STRING else "char"][i + 1] = 1
                    out["depth"][i + 1] = depth
                    _mark_if(out, i + 1, 1, ifs, depth)
                    i += 1
        i += 1
    return out


def _word_at(text: str, i: int, length: int) -> bool:
    """Whether text[i:i+length] is a whole word."""
    before = text[i - 1] if i > 0 else " "
    after = text[i + length] if i + length < len(text) else " "
    return not (before.isalnum() or before == "_") and not (after.isalnum() or after == "_")


def _mark_if(out: dict, i: int, count: int, ifs: list[int], depth: int) -> None:
    if ifs and depth >= ifs[-1]:
        out["if"][i : i + count] = 1


def python_lexical(text: str) -> dict[str, np.ndarray]:
    """Per character, Python's: inside a string (any quote, triple ones and
    escapes included; the quotes excluded), inside a comment, and bracket
    depth in code alone."""
    n = len(text)
    out = {name: np.zeros(n, dtype=np.float32) for name in ("string", "comment", "depth")}
    depth, i = 0, 0
    while i < n:
        ch = text[i]
        if ch == "#":
            end = text.find("\n", i)
            end = n if end < 0 else end
            out["comment"][i:end] = 1
            out["depth"][i:end] = depth
            i = end
            continue
        if ch in "\"'":
            quote = text[i : i + 3] if text[i : i + 3] in ('"""', "'''") else ch
            j = i + len(quote)
            while j < n and not text.startswith(quote, j) and (len(quote) == 3 or text[j] != "\n"):
                j += 2 if text[j] == "\\" else 1
            j = min(j, n)
            out["string"][i + len(quote) : j] = 1
            out["depth"][i : j + len(quote)] = depth
            i = j + len(quote)
            continue
        if ch in "([{":
            depth += 1
        out["depth"][i] = depth
        if ch in ")]}":
            depth = max(0, depth - 1)
        i += 1
    return out


def _from(scan, part: str) -> Feature:
    return lambda text: scan(text)[part]


_SHARED = {name: BUILTIN_FEATURES[name] for name in ("position in line", "indentation", "start of word",
                                                     "after a newline", "uppercase", "digit")}  # fmt: skip

FEATURE_SETS: dict[str, dict[str, Feature]] = {
    "generic": BUILTIN_FEATURES,
    "c": {
        "inside a string": _from(c_lexical, "string"),
        "inside a char literal": _from(c_lexical, "char"),
        "inside a comment": _from(c_lexical, "comment"),
        "inside an if condition": _from(c_lexical, "if"),
        "bracket depth": _from(c_lexical, "depth"),
        **_SHARED,
    },
    "python": {
        "inside a string": _from(python_lexical, "string"),
        "inside a comment": _from(python_lexical, "comment"),
        "bracket depth": _from(python_lexical, "depth"),
        **_SHARED,
    },
    "prose": {
        "inside double quotes": lambda text: _inside(text, '"\u201c', '"\u201d'),
        "inside single quotes": BUILTIN_FEATURES["inside single quotes"],
        "inside brackets": regex_feature(r"\([^()\n]*\)"),
        "position in line": _line_position,
        "indentation": _indentation,
        **{k: v for k, v in _SHARED.items() if k not in ("position in line", "indentation")},
    },
}


_C_HINTS = re.compile(r"^\s*(#include|#define|static |struct |typedef |int |void |return\b|if \()", re.M)
_PY_HINTS = re.compile(r"^\s*(def |class |import |from \S+ import|elif |self\.)", re.M)


def detect(text: str) -> str:
    """The feature set a text most looks like: c, python, or generic."""
    lines = max(1, text.count("\n"))
    c = len(_C_HINTS.findall(text)) + text.count(";\n") + text.count("{\n")
    py = len(_PY_HINTS.findall(text)) + text.count(":\n")
    if max(c, py) < 0.05 * lines:
        return "generic"
    return "c" if c >= py else "python"


def feature_set(name: str, text: str) -> tuple[str, dict[str, Feature]]:
    """The named feature set (auto: detected from the text) and its name."""
    chosen = detect(text) if name == "auto" else name
    if chosen not in FEATURE_SETS:
        raise CharRNNError(f"--features must be auto or one of {', '.join(FEATURE_SETS)}, not {name!r}")
    return chosen, FEATURE_SETS[chosen]
