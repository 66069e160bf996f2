"""Shared fixtures: tiny synthetic corpora and tiny trained runs."""

from __future__ import annotations

import os
import random
from collections import Counter
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from charrnn.cli.entry import app

WORDS = "the quick brown fox jumps over a lazy dog and then sat on warm mats".split()


def make_text(n_lines: int = 400, seed: int = 0, extra: str = "") -> str:
    """A small play-like text: speaker names, words, punctuation, newlines."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n_lines):
        speaker = rng.choice(["ALICE:", "BOB:", "CAROL:"])
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8)))
        lines.append(f"{speaker} {words}.{extra}")
    return "\n".join(lines) + "\n"


@pytest.fixture(autouse=True)
def _cpu_unless_marked(request, monkeypatch):
    """Bit-exactness (resume, straight vs chunked) holds on the CPU: on a
    machine with a GPU, every test not marked cuda or mps still runs there,
    as `--device auto` would not. The marked tests check the GPU paths."""
    if request.node.get_closest_marker("cuda") or request.node.get_closest_marker("mps"):
        return
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.fixture
def corpus_file(tmp_path: Path) -> Path:
    p = tmp_path / "play.txt"
    p.write_text(make_text(), encoding="utf-8")
    return p


def run_cli(*args: str):
    """Invoke the CLI in-process; returns the click Result."""
    return CliRunner().invoke(app, [str(a) for a in args])


def assert_one_line_error(result, *fragments):
    assert result.exit_code == 1, result.output
    # Progress lines may come first (e.g. a run that diverges); the error is
    # the one line that ends the output.
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error: "), result.stderr
    assert sum(line.startswith("error: ") for line in lines) == 1
    assert "Traceback" not in result.output
    for f in fragments:
        assert f in lines[-1], lines[-1]


# Fuzzing (test_fuzz*.py): CHARRNN_FUZZ_SCALE=20 runs 20 times the cases (a
# soak); CHARRNN_FUZZ_REPORT=1 with pytest -s prints how they ended.
FUZZ_SCALE = int(os.environ.get("CHARRNN_FUZZ_SCALE", "1"))
FUZZ_OUTCOMES: Counter = Counter()  # (test, outcome) -> cases


@pytest.fixture(scope="session", autouse=True)
def _fuzz_report():
    yield
    if os.environ.get("CHARRNN_FUZZ_REPORT"):
        print("\n" + "\n".join(f"{test}: {outcome}: {n}" for (test, outcome), n in sorted(FUZZ_OUTCOMES.items())))


TINY = ["--hidden", "8", "--embedding", "4", "--layers", "1", "--seq-len", "16", "--batch-size", "4"]


@pytest.fixture
def trained_run(tmp_path: Path, corpus_file: Path) -> Path:
    out = tmp_path / "run"
    result = run_cli("train", corpus_file, "--out", out, *TINY, "--max-steps", "20", "--eval-every", "10")
    assert result.exit_code == 0, result.output
    return out


MODULE_KINDS = ["rnn", "gru", "lstm"]  # trained by their Cell.sequence_module (nn.RNN, FastGRU, nn.LSTM)
SCAN_KINDS = ["mingru", "minlstm"]  # trained by a scan over each window (charrnn/cells/scan.py)
BUILTIN_KINDS = MODULE_KINDS + SCAN_KINDS
