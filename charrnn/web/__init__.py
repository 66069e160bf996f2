"""One self-contained web page that generates text from a model in the
browser (`charrnn export CKPT --web page.html`).

The page (page.html, page.css, page.js, shipped as package data) holds the
model's config, vocabulary and weights as JSON in a
<script type="application/json"> block, and runs the model in plain
JavaScript: page.js does the embedding, the two affine maps of each layer
and the head, and each cell kind brings its own step (`Cell.web_step`, the
JavaScript twin of `Cell.step`). No network: the Content-Security-Policy
allows nothing but the page's own script and style, by their hashes. Text
from the model or the user reaches the document as textContent only.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from importlib import resources

import torch

from ..checkpoint import Checkpoint
from ..device import STORAGE
from ..errors import CharRNNError
from ..inspection.page import json_for_script


def page_data(checkpoint: Checkpoint, dtype: str) -> dict:
    c = checkpoint.config
    weights = {}
    for name, t in checkpoint.model.state_dict().items():
        half = t.detach().to(STORAGE[dtype]).contiguous()  # export.export_page checked that they fit
        raw = half.view(torch.int16 if half.element_size() == 2 else torch.int32).numpy().tobytes()
        weights[name] = {"shape": list(t.shape), "data": base64.b64encode(raw).decode("ascii")}
    return {
        "kind": c.kind, "layers": c.layers, "hidden": c.hidden, "embedding": c.embedding,
        "blocks": c.cell.blocks, "state_parts": list(c.cell.state_names), "vocab": list(checkpoint.vocab.chars),
        "dtype": dtype, "weights": weights,
    }  # fmt: skip


def render(checkpoint: Checkpoint, dtype: str = "fp16") -> str:
    """The page's HTML for a model, its weights in `dtype`."""
    cell = checkpoint.config.cell
    if cell.web_step is None:
        raise CharRNNError(f"cell kind {cell.name!r} has no web step (Cell.web_step): it cannot run in a page")
    markup, style, script = _parts()
    script = script.replace("__STEP__", cell.web_step.strip(), 1)
    csp = f"default-src 'none'; script-src '{_hash(script)}'; style-src '{_hash(style)}'; base-uri 'none'; form-action 'none'"
    head, tail = markup.split("__DATA__")
    head = head.replace("__CSP__", csp, 1).replace("__STYLE__", style, 1)
    # The data goes in verbatim after the template is filled: it may hold any placeholder's name.
    return head + json_for_script(page_data(checkpoint, dtype)) + tail.replace("__SCRIPT__", script, 1)


def _hash(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode("ascii")


@functools.cache
def _parts() -> tuple[str, str, str]:
    files = resources.files(__package__)
    return tuple((files / name).read_text(encoding="utf-8") for name in ("page.html", "page.css", "page.js"))
