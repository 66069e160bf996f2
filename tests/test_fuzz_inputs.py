"""Fuzzing what users type and feed, bounded to stay fast: corpora of
hostile bytes (random bytes, BOMs mid-file, NULs, CRLF, mixed encodings, a
100 MB single line), lone surrogates in --prime and --text, and every
numeric option of sample, eval and inspect at its edges. Each case has its
outcome stated, worked out from the case itself: it works, or it refuses in
one line with the message that names its fault, never a traceback.

CHARRNN_FUZZ_SCALE=20 pytest tests/test_fuzz_inputs.py runs 20 times the
cases (a soak; the suite's default is 1)."""

from __future__ import annotations

import codecs
import json
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from charrnn.corpus import load_corpus
from charrnn.errors import CharRNNError
from charrnn.model import ModelConfig
from charrnn.training.config import TrainConfig
from charrnn.training.launch import train_on

from conftest import FUZZ_OUTCOMES as OUTCOMES
from conftest import FUZZ_SCALE as SCALE
from conftest import TINY, assert_one_line_error, make_text, run_cli


def fuzz(n: int):
    return settings(max_examples=n * SCALE, deadline=None)


PIECES = st.sampled_from([
    "ALICE: the fox.\n", "line\r\n", "\ufeff", "\x00", "caf\u00e9 ", "\u7dad", "\U0001f600", "\t", "\r", " ",
])  # fmt: skip
RAW = st.sampled_from([b"\xff", b"\xfe\xff", b"\xed\xa0\x80", b"\xc3", b"\xe9", b"\x00\x00", b"\xef\xbb\xbf"])


@st.composite
def corpus_bytes(draw) -> tuple[bytes, str]:
    """Text pieces in one encoding with raw bytes of another spliced in, or
    random bytes outright."""
    encoding = draw(st.sampled_from(["utf-8", "utf-16", "latin-1", "cp1252"]))
    if draw(st.booleans()):
        return draw(st.binary(max_size=600)), encoding
    parts = draw(st.lists(st.one_of(PIECES.map(lambda p: ("text", p)), RAW.map(lambda r: ("raw", r))), max_size=40))
    data = b""
    for kind, part in parts * draw(st.integers(1, 6)):
        data += part if kind == "raw" else part.encode(encoding, errors="replace")
    return data, encoding


SEQ_LEN, BATCH, VAL_FRAC = 4, 2, 0.05  # what trains_or_refuses asks of a corpus


def trains_or_refuses(path: Path, encoding: str, tmp: Path, val_frac: float = VAL_FRAC) -> str:
    """'trained', or the one-line message it was refused with."""
    try:
        corpus = load_corpus(path, encoding)
        config = TrainConfig(seq_len=SEQ_LEN, batch_size=BATCH, max_steps=1, eval_every=1, encoding=encoding,
                             device="cpu", val_frac=val_frac, test_frac=0.0)  # fmt: skip
        train_on(corpus, config, tmp, ModelConfig("gru", corpus.vocab.size, embedding=2, hidden=3, layers=1))
    except CharRNNError as e:
        assert "\n" not in str(e)
        return str(e)
    return "trained"


def expected_outcome(data: bytes, encoding: str) -> str:
    """What a corpus of these bytes must do: 'trained', or a fragment of the
    refusal that names its first fault, in the order the reader meets them."""
    if encoding == "utf-8":
        data = data.removeprefix(codecs.BOM_UTF8)  # the reader drops a UTF-8 BOM
    if b"\0" in data and encoding != "utf-16":  # NUL bytes in an ASCII-compatible encoding: binary
        return "looks binary: NUL byte"
    decoder, text = codecs.getincrementaldecoder(encoding)("strict"), ""
    for part, final in ((data, False), (b"", True)):  # what it has read, then the file's end
        try:
            text += decoder.decode(part, final=final)
        except UnicodeError:
            return f"is not valid {encoding}"
        if "\0" in text:
            return "looks binary: it holds U+0000"
    if not text:
        return "is empty"
    n_val = int(len(text) * VAL_FRAC)
    if n_val < 2:
        return "the validation split has"
    # Two validation characters take a corpus of 40 or more, which leaves
    # the training split more than one batch (9): that refusal cannot come.
    return "trained"


def test_hostile_corpora_train_or_refuse_as_their_bytes_say():
    seen: Counter = Counter()

    @fuzz(150)
    @example(case=(b"ALICE: the fox.\n" * 4, "utf-8"))  # both outcomes, whatever hypothesis draws
    @example(case=(b"\xef\xbb\xbf", "utf-8"))
    @given(case=corpus_bytes())
    def check(case):
        data, encoding = case
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "corpus.txt"
            path.write_bytes(data)
            outcome, expected = trains_or_refuses(path, encoding, Path(d) / "run"), expected_outcome(data, encoding)
        if expected == "trained":
            assert outcome == "trained", (data, encoding, outcome)
        else:
            assert expected in outcome, (data, encoding, outcome)
        seen["trained" if outcome == "trained" else "refused"] += 1
        OUTCOMES["hostile corpora", "trained" if outcome == "trained" else expected] += 1

    check()
    assert seen["trained"] and seen["refused"], seen


def test_a_100_mb_single_line_trains(tmp_path):
    path = tmp_path / "one-line.txt"
    path.write_bytes(b"abcdefghij" * 10_000_000)  # 100 MB, no newline
    # A small val split: scoring 5 MB at batch 1 is eval's cost, not the reader's.
    assert trains_or_refuses(path, "utf-8", tmp_path / "run", val_frac=1e-4) == "trained"


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """One tiny trained run for every case here (the cases only read it)."""
    d = tmp_path_factory.mktemp("edges")
    (d / "play.txt").write_text(make_text(), encoding="utf-8")
    result = run_cli("train", d / "play.txt", "--out", d / "run", *TINY, "--max-steps", "10", "--eval-every", "10")
    assert result.exit_code == 0, result.output
    return d / "run"


@pytest.mark.parametrize("option", ["--prime", "--text"])
@pytest.mark.parametrize("lone", ["\ud800", "\udcff", "ab\udfffc"])
def test_lone_surrogates_in_typed_text_are_refused_in_one_line(run, option, lone):
    command = "sample" if option == "--prime" else "inspect"
    assert_one_line_error(run_cli(command, run, option, lone))


OK = None  # the command works
# Each option's edge values: OK, or a fragment of the one-line error it must give.
EDGES = {
    "sample": {
        "--length": {"0": OK, "1": OK, "-1": "--length must be >= 0"},
        "--temperature": {"0": OK, "1e-9": "--temperature below 0.0001 is argmax", "1e9": OK,
                          "-1": "--temperature must be a finite number >= 0", "nan": "--temperature must be a finite",
                          "inf": "--temperature must be a finite"},
        "--top-k": {"0": "--top-k must be at least 1", "1": OK, "-1": "--top-k must be at least 1", "1000000000": OK},
        "--top-p": {"0": "--top-p must be in (0, 1]", "1e-9": OK, "1": OK, "1.5": "--top-p must be in (0, 1]",
                    "-0.1": "--top-p must be in (0, 1]", "nan": "--top-p must be in (0, 1]"},
        "--seed": {"0": OK, "-1": OK, str(2**63): OK, str(2**64): OK},
        "--num-samples": {"0": "--num-samples must be in 1..100,000", "1": OK,
                          "-3": "--num-samples must be in 1..100,000", "10000000": "--num-samples must be in 1..100,000"},
    },
    "inspect": {
        "--generate": {"0": "Invalid value for '--generate'", "1": OK, "-1": "Invalid value for '--generate'"},
        "--max-chars": {"0": "Invalid value for '--max-chars'", "1": OK, "-5": "Invalid value for '--max-chars'"},
        "--top": {"0": "Invalid value for '--top'", "1": OK, "1000000": OK},
        "--html-chars": {"0": "Invalid value for '--html-chars'", "1": OK, "-1": "Invalid value for '--html-chars'"},
        "--temperature": {"0": OK, "1e-9": "--temperature below 0.0001 is argmax", "1e9": OK,
                          "nan": "--temperature must be a finite"},
        "--top-k": {"0": "--top-k must be at least 1", "-1": "--top-k must be at least 1", "1000000000": OK},
        "--top-p": {"0": "--top-p must be in (0, 1]", "1.5": "--top-p must be in (0, 1]"},
        "--units": {"0": OK, "-1": "--units must look like 0-9,42", "99999": "--units must be in 0..7",
                    "3-1": "--units must look like 0-9,42", "a": "--units must look like 0-9,42"},
        "--layers": {"0": OK, "5": "--layers [5]: the model has layers 0 to 0",
                     "-1": "--layers [-1]: the model has layers 0 to 0", "": "--layers must be layer numbers"},
    },
}  # fmt: skip
CASES = [(cmd, opt, v, want) for cmd, opts in EDGES.items() for opt, vs in opts.items() for v, want in vs.items()]


@pytest.mark.parametrize(("command", "option", "value", "expected"), CASES, ids=[" ".join(c[:3]) for c in CASES])
def test_numeric_options_at_their_edges_work_or_refuse_as_stated(run, tmp_path, command, option, value, expected):
    # inspect records --text, or with --generate what the model samples itself (never both)
    text = ["--text", "ab the fox\n" * 3] if option != "--generate" else []
    extra = {"sample": ["--length", "5"] if option != "--length" else [],
             "inspect": [*text, "--out", tmp_path / "a.npz"]}[command]  # fmt: skip
    if command == "sample" and option == "--num-samples" and value == "10000000":
        extra += ["--length", "1"]
    result = run_cli(command, run, option, value, *extra)
    if expected is OK:
        assert result.exit_code == 0 and "error" not in result.stderr, result.output
        assert command != "inspect" or (tmp_path / "a.npz").is_file()
    else:
        assert_one_line_error(result, expected)


@pytest.mark.parametrize(("encoding", "expected"), [
    ("nope", "unknown encoding: nope"),
    ("utf-16", "is not valid utf-16: UTF-16 stream does not start with BOM"),
    ("latin-1", OK),  # the corpus is ASCII, so also Latin-1: it is scored
], ids=["unknown", "utf-16", "latin-1"])  # fmt: skip
def test_eval_encodings_work_or_refuse_as_stated(run, encoding, expected):
    result = run_cli("eval", run, run.parent / "play.txt", "--encoding", encoding, "--json")
    if expected is OK:
        assert result.exit_code == 0 and json.loads(result.stdout)["chars"] > 0, result.output
    else:
        assert_one_line_error(result, expected)
