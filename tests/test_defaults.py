"""Defaults fitted to the corpus (training/defaults.py, training/size.py):
the validation split, the evaluation cadence, patience, the model size,
and the line that says so."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from charrnn import cells
from charrnn import checkpoint as ckpt
from charrnn import rundir
from charrnn.model import ModelConfig
from charrnn.corpus import load_corpus, split_corpus
from charrnn.evaluate import score
from charrnn.training import defaults, size
from charrnn.training.config import TrainConfig
from charrnn.training.plan import Options, make_plan

from conftest import TINY, assert_one_line_error, make_text, run_cli

CPU = torch.device("cpu")


def test_val_split_holds_at_least_8192_characters_up_to_a_tenth():
    assert defaults.val_frac(TrainConfig(), 5_000_000).val_frac == 0.05
    assert defaults.val_frac(TrainConfig(), 100_000).val_frac == pytest.approx(0.0819, abs=1e-4)
    assert defaults.val_frac(TrainConfig(), 20_000).val_frac == 0.10
    assert defaults.val_frac(TrainConfig(val_frac=0.2), 20_000).val_frac == 0.2  # given: kept


def test_eval_cadence_is_once_per_epoch_at_most_500_steps_and_divides_sample_every():
    assert defaults.eval_every(TrainConfig(), 14).eval_every == 14
    assert defaults.eval_every(TrainConfig(), 1110).eval_every == 500
    assert defaults.eval_every(TrainConfig(sample_every=30), 14).eval_every == 10
    assert defaults.eval_every(TrainConfig(eval_every=7), 14).eval_every == 7


def test_patience_is_on_by_default_only_for_runs_of_ten_epochs_or_more():
    assert defaults.patience(TrainConfig(), planned_steps=140, steps_per_epoch=14) == defaults.PATIENCE
    assert defaults.patience(TrainConfig(), planned_steps=139, steps_per_epoch=14) == 0
    assert defaults.patience(TrainConfig(), planned_steps=None, steps_per_epoch=14) == 0
    assert defaults.patience(TrainConfig(patience=0), planned_steps=10_000, steps_per_epoch=14) == 0
    assert defaults.patience(TrainConfig(patience=2), planned_steps=1, steps_per_epoch=14) == 2
    vals = [3.0, 2.0, 2.5, 2.1, 2.4]
    assert defaults.evals_since_best([{"val_loss": v} for v in vals]) == 3


@pytest.fixture
def small_corpus(tmp_path):
    p = tmp_path / "small.txt"
    p.write_text(make_text(40), encoding="utf-8")  # about 1,300 characters: 15 steps per epoch at TINY
    return p


def test_a_small_corpus_run_says_what_it_fitted_and_stops_when_patience_runs_out(small_corpus, tmp_path):
    out = tmp_path / "run"
    done = run_cli("train", small_corpus, "--out", out, *TINY, "--max-steps", "3000", "--lr", "0.05")
    assert done.exit_code == 0, done.output
    line = next(ln for ln in done.stderr.splitlines() if ln.startswith("small corpus:"))
    steps_per_epoch = int(line.split(" chars, ")[1].split(" steps per epoch")[0])
    assert f"eval every {steps_per_epoch} steps" in line and "val split 10%" in line and "stop after 5" in line
    metrics = [json.loads(x) for x in (out / rundir.METRICS).read_text().splitlines()]
    assert [m["step"] for m in metrics] == [steps_per_epoch * (i + 1) for i in range(len(metrics))]
    assert metrics[-1]["step"] < 3000 and "not improved for 5 evaluations" in done.stderr
    assert defaults.evals_since_best(metrics) == 5  # stopped exactly when patience ran out
    best = ckpt.load_checkpoint(out)
    assert best.run.best_val_loss == min(m["val_loss"] for m in metrics) == best.run.metrics[-1]["val_loss"]
    assert "patience" in done.stderr.split("stopped by")[1].splitlines()[0]


def test_given_options_win_and_patience_zero_runs_to_the_end(small_corpus, tmp_path):
    out = tmp_path / "run"
    done = run_cli("train", small_corpus, "--out", out, *TINY, "--max-steps", "300", "--lr", "0.05", "--patience", "0",
                   "--eval-every", "100", "--val-frac", "0.2")  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "small corpus:" not in done.stderr
    run = ckpt.load_checkpoint(out, prefer=rundir.LAST).run
    assert run.step == 300 and [m["step"] for m in run.metrics] == [100, 200, 300]
    assert run.train_config["val_frac"] == 0.2 and run.train_config["patience"] == 0


def test_the_size_rule_is_a_table_from_corpus_size_to_model_size():
    rows = cells.get("lstm").size_rule
    assert rows  # else the rule is only the fixed default
    for row in rows:
        assert size.auto_size(row.below - 1) == size.ModelSize(row.layers, row.hidden, row.dropout)
    assert size.auto_size(rows[-1].below) == size.auto_size(10**9) == size.FIXED  # past the rows: the fixed default
    assert size.auto_size(1000, "gru") == size.FIXED  # a kind the rule was not measured for
    shape = ModelConfig("lstm", 40)
    fitted, note = size.fit_model(shape, 10**9, CPU)
    assert (fitted, note) == (shape, None)  # nothing to say when the rule's choice is the default
    small = size.auto_size(1000)
    fitted, note = size.fit_model(shape, 1000, CPU)
    assert (fitted.layers, fitted.hidden, fitted.dropout) == (small.layers, small.hidden, small.dropout)
    assert note.startswith(f"{small.layers}x{small.hidden} LSTM") and note.endswith("chars)")
    assert f"under {rows[0].below:,} chars" in note  # says why: the row of the rule that applies


def test_the_size_rule_never_picks_what_the_device_refuses():
    small = size.auto_size(1000)
    assert small.layers > 1 and small.dropout > 0  # the LSTM on MPS refuses this
    fitted, note = size.fit_model(ModelConfig("lstm", 40), 1000, torch.device("mps"))
    fitted.cell.check_device(torch.device("mps"), fitted.layers, fitted.dropout)  # not refused
    assert fitted.dropout == 0 and "no dropout: the lstm on mps refuses it" in note


def test_the_start_up_line_names_the_size_beside_what_else_was_fitted():
    before = TrainConfig(val_frac=0.05, eval_every=500)  # nothing else fitted
    assert defaults.describe(before, before, 10**6, 230, None, "2x384 LSTM") == (
        "small corpus: 1,000,000 chars, 230 steps per epoch -> 2x384 LSTM")  # no patience clause: nothing small
    after = TrainConfig(val_frac=0.1, eval_every=14)
    line = defaults.describe(TrainConfig(), after, 65_000, 14, None, "2x384 LSTM")
    assert line.split(" -> ")[1].startswith("2x384 LSTM, val split 10%") and "if the run lasts 10+ epochs" in line


QUICK = ["--seq-len", "16", "--batch-size", "4", "--max-steps", "1"]


def model_of(run):
    config = ckpt.load_checkpoint(run).config
    return config.layers, config.hidden, config.dropout


def test_size_auto_fits_an_unsized_model_to_the_corpus_and_says_so(small_corpus, tmp_path):
    done = run_cli("train", small_corpus, "--out", tmp_path / "run", *QUICK)
    assert done.exit_code == 0, done.output
    chosen = size.auto_size(len(small_corpus.read_text(encoding="utf-8")))
    assert chosen != size.FIXED  # else this corpus tests nothing
    assert model_of(tmp_path / "run") == (chosen.layers, chosen.hidden, chosen.dropout)
    line = next(ln for ln in done.stderr.splitlines() if ln.startswith("small corpus:"))
    assert f"-> {chosen.layers}x{chosen.hidden} LSTM" in line and "(--size auto: under" in line


@pytest.mark.parametrize("given, expected", [
    (["--size", "fixed"], (size.FIXED.layers, size.FIXED.hidden, size.FIXED.dropout)),
    (["--dropout", "0.3"], (size.FIXED.layers, size.FIXED.hidden, 0.3)),  # one size given: the rest are fixed
    (["--hidden", "16", "--layers", "1"], (1, 16, size.FIXED.dropout)),
])  # fmt: skip
def test_a_model_sized_by_hand_or_size_fixed_keeps_the_fixed_defaults(small_corpus, tmp_path, given, expected):
    done = run_cli("train", small_corpus, "--out", tmp_path / "run", *QUICK, *given)
    assert done.exit_code == 0, done.output
    assert model_of(tmp_path / "run") == expected and "--size auto" not in done.stderr


def test_a_new_run_sizes_for_the_device_it_will_train_on(small_corpus, tmp_path):
    corpus = load_corpus(small_corpus)
    options = Options(TrainConfig(seq_len=16, batch_size=4))
    plan = make_plan(options, corpus.info, corpus.vocab, torch.device("mps"), str(tmp_path / "run"))
    assert plan.device == "mps" and plan.model.dropout == 0 and "the lstm on mps refuses it" in plan.fitted[0]


@pytest.mark.parametrize("flag", ["--resume", "--init-from"])
def test_size_is_refused_where_the_model_exists_already(tmp_path, small_corpus, flag):
    # refused before the checkpoint is read, so none is needed
    assert_one_line_error(run_cli("train", small_corpus, flag, tmp_path, "--size", "auto"), "--size", flag)


def test_an_explicit_size_auto_is_not_half_ignored(tmp_path, small_corpus):
    done = run_cli("train", small_corpus, "--out", tmp_path / "run", "--size", "auto", "--hidden", "16")
    assert_one_line_error(done, "--size auto", "--hidden")


def test_evaluation_samples_the_val_split_only_where_it_holds_over_a_sixteenth_of_the_characters_trained():
    config = TrainConfig(eval_every=500, batch_size=32, seq_len=128)  # 2,048,000 characters trained between
    assert defaults.eval_chars(config, 100_000).eval_chars is None  # all of it: 100k <= 128k
    assert defaults.eval_chars(config, 2_000_000).eval_chars == 128_000
    assert defaults.eval_chars(TrainConfig(eval_every=1, batch_size=2, seq_len=4), 100_000).eval_chars == 16_384
    assert defaults.eval_chars(replace(config, eval_chars=0), 2_000_000).eval_chars == 0  # given: kept
    assert defaults.eval_chars(replace(config, eval_chars=1000), 20).eval_chars == 1000


def test_a_sampled_run_scores_its_sample_each_time_and_the_whole_split_at_the_end(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(make_text(400), encoding="utf-8")  # about 13,000 characters: a val split of about 1,300
    out = tmp_path / "run"
    done = run_cli("train", corpus, "--out", out, *TINY, "--max-steps", "30", "--eval-every", "10",
                   "--eval-chars", "300", "--val-frac", "0.1")  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "evaluations score a fixed sample of 300 of the val split's" in done.stderr
    metrics = [json.loads(x) for x in (out / rundir.METRICS).read_text().splitlines()]
    assert [m["val_chars"] for m in metrics] == [300, 300, 300]
    assert "val_loss_full" not in metrics[0] and metrics[-1]["val_chars_full"] > 1000
    run = ckpt.load_checkpoint(out, prefer=rundir.LAST)
    val = split_corpus(load_corpus(corpus).ids, 0.1, 0.05).val
    whole = score(run.model, val, streams=4, seq_len=16)
    assert metrics[-1]["val_loss_full"] == pytest.approx(whole.loss, abs=1e-6)
    assert metrics[-1]["val_loss"] != pytest.approx(whole.loss, abs=1e-6)  # the sample is not the split
    assert "last val loss, whole split" in done.stderr


def test_a_run_whose_val_split_fits_the_budget_scores_it_all_and_saves_no_eval_chars(small_corpus, tmp_path):
    out = tmp_path / "run"
    assert run_cli("train", small_corpus, "--out", out, *TINY, "--max-steps", "20").exit_code == 0
    run = ckpt.load_checkpoint(out, prefer=rundir.LAST).run
    assert "eval_chars" not in run.train_config and all("val_chars" not in m for m in run.metrics)


def test_a_run_stopped_by_patience_still_scores_the_whole_split_last(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(make_text(400), encoding="utf-8")
    out = tmp_path / "run"
    done = run_cli("train", corpus, "--out", out, *TINY, "--max-steps", "400", "--eval-every", "5", "--eval-chars",
                   "300", "--patience", "1", "--lr", "0.5")  # fmt: skip
    assert done.exit_code == 0, done.output
    metrics = [json.loads(x) for x in (out / rundir.METRICS).read_text().splitlines()]
    assert metrics[-1]["step"] < 400 and "not improved" in done.stderr  # patience stopped it
    assert "val_loss_full" in metrics[-1] and all("val_loss_full" not in m for m in metrics[:-1])


def test_a_resumed_run_keeps_its_measure_of_the_val_split(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(make_text(2000), encoding="utf-8")  # with --val-frac 0.3, a val split of about 19,000 characters
    out = tmp_path / "run"
    done = run_cli("train", corpus, "--out", out, *TINY, "--max-steps", "4", "--eval-every", "8192", "--val-frac", "0.3")
    assert done.exit_code == 0, done.output
    # scored whole (a sixteenth of 8192 x 4 x 16 is 32,768); a resume whose cadence's budget (16,384) is
    # smaller than the split does not start sampling: best compares one measure
    assert run_cli("train", "--resume", out, "--max-steps", "6", "--eval-every", "1").exit_code == 0
    run = ckpt.load_checkpoint(out, prefer=rundir.LAST).run
    assert "eval_chars" not in run.train_config and all("val_chars" not in m for m in run.metrics)
    refused = run_cli("train", "--resume", out, "--max-steps", "8", "--eval-chars", "100")
    assert_one_line_error(refused, "--eval-chars cannot change when resuming")
