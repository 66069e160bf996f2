"""One self-contained HTML page for a recording: the text coloured by a
unit chosen from a picker (tensor and index, or the finder's ranked list),
a tooltip per character (value, top-5 predictions, loss), and the
saturation, finder and gradient-flow results. No network, no CDN.

The markup and CSS live in page.html and the script in page.js, shipped as
package data beside this module, so that they can be read, edited and
linted as HTML and JavaScript rather than as one long Python string.
page.html holds two placeholders: __SCRIPT__, where page.js goes, and
__DATA__, where the recording goes as JSON.

Every piece of text reaches the page as JSON inside a
<script type="application/json"> block, with <, >, & and the line
separators escaped, and is put into the document with textContent only:
a corpus holding `</script><img onerror=...>` shows as text.

Activations are stored as uint8, scaled per unit between its min and max
(the tooltip's values are within 1/255 of that range), base64-encoded.
"""

from __future__ import annotations

import base64
import functools
import json
from importlib import resources
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .record import Recording

_SCRIPT = "__SCRIPT__"
_DATA = "__DATA__"


def _quantise(acts: np.ndarray) -> dict:
    a = acts.astype(np.float32)
    lo, hi = a.min(0), a.max(0)
    span = np.where(hi > lo, hi - lo, 1.0)
    q = np.round((a - lo) / span * 255).astype(np.uint8)  # (T, U)
    return {
        "lo": lo.round(5).tolist(),
        "hi": hi.round(5).tolist(),
        "units": [],
        "data": base64.b64encode(q.T.copy().tobytes()).decode("ascii"),  # unit-major
    }


def _top(rec: Recording, n: int) -> list:
    """Per position, the most likely next characters as [char, probability] pairs."""
    vocab = list(rec.vocab.chars)
    return [
        [[vocab[i], round(float(p), 4)] for i, p in zip(ids, probs)]
        for ids, probs in zip(rec.top_ids[:n], rec.top_probs[:n])
    ]


def page_data(rec: Recording, analysis: dict | None, max_chars: int) -> dict:
    n = min(len(rec.text), max_chars)
    tensors = {}
    for name, acts in rec.tensors.items():
        entry = _quantise(acts[:n])
        entry["units"] = [int(u) for u in rec.units[name]]
        tensors[name] = entry
    return {
        "text": rec.text[:n],
        "truncated": len(rec.text) > n,
        "tensors": tensors,
        "top": _top(rec, n),
        # The last position has no next character: NaN, which JSON cannot hold.
        "loss": [None if np.isnan(x) else round(float(x), 4) for x in rec.loss[:n]],
        "analysis": analysis or {},
    }


_SCRIPT_ESCAPES = (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))


def json_for_script(obj) -> str:
    """JSON that cannot end its <script> block early (no <, >, &) and that older
    JavaScript parsers accept (U+2028 and U+2029 escaped)."""
    text = json.dumps(obj, ensure_ascii=False)
    for raw, esc in _SCRIPT_ESCAPES:
        text = text.replace(raw, esc)
    return text


@functools.cache
def _template() -> tuple[str, str]:
    """The page with its script in place, split at the data placeholder; read
    from the package once per process."""
    files = resources.files(__package__)
    markup = (files / "page.html").read_text(encoding="utf-8")
    script = (files / "page.js").read_text(encoding="utf-8")
    # page.js ends with a newline, which ends its last line before </script>.
    page = markup.replace(_SCRIPT, script, 1)
    # Splitting rather than replacing at render time: the data may itself contain
    # "__SCRIPT__" or "__DATA__", and must be inserted verbatim.
    before, after = page.split(_DATA)  # ValueError unless exactly one placeholder
    return before, after


def render(rec: Recording, analysis: dict | None = None, max_chars: int = 3000) -> str:
    before, after = _template()
    return before + json_for_script(page_data(rec, analysis, max_chars)) + after
