"""The inspect page in a real headless browser (Debian's chromium): it loads
with no console errors, picking a unit recolours the text, corpus text
cannot inject markup, and a screenshot can be taken."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from charrnn import checkpoint as ckpt
from charrnn.corpus import Vocab
from charrnn.model import CharRNN, ModelConfig

from conftest import run_cli

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_browser = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
EVIL = '</script><img src=x onerror=alert(1)> "quoted" & <b>bold</b>\n'


def chromium(*args: str, timeout: int = 60) -> str:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
    done = subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=timeout)
    return done.stdout


@pytest.fixture
def page(tmp_path: Path) -> Path:
    vocab = Vocab.from_chars(EVIL)
    torch.manual_seed(0)
    model = CharRNN(ModelConfig("lstm", vocab.size, embedding=4, hidden=8, layers=2))
    ckpt.save_checkpoint(tmp_path / "m.safetensors", model, vocab)
    html = tmp_path / "page.html"
    result = run_cli("inspect", tmp_path / "m.safetensors", "--text", EVIL * 6, "--html", html)
    assert result.exit_code == 0, result.output
    return html


def test_page_is_self_contained_and_escaped(page):
    source = page.read_text(encoding="utf-8")
    assert "http://" not in source.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in source
    data = source.split('<script type="application/json" id="data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in data and ">" not in data  # nothing in the data can close the script
    assert json.loads(data)["text"].startswith("</script><img")


@needs_browser
def test_page_in_a_real_browser(page, tmp_path):
    dom = chromium(f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", "--dump-dom", page.as_uri() + "#selftest")
    match = re.search(r'<pre id="selftest">(.*?)</pre>', dom, re.S)
    assert match, dom[-2000:]
    report = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert report["errors"] == [] and report["recoloured"] is True
    assert report["spans"] == len(EVIL * 6)
    # The surprise view: each character by the probability the model gave it, from the position before.
    data = json.loads(page.read_text(encoding="utf-8").split('id="data">', 1)[1].split("</script>", 1)[0])
    probs = report["probabilities"]
    assert probs[0] is None and report["surprise"][0] == ""
    for j in range(1, len(probs)):
        assert probs[j] == pytest.approx(math.exp(-data["loss"][j - 1]), rel=1e-9)
    green = [int(re.findall(r"\d+", bg)[1]) if bg else None for bg in report["surprise"]]  # rgb(255, g, g): red as p falls
    lo, hi = min(range(1, len(probs)), key=probs.__getitem__), max(range(1, len(probs)), key=probs.__getitem__)
    assert green[lo] < green[hi]
    assert report["tip"].startswith(f"p = {probs[3]:.3f}") and "expected: " in report["tip"]
    assert "<img" not in dom  # the corpus's tag stayed text
    shown = re.sub(r"</?span[^>]*>", "", dom)  # one span per character
    assert "&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in shown
    shot = tmp_path / "page.png"
    chromium(f"--user-data-dir={tmp_path / 'profile2'}", "--window-size=1000,800", f"--screenshot={shot}", page.as_uri())
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 5000
