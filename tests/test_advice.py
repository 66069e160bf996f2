"""The note a run prints when its val loss keeps rising."""

from __future__ import annotations

import json
import random

import pytest

from charrnn.training.advice import RISING_EVALS, rising_val_advice

from conftest import run_cli


def records(vals: list[float], trains: list[float] | None = None) -> list[dict]:
    trains = trains or [3.0 - 0.1 * i for i in range(len(vals))]  # falling
    return [{"step": 100 * (i + 1), "val_loss": v, "train_loss": t} for i, (v, t) in enumerate(zip(vals, trains))]


def notes(vals: list[float], trains: list[float] | None = None) -> list[str | None]:
    """The note after each evaluation, as the training loop asks for it."""
    rs = records(vals, trains)
    return [rising_val_advice(rs[: i + 1]) for i in range(len(rs))]


def test_falling_or_flat_val_loss_gets_no_note():
    assert notes([2.0, 1.9, 1.8, 1.7, 1.6, 1.5]) == [None] * 6
    assert notes([1.5, 1.5, 1.5, 1.5, 1.5]) == [None] * 5


def test_the_note_comes_once_when_the_streak_reaches_its_length():
    got = notes([2.0, 1.8, 1.7, 1.75, 1.8, 1.85, 1.9, 1.95])
    assert RISING_EVALS == 3
    assert [i for i, n in enumerate(got) if n] == [5]  # three rises: 1.75, 1.8, 1.85
    assert "overfitting" in got[5] and "best 1.7000 at step 300, now 1.8500" in got[5]
    assert "--dropout" in got[5]


def test_a_new_streak_after_a_dip_gets_a_new_note():
    got = notes([2.0, 2.1, 2.2, 2.3, 1.9, 2.0, 2.1, 2.2])
    assert [i for i, n in enumerate(got) if n] == [3, 7]


def test_tiny_rises_are_a_plateau_not_a_streak():
    assert notes([1.5, 1.5001, 1.5002, 1.5003, 1.5004]) == [None] * 5


def test_the_overfitting_note_asks_for_more_dropout_than_the_run_has():
    rs = records([2.0, 1.7, 1.8, 1.9, 2.0])
    assert "--dropout 0.2-0.4" in rising_val_advice(rs)
    assert "more --dropout than 0.3" in rising_val_advice(rs, dropout=0.3)


def test_both_losses_rising_is_called_instability():
    vals = [2.0, 1.8, 1.9, 2.0, 2.1]
    trains = [2.1, 1.9, 2.0, 2.2, 2.4]
    note = notes(vals, trains)[-1]
    assert note is not None and "unstable" in note and "--lr" in note and "overfitting" not in note


@pytest.mark.parametrize("n", [0, 1, RISING_EVALS])
def test_too_short_a_history_gets_no_note(n):
    assert rising_val_advice(records([1.0 + i for i in range(n)])) is None


def test_an_overfitting_run_prints_the_note_and_logs_it(tmp_path):
    # The training part alternates two letters; the val part (the last 10%)
    # is random letters. The better the model learns the alternation, the
    # worse it scores on val: train loss falls while val loss rises.
    rng = random.Random(0)
    train_text = "ab" * 1800
    val_text = "".join(rng.choice("ab") for _ in range(400))
    corpus = tmp_path / "c.txt"
    corpus.write_text(train_text + val_text)
    out = tmp_path / "run"
    r = run_cli(
        "train", corpus, "--out", out, "--hidden", "16", "--embedding", "4", "--layers", "1", "--seq-len", "16",
        "--batch-size", "4", "--max-steps", "60", "--eval-every", "5", "--lr", "0.01", "--warmup-steps", "0",
        "--val-frac", "0.1", "--test-frac", "0", "--device", "cpu", "--precision", "fp32",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    noted = [m for m in metrics if "advice" in m]
    assert noted, [round(m["val_loss"], 3) for m in metrics]
    assert "overfitting" in noted[0]["advice"]
    assert f"note: {noted[0]['advice']}" in r.output
