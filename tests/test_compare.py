"""`charrnn compare` (charrnn/compare.py): the model beside n-gram models
of its training text, the breakdown of its errors, long-range closers."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from charrnn.compare import CATEGORIES, breakdown, closers, long_range

from conftest import assert_one_line_error, run_cli
from test_page import chromium, needs_browser


def test_compare_json_sets_the_model_beside_every_order(trained_run):
    done = run_cli("compare", trained_run, "--json", "--max-n", "8")
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout)
    assert [row["n"] for row in result["ngram"]] == list(range(1, 9))
    assert result["best_n"] == 1 + int(np.argmin([row["loss"] for row in result["ngram"]]))
    exact = json.loads(run_cli("eval", trained_run, "--json", "--streams", "1").stdout)
    assert result["rnn"] == pytest.approx(exact["loss"], abs=1e-4)  # the same text, scored the same way
    assert set(result["breakdown"]) == set(CATEGORIES) and sum(result["breakdown"].values()) == pytest.approx(1)
    detail = result["breakdown_detail"]
    assert sum(c["errors"] for c in detail.values()) == result["errors"] > 0
    assert all(set(row) == {"closes", "from", "to", "count", "rnn", "ngram"} for row in result["long_range"])


def test_compare_tables_plot_and_a_file(trained_run, tmp_path):
    text = tmp_path / "other.txt"
    text.write_text("ALICE: the dog ran to the tree and back.\n" * 20, encoding="utf-8")
    plot = tmp_path / "cmp.png"
    done = run_cli("compare", trained_run, text, "--max-n", "5", "--plot", plot)
    assert done.exit_code == 0, done.output
    assert "n-gram models" in done.stdout and "peeled in this order" in done.stdout and str(text) in done.stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert_one_line_error(run_cli("compare", trained_run, text, "--plot", plot), "--plot", "exists")


def test_compare_refusals(trained_run, tmp_path):
    odd = tmp_path / "odd.txt"
    odd.write_text("\u2603\u2603 snow", encoding="utf-8")
    assert_one_line_error(run_cli("compare", trained_run, odd), "never seen")
    (trained_run.parent / "corpus_moved").mkdir()
    corpus = next(trained_run.parent.glob("*.txt"))
    corpus.rename(trained_run.parent / "corpus_moved" / corpus.name)
    assert_one_line_error(run_cli("compare", trained_run), "compare needs the run's corpus")


def test_each_error_goes_to_the_first_category_it_fits():
    text = " foo bar foo zap, qux\nbar"
    n = len(text) - 1
    logp = np.zeros(n)  # p = 1 everywhere: no error ...
    top = np.zeros(n, dtype=bool)
    oracle = np.zeros(n)
    errors = {  # ... but at these positions (predicting text[p]), each built to fit one category
        1: ("n-gram oracle", 0.9),  # f: an n-gram model got it
        10: ("dynamic long-term memory", 0.0),  # o of the second foo: foo occurred just before
        14: ("rare words", 0.0),  # a of zap: never in training
        5: ("word starts", 0.0),  # b of bar, bar common in training
        16: ("new lines and punctuation", 0.0),  # ,
        20: ("boost", 0.0),  # x of qux, common: the model's top guess all the same
        19: ("other", 0.0),  # u of qux
    }
    for p, (_, oracle_p) in errors.items():
        logp[p - 1] = np.log(0.1)
        oracle[p - 1] = oracle_p
    top[20 - 1] = True
    got = breakdown(text, logp, top, oracle, {"bar": 50, "qux": 50, "foo": 50})
    assert {name: c.errors for name, c in got.items()} == dict.fromkeys(CATEGORIES, 1)
    assert sum(c.share for c in got.values()) == pytest.approx(1)
    assert sum(c.loss_share for c in got.values()) == pytest.approx(1)  # all the loss is in the errors here


def test_closers_pair_brackets_and_quotes_with_their_distance():
    text = 'f(a[1], "x)y") }'
    found = closers(text)
    assert ("bracket", text.index("]"), 2) in found
    assert ("quote", text.rindex('"'), 4) in found  # the ) inside the quote closes nothing
    assert ("bracket", text.rindex(")"), text.rindex(")") - 1) in found
    assert len(found) == 3  # the stray } has no opener
    bins = long_range(text, np.full(len(text) - 1, -0.5), np.full(len(text) - 1, -2.0))
    assert sum(b.count for b in bins) == 3 and all(b.ngram - b.rnn == pytest.approx(1.5) for b in bins)


@needs_browser
def test_the_page_colours_where_the_model_beats_the_ngram(trained_run, tmp_path):
    page, report = tmp_path / "cmp.html", tmp_path / "cmp.json"
    assert run_cli("compare", trained_run, "--max-n", "4", "--html", page, "--html-chars", "400").exit_code == 0
    result = json.loads(run_cli("compare", trained_run, "--max-n", "4", "--json").stdout)
    report.write_text(json.dumps(result))
    dom = chromium(f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", "--dump-dom",
                   page.as_uri() + "#selftest")  # fmt: skip
    got = json.loads(re.search(r'<pre id="selftest">(.*?)</pre>', dom, re.S).group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert got["errors"] == [] and got["spans"] == 400
    data = json.loads(page.read_text(encoding="utf-8").split('id="data">', 1)[1].split("</script>", 1)[0])
    view = data["analysis"]["compare"]
    assert view["n"] == result["best_n"] and len(view["model"]) == 399
    assert got["versus"][0] is None and got["versus"][5] == pytest.approx(view["model"][4] - view["ngram"][4])
    assert "gram p =" in got["versusTip"] and len(set(got["versusColours"])) > 5


def test_in_code_strings_and_brackets_pair_by_the_language():
    text = 'static int f(char c) {\n  if (c == \'"\') /* ( */\n    return g("a)b");\n  return 0;\n}\n' * 3
    found = [c for c in closers(text) if c[1] < len(text) // 3]
    quotes = [c for c in found if c[0] == "quote"]
    assert [text[p] for _, p, _ in quotes] == ['"'] and quotes[0][2] == len('"a)b"') - 1  # the char literal is no quote
    brackets = {(text[p], d) for k, p, d in found if k == "bracket"}
    assert (")", len("(char c)") - 1) in brackets and ("}", text.index("}") - text.index("{")) in brackets
    assert sum(text[p] == ")" for k, p, _ in found if k == "bracket") == 3  # f(...), if (...), g(...): not the ) in "a)b"


def test_a_figure_that_cannot_be_written_and_a_bad_length_are_refused_first(trained_run, tmp_path):
    import charrnn

    out = tmp_path / "figure.txt"
    assert_one_line_error(run_cli("compare", trained_run, "--plot", out), "--plot", ".png, .svg or .pdf")
    assert not out.exists()
    model = charrnn.load(trained_run)
    for bad in (-5, 0, 1):
        with pytest.raises(charrnn.CharRNNError, match="--max-chars must be at least 2"):
            model.compare(max_chars=bad)
    assert model.compare(max_chars=50, max_n=3).chars == 50
