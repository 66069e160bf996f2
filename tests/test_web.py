"""`charrnn export --web`: the generator page, run in headless chromium."""

from __future__ import annotations

import json
import re
import urllib.parse

import numpy as np
import pytest
import torch

from charrnn import checkpoint as ckpt
from charrnn.corpus import Vocab
from charrnn.model import CharRNN, ModelConfig

from conftest import BUILTIN_KINDS, SCAN_KINDS, assert_one_line_error, make_text, run_cli
from test_page import EVIL, chromium, needs_browser

VOCAB = Vocab.from_chars(make_text(30) + EVIL)


def model_file(tmp_path, kind: str):
    torch.manual_seed(2)
    model = CharRNN(ModelConfig(kind, VOCAB.size, embedding=5, hidden=12, layers=2)).eval()
    with torch.no_grad():  # larger weights, so that argmax text varies instead of settling into a short cycle
        model.head.weight.mul_(6)
        for name, p in model.rnn.named_parameters():
            p.mul_(4 if "weight" in name else 1)
    path = tmp_path / f"{kind}.safetensors"
    ckpt.save_checkpoint(path, model, VOCAB)
    return path


def selftest(page, tmp_path, prime: str, length: int = 300) -> tuple[dict, str]:
    url = page.as_uri() + "#selftest&" + urllib.parse.urlencode({"prime": prime, "length": length})
    dom = chromium(f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000", "--dump-dom", url)
    match = re.search(r'<pre id="selftest">(.*?)</pre>', dom, re.S)
    assert match, dom[-2000:]
    raw = match.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return json.loads(raw), dom


# every kind and every dtype, fp16's narrow range among them for the scanning kinds
PAGE_CASES = [("rnn", "bf16"), ("gru", "fp32"), ("lstm", "fp16"), ("mingru", "fp16"), ("minlstm", "bf16")]


def test_every_kind_has_a_page_case():
    assert sorted(kind for kind, _ in PAGE_CASES) == sorted(BUILTIN_KINDS)


@needs_browser
@pytest.mark.parametrize("kind, dtype", PAGE_CASES)
def test_the_page_generates_what_charrnn_sample_does(kind, dtype, tmp_path):
    source, page, half = model_file(tmp_path, kind), tmp_path / "page.html", tmp_path / "half.safetensors"
    assert run_cli("export", source, half, "--web", page, "--dtype", dtype).exit_code == 0
    prime = EVIL if kind == "lstm" else make_text(2, seed=5)
    report, dom = selftest(page, tmp_path, prime)
    # The reference is the same weights: the model exported in the page's dtype.
    model = ckpt.load_checkpoint(half).model.float()
    with torch.no_grad():
        logits, _ = model(torch.as_tensor(VOCAB.encode(prime).astype("int64"))[None])
    np.testing.assert_allclose(np.array(report["logits"]), logits[0].numpy(), atol=1e-3, rtol=0)  # every prime position (float64 against 32)
    done = run_cli("sample", half, "--temperature", "0", "--prime", prime, "--length", "300", "--no-echo")
    assert done.exit_code == 0, done.output
    assert report["errors"] == []
    assert report["text"] == done.stdout[:-1]
    # A random model's argmax text may settle into a short cycle: a scanning
    # kind's h, an average of its inputs, always did. The logits above cover it.
    assert len(set(report["text"])) > 10 or kind in SCAN_KINDS
    streamed = report["streamed"]  # the form's run: sampled at 0.9, top-k 5, 80 characters after the prime
    assert streamed.startswith(prime) and len(streamed) == len(prime) + 80 and set(streamed) <= set(VOCAB.chars)
    if prime == EVIL:  # a hostile prime stays text: no element made of it
        assert "<img" not in dom and "&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in dom


def test_the_page_is_self_contained_under_a_strict_policy(tmp_path):
    page = tmp_path / "page.html"
    assert run_cli("export", model_file(tmp_path, "gru"), "--web", page).exit_code == 0
    html = page.read_text(encoding="utf-8")
    policy = re.search(r'Content-Security-Policy" content="([^"]+)"', html).group(1)
    assert "default-src 'none'" in policy and "unsafe" not in policy and "script-src 'sha256-" in policy
    assert "http://" not in html and "https://" not in html
    data = html.split('<script type="application/json" id="data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in data and json.loads(data)["dtype"] == "fp16"


def test_a_kind_without_a_web_step_is_refused_in_one_line(tmp_path, monkeypatch):
    from charrnn.cells.gru import GRU

    monkeypatch.setattr(GRU, "web_step", None)
    page = tmp_path / "page.html"
    assert_one_line_error(run_cli("export", model_file(tmp_path, "gru"), "--web", page), "no web step")
    assert not page.exists()
    assert_one_line_error(run_cli("export", model_file(tmp_path, "gru")), "--web PAGE")
