"""benchmarks/quality.py end to end on a tiny corpus: a timed run logs its
result, and --table renders logged results as the README's table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TINY, make_text

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "quality.py"


def bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.slow
def test_timed_run_logs_a_result_and_table_renders_it(tmp_path: Path) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text(make_text(200), encoding="utf-8")
    log = tmp_path / "q.jsonl"
    done = bench("--corpus", str(corpus), "--minutes", "0.02", "--log", str(log), "--", *TINY, "--model", "gru")
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["model"]["kind"] for r in results] == ["gru"]  # more rows: the table tests below
    for r in results:
        assert 0 < r["val_loss"] < 5 and 0 < r["best_step"] <= r["steps"] and r["chars_per_s"] > 0
        assert r["val_bpc"] == r["val_loss"] / 0.6931471805599453
        assert r["torch"] and r["threads"] >= 1
    table = bench("--table", str(log)).stdout.splitlines()
    assert table[0] == "| model | parameters | 0.02 min | chars/s |"
    # The size flags are named in the label; the other train options follow it.
    assert table[2].startswith("| GRU 1x8 (--embedding 4 --seq-len 16 --batch-size 4) |")
    assert f"| {results[0]['val_loss']:.3f} |" in table[2]


def test_table_puts_budgets_in_columns_and_last_result_wins() -> None:
    sys.path.insert(0, str(SCRIPT.parent))
    import quality

    def result(minutes: float, loss: float, hidden: int = 256) -> dict:
        model = {"kind": "lstm", "layers": 2, "hidden": hidden}
        return {"args": ["--hidden", str(hidden)], "minutes": minutes, "val_loss": loss,
                "parameters": 883_000, "chars_per_s": 30_000.0, "model": model, "steps": 9, "best_step": 9}  # fmt: skip

    rows = quality.markdown_table([result(10, 1.6), result(3.5, 1.7), result(10, 1.5), result(3.5, 1.9, 512)])
    lines = rows.splitlines()
    assert lines[0] == "| model | parameters | 3.5 min | 10 min | chars/s |"
    assert lines[2] == "| LSTM 2x256 | 0.88M | 1.700 | 1.500 | 30k |"
    assert lines[3] == "| LSTM 2x512 | 0.88M | 1.900 |  | 30k |"
    # A best val loss before the run's end (the model overfit afterwards) is marked.
    overfit = result(10, 1.55) | {"best_step": 5}
    assert quality.markdown_table([overfit]).splitlines()[2] == "| LSTM 2x256 | 0.88M | 1.550† | 30k |"


def test_missing_log_is_a_one_line_error(tmp_path: Path) -> None:
    done = bench("--table", str(tmp_path / "nope.jsonl"))
    assert done.returncode == 1 and done.stderr.strip() == f"error: no such log: {tmp_path / 'nope.jsonl'}"


def test_best_table_keeps_each_sizes_best_configuration_per_budget() -> None:
    sys.path.insert(0, str(SCRIPT.parent))
    import quality

    def result(kind: str, hidden: int, minutes: float, loss: float, *extra: str) -> dict:
        model = {"kind": kind, "layers": 2, "hidden": hidden}
        return {"args": ["--model", kind, "--hidden", str(hidden), *extra], "minutes": minutes, "val_loss": loss,
                "parameters": 1_000_000, "chars_per_s": 1.0, "model": model, "steps": 9, "best_step": 9}  # fmt: skip

    lines = quality.best_table([
        result("rnn", 256, 10, 1.9),
        result("lstm", 512, 10, 1.6),
        result("lstm", 512, 10, 1.5, "--dropout", "0.3"),
        result("lstm", 512, 10, 1.7, "--dropout", "0.5"),
        result("lstm", 256, 3.5, 1.8),
        result("gru", 512, 3.5, 1.75, "--lr", "2e-3"),
    ]).splitlines()  # fmt: skip
    assert lines[0] == "| model | parameters | 3.5 min | 10 min |"
    assert lines[2:] == [
        "| LSTM 2x256 | 1.00M | 1.800 |  |",
        "| LSTM 2x512 | 1.00M |  | 1.500 (--dropout 0.3) |",
        "| GRU 2x512 | 1.00M | 1.750 (--lr 2e-3) |  |",
        "| RNN 2x256 | 1.00M |  | 1.900 |",
    ]


def test_a_past_default_lr_is_named_in_the_label() -> None:
    """GRU and RNN runs logged when 8e-3 was every kind's default must not
    share a row with runs at today's 2e-3 default."""
    sys.path.insert(0, str(SCRIPT.parent))
    import quality

    def result(kind: str, lr: float, *args: str) -> dict:
        return {"args": list(args), "model": {"kind": kind, "layers": 2, "hidden": 64}, "train": {"lr": lr}}

    assert quality.label(result("gru", 8e-3)) == "GRU 2x64 (--lr 8e-3)"
    assert quality.label(result("rnn", 2e-3)) == "RNN 2x64"
    assert quality.label(result("lstm", 8e-3, "--dropout", "0.2")) == "LSTM 2x64 (--dropout 0.2)"
    assert quality.label(result("gru", 5e-3, "--lr=5e-3")) == "GRU 2x64 (--lr=5e-3)"


def test_experiment_rows_stay_in_the_log_but_out_of_the_tables(tmp_path: Path) -> None:
    """A trial of uncommitted code shares its options with a real run; it
    must not replace that run's figure in either table."""
    def result(loss: float, **extra: str) -> dict:
        return {"args": ["--dropout", "0.2"], "minutes": 10, "val_loss": loss, "parameters": 1_000_000,
                "chars_per_s": 1.0, "model": {"kind": "gru", "layers": 2, "hidden": 64}, "steps": 9, "best_step": 9,
                **extra}  # fmt: skip

    log = tmp_path / "q.jsonl"
    log.write_text(json.dumps(result(1.5)) + "\n" + json.dumps(result(1.4, experiment="locked dropout")) + "\n")
    for flags in ((), ("--best",)):
        table = bench("--table", str(log), *flags).stdout
        assert "1.500" in table and "1.400" not in table
