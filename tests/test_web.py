"""`charrnn export --web` and `--module`: the generator page and the ES
module, run in headless chromium, against the same weights in Python."""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import re
import threading
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
import torch

import charrnn

from charrnn import checkpoint as ckpt
from charrnn.corpus import Vocab
from charrnn.model import CharRNN, ModelConfig
from charrnn.sample import filter_logits
from charrnn.web import as_page_sees
from charrnn.web.weights import int8_rows

from conftest import BUILTIN_KINDS, SCAN_KINDS, TINY, assert_one_line_error, make_text, run_cli
from test_page import EVIL, chromium, needs_browser

VOCAB = Vocab.from_chars(make_text(30) + EVIL)


def model_file(tmp_path, kind: str, vocab: Vocab = VOCAB):
    torch.manual_seed(2)
    model = CharRNN(ModelConfig(kind, vocab.size, embedding=5, hidden=12, layers=2)).eval()
    with torch.no_grad():  # larger weights, so that argmax text varies instead of settling into a short cycle
        model.head.weight.mul_(6)
        for name, p in model.rnn.named_parameters():
            p.mul_(4 if "weight" in name else 1)
    path = tmp_path / f"{kind}.safetensors"
    ckpt.save_checkpoint(path, model, vocab)
    return path


def as_page_runs(source: Path, dtype: str, tmp_path: Path) -> tuple[CharRNN, Path]:
    """The model with the weights exactly as the page decodes them, in memory
    and saved as a checkpoint (for `charrnn sample`)."""
    checkpoint = ckpt.load_checkpoint(source)
    model = checkpoint.model.float()
    model.load_state_dict(as_page_sees(model.state_dict(), dtype))
    path = tmp_path / f"as-page-{dtype}.safetensors"
    ckpt.save_checkpoint(path, model, VOCAB)
    return model.eval(), path


def line_logits(model: CharRNN, text: str) -> np.ndarray:
    """Each position's logits with `text` read from the start of a line (Model.feed's reading)."""
    with torch.no_grad():
        logits, _ = model(torch.as_tensor(VOCAB.encode("\n" + text).astype("int64"))[None])
    return logits[0, 1:].numpy()


def argmax_text(reference: Path, prime: str, length: int) -> str:
    done = run_cli("sample", reference, "--temperature", "0", "--prime", prime, "--length", length, "--no-echo")
    assert done.exit_code == 0, done.output
    return done.stdout[:-1]


def selftest(page, tmp_path, prime: str, length: int = 300) -> tuple[dict, str]:
    url = page.as_uri() + "#selftest&" + urllib.parse.urlencode({"prime": prime, "length": length})
    dom = chromium(f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000", "--dump-dom", url)
    match = re.search(r'<pre id="selftest">(.*?)</pre>', dom, re.S)
    assert match, dom[-2000:]
    raw = match.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return json.loads(raw), dom


# every kind and every dtype, fp16's narrow range among them for the scanning kinds
PAGE_CASES = [("rnn", "bf16"), ("gru", "int8"), ("lstm", "fp16"), ("mingru", "fp16"), ("minlstm", "bf16")]
MODULE_CASES = [("rnn", "fp32"), ("gru", "fp16"), ("lstm", "int8"), ("mingru", "int8"), ("minlstm", "fp32")]


def test_every_kind_has_a_page_case_and_a_module_case():
    assert sorted(kind for kind, _ in PAGE_CASES) == sorted(BUILTIN_KINDS)
    assert sorted(kind for kind, _ in MODULE_CASES) == sorted(BUILTIN_KINDS)


@needs_browser
@pytest.mark.parametrize("kind, dtype", PAGE_CASES)
def test_the_page_generates_what_charrnn_sample_does(kind, dtype, tmp_path):
    source, page = model_file(tmp_path, kind), tmp_path / "page.html"
    assert run_cli("export", source, "--web", page, "--dtype", dtype).exit_code == 0
    prime = EVIL if kind == "lstm" else make_text(2, seed=5)
    report, dom = selftest(page, tmp_path, prime)
    model, reference = as_page_runs(source, dtype, tmp_path)  # the same weights the page holds
    np.testing.assert_allclose(np.array(report["logits"]), line_logits(model, prime), atol=1e-3, rtol=0)  # float64 against 32
    assert report["errors"] == []
    assert report["text"] == argmax_text(reference, prime, 300)
    # A random model's argmax text may settle into a short cycle: a scanning
    # kind's h, an average of its inputs, always did. The logits above cover it.
    assert len(set(report["text"])) > 10 or kind in SCAN_KINDS
    streamed = report["streamed"]  # the form's run: sampled at 0.9, top-k 5, 80 characters after the prime
    assert streamed.startswith(prime) and len(streamed) == len(prime) + 80 and set(streamed) <= set(VOCAB.chars)
    if prime == EVIL:  # a hostile prime stays text: no element made of it
        assert "<img" not in dom and "&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in dom


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def serving(directory: Path):
    """A local HTTP server for `directory`: browsers load ES modules over HTTP, not from file://."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(directory)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()


# A page that drives the module through every call, and reports what it got.
HARNESS = """<!doctype html><meta charset="utf-8"><body><pre id="report"></pre>
<script type="module">
import {load} from "./model.js";
const q = new URLSearchParams(location.search), prime = q.get("prime"), length = Number(q.get("length"));
const out = {}, DRAWS = __DRAWS__;
try {
  const m = await load();
  out.same = (await load()) === m;
  out.config = m.config; out.chars = m.chars;
  let s = m.start();
  out.logits = [];
  for (const c of prime) { s = m.feed(c, s); out.logits.push(Array.from(s.logits)); }
  const whole = m.feed(prime);
  out.text = whole.text;
  out.feedAgrees = Array.from(whole.logits).every((v, i) => v === s.logits[i]);
  const again = m.feed("a", whole), other = m.feed("b", whole);  // one state continued two ways
  out.unchanged = Array.from(m.feed("a", whole).logits).every((v, i) => v === again.logits[i]) && other.text.endsWith("b");
  out.probs = Object.fromEntries(m.nextProbs(whole));
  out.argmax = m.sample({prime, temperature: 0, length});
  const opts = {prime, temperature: 0.9, topK: 5, topP: 0.9, seed: 3, length: 80};
  out.streamed = "";
  for await (const c of m.generate(opts)) out.streamed += c;
  out.sampled = m.sample(opts);
  out.drawn = Object.fromEntries(DRAWS.map(([name, o]) => {  // which characters each filter lets through
    const seen = new Set();
    for (let seed = 0; seed < 300; seed++) seen.add(m.sample({prime, length: 1, seed, ...o}));
    return [name, [...seen]];
  }));
  out.refused = [() => m.feed("\u0001"), () => m.sample({tempreature: 1}), () => m.sample({topP: 0}),
                 () => m.generate({prime: "\u0001"}), () => m.sample({length: 1.5}),
                 () => m.sample({temperature: 1e-310}), () => m.nextProbs(null, 0)].map(bad => {
    try { bad(); return null; } catch (e) { return e.message; }
  });
} catch (e) { out.crash = String(e && e.stack || e); }
document.getElementById("report").textContent = JSON.stringify(out);
</script>"""


DRAWS = {"k2": {"topK": 2}, "p05": {"topP": 0.5}, "k4p08": {"topK": 4, "topP": 0.8, "temperature": 0.7}}


def run_page(url: str, tmp_path: Path, element: str) -> str:
    dom = chromium(f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=20000", "--dump-dom", url)
    match = re.search(rf'<pre id="{element}">(.*?)</pre>', dom, re.S)
    assert match, dom[-2000:]
    return match.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


@needs_browser
@pytest.mark.parametrize("kind, dtype", MODULE_CASES)
def test_the_module_runs_the_model_as_python_does(kind, dtype, tmp_path):
    source = model_file(tmp_path, kind)
    site = tmp_path / "site"
    site.mkdir()
    assert run_cli("export", source, "--module", site / "model.js", "--dtype", dtype).exit_code == 0
    (site / "index.html").write_text(HARNESS.replace("__DRAWS__", json.dumps(list(DRAWS.items()))), encoding="utf-8")
    prime = make_text(2, seed=7)
    with serving(site) as root:
        raw = run_page(root + "index.html?" + urllib.parse.urlencode({"prime": prime, "length": 300}), tmp_path, "report")
    report = json.loads(raw)
    assert "crash" not in report, report.get("crash")
    model, reference = as_page_runs(source, dtype, tmp_path)
    logits = line_logits(model, prime)
    np.testing.assert_allclose(np.array(report["logits"]), logits, atol=1e-3, rtol=0)
    assert report["argmax"] == argmax_text(reference, prime, 300)
    assert report["same"] and report["feedAgrees"] and report["unchanged"] and report["text"] == prime
    assert report["config"] == {"kind": kind, "layers": 2, "hidden": 12, "embedding": 5, "dtype": dtype, "documents": ""}
    assert report["chars"] == "".join(VOCAB.chars)
    probs = np.array([report["probs"][c] for c in VOCAB.chars])
    np.testing.assert_allclose(probs, torch.softmax(torch.as_tensor(logits[-1], dtype=torch.float64), -1).numpy(), atol=1e-4)
    assert report["streamed"] == report["sampled"] and len(report["streamed"]) == 80  # seeded: streamed or whole, the same text
    assert set(report["streamed"]) <= set(VOCAB.chars)
    with torch.no_grad():  # sampling reads the prime from a zero state, as charrnn sample does
        last = model(torch.as_tensor(VOCAB.encode(prime).astype("int64"))[None])[0][0, -1].double()
    for name, o in DRAWS.items():
        kept = filter_logits(last / o.get("temperature", 1), o.get("topK"), o.get("topP"))
        allowed = {VOCAB.chars[i] for i in torch.nonzero(kept.isfinite())[:, 0].tolist()}
        likely = {VOCAB.chars[i] for i in torch.nonzero(kept.softmax(-1) > 0.05)[:, 0].tolist()}
        assert likely <= set(report["drawn"][name]) <= allowed, name  # 300 draws miss a 5% character with p < 1e-6
    never, control, top_p, prime_never, length, tiny, probs_at_zero = report["refused"]
    assert "never seen" in never and "unknown sampling control" in control and "topP" in top_p
    assert "never seen" in prime_never and "length" in length
    assert "argmax in all but name" in tiny and "temperature" in probs_at_zero


DOCUMENTS_HARNESS = """<!doctype html><meta charset="utf-8"><body><pre id="report"></pre>
<script type="module">
import {load} from "./model.js";
const out = {};
try {
  const m = await load();
  out.config = m.config;
  out.logits = Array.from(m.feed("ma").logits);
  out.argmax = ["", "ma", "jo"].map(prime => m.sample({prime, temperature: 0, length: 60}));
  out.drawn = Array.from({length: 30}, (_, seed) => m.sample({seed, length: 60}));
} catch (e) { out.crash = String(e && e.stack || e); }
document.getElementById("report").textContent = JSON.stringify(out);
</script>"""


@needs_browser
def test_the_module_of_a_model_of_documents_starts_and_ends_at_the_marker(tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("\n".join(f"{a}{b}" for a in ("ma", "jo", "el", "ka") for b in ("ria", "n", "na", "lie")) * 20,
                     encoding="utf-8")  # fmt: skip
    run = tmp_path / "run"
    assert run_cli("train", names, "--documents", "lines", "--out", run, *TINY, "--max-steps", "40",
                   "--lr", "0.03").exit_code == 0  # fmt: skip
    site = tmp_path / "site"
    site.mkdir()
    assert run_cli("export", run, "--module", site / "model.js", "--dtype", "fp32").exit_code == 0
    (site / "index.html").write_text(DOCUMENTS_HARNESS, encoding="utf-8")
    with serving(site) as root:
        report = json.loads(run_page(root + "index.html", tmp_path, "report"))
    assert "crash" not in report, report.get("crash")
    assert report["config"]["documents"] == "lines"
    m = charrnn.load(run)
    with torch.no_grad():  # a document is read from its start marker
        logits = m.net(torch.as_tensor(m.vocab.encode("\0ma").astype("int64"))[None])[0][0, -1]
    np.testing.assert_allclose(report["logits"], logits.numpy(), atol=1e-4)
    for prime, text in zip(["", "ma", "jo"], report["argmax"]):
        assert prime + text == m.documents(1, prime, 60, temperature=0).texts[0]
    assert all("\0" not in d and len(d) < 60 for d in report["drawn"])  # each ended at its marker


@needs_browser
def test_the_docs_page_that_only_imports_the_module_works(tmp_path):
    """The example in docs/export.md, as a user copies it beside their module."""
    docs = (Path(__file__).parents[1] / "docs" / "export.md").read_text(encoding="utf-8")
    example = re.search(r"```html\n(.*?)```", docs, re.S).group(1)
    prime = re.search(r'prime: "([^"]*)"', example).group(1)
    length = int(re.search(r"length: (\d+)", example).group(1))
    vocab = Vocab.from_chars(make_text(30) + prime)
    site = tmp_path / "site"
    site.mkdir()
    assert run_cli("export", model_file(tmp_path, "gru", vocab), "--module", site / "model.js").exit_code == 0
    (site / "index.html").write_text(example, encoding="utf-8")
    with serving(site) as root:
        text = run_page(root + "index.html", tmp_path, "out")
    assert text.startswith(prime) and len(text) == len(prime) + length and set(text) <= set(vocab.chars)


def test_int8_keeps_each_rows_largest_weight_and_half_a_step_elsewhere():
    torch.manual_seed(0)
    w = torch.randn(6, 10) * torch.tensor([0.01, 1, 3, 0, 1e-6, 100])[:, None]
    q, scale = int8_rows(w)
    assert q.dtype == torch.int8 and q.shape == w.shape and scale.shape == (6,)
    back = as_page_sees({"w": w}, "int8")["w"]
    assert torch.all((back - w).abs() <= scale[:, None] / 2 * (1 + 1e-6))
    rows = torch.arange(6)
    big = w.abs().argmax(1)
    assert torch.allclose(back[rows, big], w[rows, big], rtol=1e-6, atol=0)
    assert torch.all(back[3] == 0)  # an all-zero row stays zero
    bias = torch.randn(7)
    assert torch.equal(as_page_sees({"b": bias}, "int8")["b"], bias.half().float())  # vectors stay fp16


def test_an_int8_page_is_about_half_an_fp16_page(tmp_path):
    vocab = Vocab.from_chars(make_text(30))
    model = CharRNN(ModelConfig("gru", vocab.size, embedding=16, hidden=96, layers=2))
    source = tmp_path / "m.safetensors"
    ckpt.save_checkpoint(source, model, vocab)
    sizes = {}
    for dtype in ("fp16", "int8"):
        for flag, name in (("--web", "page.html"), ("--module", "model.js")):
            out = tmp_path / f"{dtype}-{name}"
            assert run_cli("export", source, flag, out, "--dtype", dtype).exit_code == 0
            sizes[dtype, flag] = out.stat().st_size
    for flag in ("--web", "--module"):
        assert 0.45 < sizes["int8", flag] / sizes["fp16", flag] < 0.6
    module = (tmp_path / "int8-model.js").read_text(encoding="utf-8")
    assert module.isascii() and "export async function load()" in module


def test_export_refusals_write_nothing(tmp_path):
    source = model_file(tmp_path, "gru")
    out, page, module = tmp_path / "m.safetensors", tmp_path / "p.html", tmp_path / "m.js"
    assert_one_line_error(run_cli("export", source, out, "--module", module, "--dtype", "int8"), "int8 is for --web and --module")
    assert not out.exists() and not module.exists()
    module.write_text("mine", encoding="utf-8")
    assert_one_line_error(run_cli("export", source, "--web", page, "--module", module), "--module", "exists", "--force")
    assert not page.exists() and module.read_text(encoding="utf-8") == "mine"  # nothing written, nothing replaced
    assert_one_line_error(run_cli("export", source, "--web", page, "--module", page), "different files")
    assert run_cli("export", source, "--module", module, "--force").exit_code == 0
    assert "charrnnModel" in module.read_text(encoding="utf-8")


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
