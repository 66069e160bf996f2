"""Features that know their language (charrnn/inspection/languages.py)."""

from __future__ import annotations

import pytest

from charrnn.errors import CharRNNError
from charrnn.inspection.features import BUILTIN_FEATURES
from charrnn.inspection.languages import FEATURE_SETS, c_lexical, detect, feature_set, python_lexical

C = """int f(char c) { /* a "quote" here */
  if (c == '"' && s[i] == "a\\"b(") // x ( y
    return g(1, (2));
  char *s = "it's";
}
"""


def marked(text: str, values) -> str:
    """The characters where a feature is 1."""
    return "".join(ch for ch, v in zip(text, values) if v)


def test_c_strings_skip_escapes_char_literals_and_comments():
    lex = c_lexical(C)
    assert marked(C, lex["string"]) == 'a\\"b(' + "it's"  # the escaped quote and the bracket are inside
    assert marked(C, lex["char"]) == '"'  # the char literal '"' is not a string's start
    assert marked(C, lex["comment"]) == '/* a "quote" here */// x ( y'
    assert marked(C, lex["if"]) == "c == '\"' && s[i] == \"a\\\"b(\""
    # brackets in strings and comments do not count
    depth = dict(zip(range(len(C)), lex["depth"]))
    assert depth[C.index("return")] == 1 and depth[C.index("2")] == 3 and depth[len(C) - 1] == 0
    # the generic feature, toggling at every ", is inside out after the char literal
    generic = BUILTIN_FEATURES["inside double quotes"](C)
    assert generic[C.index("&&")] == 1 and lex["string"][C.index("&&")] == 0


def test_an_if_condition_nests_and_other_words_are_not_if():
    text = "if (a(b) && (c)) x; elif (d) y; if(e) z; else if (f) w;"
    assert marked(text, c_lexical(text)["if"]) == "a(b) && (c)" + "e" + "f"


def test_python_strings_comments_and_brackets():
    text = "x = 'a\\'b' # c (\ny = \"\"\"d\ne\"\"\" + f(g[1])\n"
    lex = python_lexical(text)
    assert marked(text, lex["string"]) == "a\\'b" + "d\ne"
    assert marked(text, lex["comment"]) == "# c ("
    assert lex["depth"][text.index("1")] == 2 and lex["depth"][-1] == 0


def test_each_set_is_chosen_by_the_text_or_by_name():
    assert detect(C * 5) == "c"
    assert detect("def f(x):\n    return x\n\nclass A:\n    pass\n" * 5) == "python"
    assert detect("To be, or not to be: that is the question.\n" * 20) == "generic"
    assert feature_set("auto", C * 5)[0] == "c" and feature_set("prose", C)[0] == "prose"
    with pytest.raises(CharRNNError, match="--features"):
        feature_set("cobol", C)
    for name, features in FEATURE_SETS.items():
        for fname, f in features.items():
            assert len(f(C)) == len(C), (name, fname)


def test_prose_quotes_are_straight_or_curly():
    text = "He said \u201chello there\u201d and \"bye\"."
    assert marked(text, FEATURE_SETS["prose"]["inside double quotes"](text)) == "hello therebye"


def test_inspect_picks_the_feature_set_by_the_text_and_records_fp16_for_analysis(tmp_path):
    import json

    import numpy as np
    import torch

    from charrnn import checkpoint as ckpt
    from charrnn.corpus import Vocab
    from charrnn.model import CharRNN, ModelConfig

    from conftest import run_cli

    text = C * 40
    vocab = Vocab.from_chars(text)
    torch.manual_seed(0)
    path = tmp_path / "m.safetensors"
    ckpt.save_checkpoint(path, CharRNN(ModelConfig("gru", vocab.size, embedding=4, hidden=8, layers=1)), vocab)
    (tmp_path / "t.c").write_text(text, encoding="utf-8")
    report, npz = tmp_path / "r.json", tmp_path / "r.npz"
    assert run_cli("inspect", path, "--file", tmp_path / "t.c", "--report", report).exit_code == 0
    result = json.loads(report.read_text(encoding="utf-8"))
    assert result["feature_set"] == "c" and "inside an if condition" in result["features"]
    assert run_cli("inspect", path, "--file", tmp_path / "t.c", "--out", npz, "--features", "python").exit_code == 0
    assert np.load(npz)["l0.h"].dtype == np.float32  # what is written keeps full precision unless told
    assert run_cli("inspect", path, "--file", tmp_path / "t.c", "--out", npz, "--dtype", "fp16", "--force").exit_code == 0
    assert np.load(npz)["l0.h"].dtype == np.float16
