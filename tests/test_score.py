"""`charrnn score` and Model.score_lines: every line scored with its end,
many at once, each exactly as if it were scored alone."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
import torch

import charrnn
from charrnn import evaluate
from charrnn.model import CharRNN, ModelConfig

from conftest import BUILTIN_KINDS, assert_one_line_error, run_cli

LINES = ["ALICE: the dog.", "", "BOB: a lazy fox sat on warm mats and then the quick brown dog", "CAROL:", "a"]


@pytest.mark.parametrize("kind", BUILTIN_KINDS)
def test_batched_lines_score_as_each_alone(kind, monkeypatch):
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(kind, 7, embedding=4, hidden=6, layers=2)).eval()
    rng = np.random.default_rng(0)
    texts = [rng.integers(0, 7, n) for n in (0, 1, 5, 17, 3, 40, 9)]
    monkeypatch.setattr(evaluate, "LINE_BATCH_CHARS", 50)  # several batches of different widths
    batched = evaluate.batched_log_probs(model, texts, start=6, chunk=4)  # windows carried across chunks
    for ids, got in zip(texts, batched):
        alone = evaluate.next_char_log_probs(model, torch.as_tensor(np.concatenate([[6], ids]).astype(np.int64)))
        assert got.shape == (len(ids),)
        np.testing.assert_allclose(got, alone, atol=1e-5)


def test_a_batch_stays_within_its_budget_of_padded_characters(monkeypatch):
    model = CharRNN(ModelConfig("gru", 5, embedding=4, hidden=6)).eval()
    texts = [np.zeros(n, dtype=np.int64) for n in [0, 1, 1, 2, 3] * 20 + [30, 31, 200]]
    seen, batch = [], evaluate._batch_log_probs

    def counted(model, rows, start, width, chunk):
        seen.append((len(rows), width))
        return batch(model, rows, start, width, chunk)

    monkeypatch.setattr(evaluate, "_batch_log_probs", counted)
    monkeypatch.setattr(evaluate, "LINE_BATCH_CHARS", 64)
    monkeypatch.setattr(evaluate, "LINE_BATCH_ROWS", 16)
    evaluate.batched_log_probs(model, texts, start=4)
    assert sum(rows for rows, _ in seen) == len(texts)
    assert all(rows <= 16 and (rows * width <= 64 or rows == 1) for rows, width in seen), seen


def test_score_lines_is_score_with_the_line_end(trained_run):
    m = charrnn.load(trained_run)
    scores = m.score_lines(LINES)
    for line, s in zip(LINES, scores):
        alone = m.score(line + "\n")
        assert s.chars == len(line) + 1 and s.text == line + "\n"
        np.testing.assert_allclose(s.log_probs, alone.log_probs, atol=1e-5)


@pytest.fixture
def lines_file(tmp_path):
    path = tmp_path / "lines.txt"
    path.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    return path


def test_json_gives_every_line_in_file_order(trained_run, lines_file):
    done = run_cli("score", trained_run, lines_file, "--json")
    assert done.exit_code == 0
    rows = json.loads(done.stdout)
    assert [r["line"] for r in rows] == [1, 2, 3, 4, 5] and [r["text"] for r in rows] == LINES
    expected = charrnn.load(trained_run).score_lines(LINES)
    for r, s in zip(rows, expected):
        assert r["chars"] == s.chars and r["total_nats"] == pytest.approx(s.total_nats, rel=1e-6)
        assert r["mean_nats"] == pytest.approx(r["total_nats"] / r["chars"])
        assert r["bits_per_char"] == pytest.approx(r["mean_nats"] / np.log(2))


def test_sort_top_and_csv(trained_run, lines_file):
    rows = json.loads(run_cli("score", trained_run, lines_file, "--json", "--sort", "likely").stdout)
    assert [r["mean_nats"] for r in rows] == sorted(r["mean_nats"] for r in rows)
    worst = json.loads(run_cli("score", trained_run, lines_file, "--json", "--sort", "surprising", "--top", "2").stdout)
    assert len(worst) == 2 and worst[0]["mean_nats"] == rows[-1]["mean_nats"]
    table = list(csv.DictReader(io.StringIO(run_cli("score", trained_run, lines_file, "--csv").stdout)))
    assert [row["text"] for row in table] == LINES and float(table[0]["total_nats"]) == pytest.approx(rows_by(rows)[1])
    shown = run_cli("score", trained_run, lines_file)
    assert shown.exit_code == 0 and "bits/char" in shown.stdout and "CAROL:" in shown.stdout


def rows_by(rows):
    return {r["line"]: r["total_nats"] for r in rows}


def test_unknown_characters_and_bad_files(trained_run, lines_file, tmp_path):
    odd = tmp_path / "odd.txt"
    odd.write_text("ALICE: the €\nBOB: £ €\n", encoding="utf-8")
    assert_one_line_error(run_cli("score", trained_run, odd), "never seen", "€")
    skipped = json.loads(run_cli("score", trained_run, odd, "--json", "--unknown", "skip").stdout)
    assert [r["skipped"] for r in skipped] == [1, 2] and skipped[1]["chars"] == len("BOB:  \n")
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    assert_one_line_error(run_cli("score", trained_run, empty))
    binary = tmp_path / "blob.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    assert_one_line_error(run_cli("score", trained_run, binary))
    assert_one_line_error(run_cli("score", trained_run, tmp_path / "missing.txt"))
    assert_one_line_error(run_cli("score", trained_run, lines_file, "--json", "--csv"), "--json or --csv")
