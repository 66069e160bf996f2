"""Fuzzing what users type and feed, bounded to stay fast: corpora of
hostile bytes (random bytes, BOMs mid-file, NULs, CRLF, mixed encodings, a
100 MB single line), lone surrogates in --prime and --text, and every
numeric option of sample, eval and inspect at its edges. Each case works
or refuses in one line, never a traceback.

CHARRNN_FUZZ_SCALE=20 pytest tests/test_fuzz_inputs.py runs 20 times the
cases (a soak; the suite's default is 1)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charrnn.data import load_corpus
from charrnn.errors import CharRNNError
from charrnn.model import ModelConfig
from charrnn.training.config import TrainConfig
from charrnn.training.loop import train

from conftest import FUZZ_OUTCOMES as OUTCOMES
from conftest import FUZZ_SCALE as SCALE
from conftest import TINY, assert_one_line_error, make_text, run_cli


def fuzz(n: int):
    return settings(max_examples=n * SCALE, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


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


def trains_or_refuses(path: Path, encoding: str, tmp: Path, val_frac: float = 0.05) -> str:
    try:
        corpus = load_corpus(path, encoding)
        config = TrainConfig(seq_len=4, batch_size=2, max_steps=1, eval_every=1, encoding=encoding, device="cpu",
                             val_frac=val_frac, test_frac=0.0)  # fmt: skip
        train(corpus, config, tmp, ModelConfig("gru", corpus.vocab.size, embedding=2, hidden=3, layers=1))
    except CharRNNError as e:
        assert "\n" not in str(e)
        return "refused"
    return "trained"


@fuzz(150)
@given(case=corpus_bytes())
def test_hostile_corpora_train_or_refuse_in_one_line(tmp_path, case):
    data, encoding = case
    path = tmp_path / "corpus.txt"
    path.write_bytes(data)
    out = tmp_path / "run"
    OUTCOMES["hostile corpora", trains_or_refuses(path, encoding, out)] += 1
    for f in out.glob("*") if out.exists() else ():
        f.unlink()


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


EDGES = {
    "sample": {
        "--length": ["0", "1", "-1"],
        "--temperature": ["0", "1e-9", "1e9", "-1", "nan", "inf"],
        "--top-k": ["0", "1", "-1", "1000000000"],
        "--top-p": ["0", "1e-9", "1", "1.5", "-0.1", "nan"],
        "--seed": ["0", "-1", str(2**63), str(2**64)],
        "--num-samples": ["0", "1", "-3", "10000000"],
    },
    "inspect": {
        "--generate": ["0", "1", "-1"],
        "--max-chars": ["0", "1", "-5"],
        "--top": ["0", "1", "1000000"],
        "--html-chars": ["0", "1", "-1"],
        "--temperature": ["0", "1e-9", "1e9", "nan"],
        "--top-k": ["0", "-1", "1000000000"],
        "--top-p": ["0", "1.5"],
        "--units": ["0", "-1", "99999", "3-1", "a"],
        "--layers": ["0", "5", "-1", ""],
    },
}
CASES = [(cmd, opt, v) for cmd, opts in EDGES.items() for opt, vs in opts.items() for v in vs]


@pytest.mark.parametrize(("command", "option", "value"), CASES, ids=[" ".join(c) for c in CASES])
def test_numeric_options_at_their_edges_work_or_refuse_in_one_line(run, tmp_path, command, option, value):
    extra = {"sample": ["--length", "5"] if option != "--length" else [],
             "inspect": ["--text", "ab the fox\n" * 3, "--out", tmp_path / "a.npz"]}[command]  # fmt: skip
    if command == "sample" and option == "--num-samples" and value == "10000000":
        extra += ["--length", "1"]
    result = run_cli(command, run, option, value, *extra)
    if result.exit_code != 0:
        assert_one_line_error(result)


@pytest.mark.parametrize("args", [["--encoding", "nope"], ["--encoding", "utf-16"], ["--encoding", "latin-1"]])
def test_eval_edges_refuse_in_one_line(run, args):
    result = run_cli("eval", run, run.parent / "play.txt", *args)
    if result.exit_code != 0:
        assert_one_line_error(result)
