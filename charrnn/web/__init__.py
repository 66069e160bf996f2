"""A model that runs in the browser: one self-contained web page that
generates text (`charrnn export CKPT --web page.html`), and an ES module
that other pages import and drive (`--module model.js`).

Both hold the model's config, vocabulary and weights (weights.py) and run
it in plain JavaScript: model.js does the embedding, the two affine maps of
each layer and the head, and each cell kind brings its own step
(`Cell.web_step`, the JavaScript twin of `Cell.step`); it exposes load,
sample, streamed generation, feed, the next character's distribution and
the start state. The page (page.html, page.css, page.js) is a form over it
with its data in a <script type="application/json"> block. No network: its
Content-Security-Policy allows nothing but its own script and style, by
their hashes, and text from the model or the user reaches the document as
textContent only.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from importlib import resources

from ..checkpoint import Checkpoint
from ..errors import CharRNNError
from ..inspection.page import json_for_script
from .weights import WEB_DTYPES, as_page_sees, check_dtype, check_range, encode

__all__ = ["WEB_DTYPES", "as_page_sees", "check_dtype", "check_range", "render", "render_module"]


def page_data(checkpoint: Checkpoint, dtype: str) -> dict:
    c = checkpoint.config
    weights = {name: encode(t, dtype) for name, t in checkpoint.model.state_dict().items()}
    return {
        "kind": c.kind, "layers": c.layers, "hidden": c.hidden, "embedding": c.embedding,
        "blocks": c.cell.blocks, "state_parts": list(c.cell.state_names), "vocab": list(checkpoint.vocab.chars),
        "documents": c.documents,
        "dtype": dtype, "weights": weights,
    }  # fmt: skip


def render(checkpoint: Checkpoint, dtype: str = "fp16") -> str:
    """The page's HTML for a model, its weights in `dtype`."""
    markup, style, script, _ = _parts()
    script = '"use strict";\n' + _model_js(checkpoint) + "\n" + script
    csp = f"default-src 'none'; script-src '{_hash(script)}'; style-src '{_hash(style)}'; base-uri 'none'; form-action 'none'"
    head, tail = markup.split("__DATA__")
    head = head.replace("__CSP__", csp, 1).replace("__STYLE__", style, 1)
    # The data goes in verbatim after the template is filled: it may hold any placeholder's name.
    return head + json_for_script(page_data(checkpoint, dtype)) + tail.replace("__SCRIPT__", script, 1)


def render_module(checkpoint: Checkpoint, dtype: str = "fp16") -> str:
    """An ES module holding the model, its weights in `dtype`:
    `import {load} from "./model.js"; const model = await load();`."""
    data = json.dumps(page_data(checkpoint, dtype), ensure_ascii=True)  # ASCII: safe however the file is served
    return (
        "// A charrnn model as an ES module (charrnn export --module): see docs/export.md.\n"
        + _model_js(checkpoint)
        + f"\nconst DATA = {data};\n"
        + "let model = null;\n"
        + "// The model, its weights decoded on first use.\n"
        + "export async function load() { return model || (model = charrnnModel(DATA)); }\n"
    )


def _model_js(checkpoint: Checkpoint) -> str:
    cell = checkpoint.config.cell
    if cell.web_step is None:
        raise CharRNNError(f"cell kind {cell.name!r} has no web step (Cell.web_step): it cannot run in a browser")
    return _parts()[3].replace("__STEP__", cell.web_step.strip(), 1)


def _hash(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode("ascii")


@functools.cache
def _parts() -> tuple[str, str, str, str]:
    files = resources.files(__package__)
    return tuple((files / name).read_text(encoding="utf-8") for name in ("page.html", "page.css", "page.js", "model.js"))
