from __future__ import annotations

import json
import math
import os
import signal
from dataclasses import replace

import pytest
import torch

from charrnn import cells
from charrnn import checkpoint as ckpt
from charrnn import device as device_module
from charrnn import rundir
from charrnn.cli.options import format_lr
from charrnn.corpus import load_corpus
from charrnn.device import resolve_precision
from charrnn.errors import CharRNNError, TrainingDiverged
from charrnn.model import CharRNN, ModelConfig
from charrnn.rundir import prepare_out_dir
from charrnn.training import loop
from charrnn.training import plan as plan_module
from charrnn.training.config import TrainConfig, parse_duration
from charrnn.training.launch import resume, train_on
from charrnn.training.schedule import lr_at, progress

from conftest import BUILTIN_KINDS

class Recorder:
    """Collects every step's loss; can raise a real SIGINT at a given step."""

    def __init__(self, interrupt_at: int | None = None):
        self.losses: list[float] = []
        self.records: list[dict] = []
        self.interrupt_at = interrupt_at

    def start(self, total_steps, start_step, info):
        self.total = total_steps
        self.info = info

    def step(self, step, loss, chars_per_s):
        self.losses.append(loss)
        if step == self.interrupt_at:
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does

    def evaluated(self, entry):
        self.records.append(entry)

    def note(self, message):
        pass

    def close(self):
        pass


CONFIG = TrainConfig(seq_len=8, batch_size=4, eval_every=5, max_steps=12, warmup_steps=3, seed=3, device="cpu")


def model_config(corpus, kind="lstm", dropout=0.0, weight_drop=0.0, embed_dropout=0.0):
    return ModelConfig(kind, corpus.vocab.size, embedding=4, hidden=6, layers=2, dropout=dropout, weight_drop=weight_drop,
                       embed_dropout=embed_dropout)  # fmt: skip


@pytest.mark.parametrize("precision", ["auto", "fp32", "bf16"])  # auto, the default: bf16 where the CPU has it
@pytest.mark.parametrize("kind", BUILTIN_KINDS)
def test_resume_is_bit_identical(tmp_path, corpus_file, kind, precision):
    corpus = load_corpus(corpus_file)
    # dropout and weight drop: the RNG state must be restored too
    mconf = model_config(corpus, kind, dropout=0.3, weight_drop=0.3 if cells.get(kind).recurrent else 0.0,
                         embed_dropout=0.2)
    config = replace(CONFIG, precision=precision)

    straight = Recorder()
    train_on(corpus, config, tmp_path / "a", mconf, reporter=straight)

    first = Recorder(interrupt_at=6)
    result = train_on(corpus, config, tmp_path / "b", mconf, reporter=first)
    assert result.interrupted and result.step == 6
    state = ckpt.load_checkpoint(tmp_path / "b", prefer=rundir.LAST)
    second = Recorder()
    result = resume(tmp_path / "b", reporter=second)
    assert result.stop_reason == "max_steps" and result.step == 12

    assert first.losses + second.losses == straight.losses  # exact, not approximate
    a = ckpt.load_checkpoint(tmp_path / "a", prefer=rundir.LAST).model.state_dict()
    b = ckpt.load_checkpoint(tmp_path / "b", prefer=rundir.LAST).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)



def test_deterministic_kernels_are_on_for_the_run_only_and_resume_stays_exact(tmp_path, corpus_file):
    corpus = load_corpus(corpus_file)
    mconf = model_config(corpus, "lstm", dropout=0.3)
    config = replace(CONFIG, deterministic=True)
    seen = []

    class Watching(Recorder):
        def step(self, step, loss, chars_per_s):
            seen.append((torch.are_deterministic_algorithms_enabled(), torch.backends.mkldnn.deterministic,
                         torch.get_num_threads()))
            super().step(step, loss, chars_per_s)

    threads = torch.get_num_threads()
    straight = Watching()
    train_on(corpus, config, tmp_path / "a", mconf, reporter=straight)
    assert set(seen) == {(True, True, 1)} and straight.info["precision"].endswith(", deterministic")
    assert not torch.are_deterministic_algorithms_enabled() and not torch.backends.mkldnn.deterministic
    assert torch.get_num_threads() == threads
    first = Recorder(interrupt_at=6)
    train_on(corpus, config, tmp_path / "b", mconf, reporter=first)
    second = Recorder()
    resume(tmp_path / "b", reporter=second)
    assert first.losses + second.losses == straight.losses

def test_training_learns_and_logs_metrics(tmp_path, corpus_file):
    corpus = load_corpus(corpus_file)
    rec = Recorder()
    cfg = TrainConfig(seq_len=16, batch_size=8, eval_every=20, max_steps=60, warmup_steps=5, lr=3e-2, device="cpu")
    mconf = ModelConfig("lstm", corpus.vocab.size, embedding=8, hidden=32, layers=1)
    result = train_on(corpus, cfg, tmp_path / "r", mconf, reporter=rec)
    assert rec.records[-1]["val_loss"] < rec.records[0]["val_loss"] - 0.5
    lines = [json.loads(x) for x in (tmp_path / "r" / rundir.METRICS).read_text().splitlines()]
    assert [r["step"] for r in lines] == [20, 40, 60]
    for key in ("step", "chars_seen", "train_loss", "val_loss", "elapsed_s", "chars_per_s", "lr", "grad_norm"):
        assert key in lines[-1]
    assert lines[-1]["chars_seen"] == 60 * 16 * 8
    assert result.best_val_loss == min(r["val_loss"] for r in lines)
    best = ckpt.load_checkpoint(tmp_path / "r")
    assert best.run.best_val_loss == result.best_val_loss


def test_the_optimizer_steps_at_the_learning_rate_the_run_stores(tmp_path, corpus_file):
    """test_cli holds the defaults themselves; here, that the stored one is the one used."""
    corpus = load_corpus(corpus_file)
    short = replace(CONFIG, max_steps=CONFIG.warmup_steps + 1, eval_every=CONFIG.warmup_steps + 1, min_lr_frac=1.0)
    rec = Recorder()
    train_on(corpus, short, tmp_path / "d", model_config(corpus, "gru"), reporter=rec)
    stored = ckpt.load_checkpoint(tmp_path / "d").run.train_config["lr"]
    assert rec.records[-1]["lr"] == stored  # no decay: min_lr_frac 1


def test_learning_rates_print_as_the_help_writes_them():
    assert [format_lr(x) for x in (8e-3, 1.2e-2, 5e-4)] == ["8e-3", "1.2e-2", "5e-4"]


def test_epochs_limit_and_state_reset(tmp_path, corpus_file, monkeypatch):
    corpus = load_corpus(corpus_file)
    cfg = TrainConfig(seq_len=64, batch_size=16, epochs=2, eval_every=1000, device="cpu")
    entering = []  # the state each training step starts from
    real_forward = CharRNN.forward

    def spy(self, ids, state=None):
        if self.training:
            entering.append(float(sum(s.abs().sum() for s in state)))
        return real_forward(self, ids, state)

    monkeypatch.setattr(CharRNN, "forward", spy)
    result = train_on(corpus, cfg, tmp_path / "r", model_config(corpus))
    state = ckpt.load_checkpoint(tmp_path / "r", prefer=rundir.LAST)
    per_epoch = state.run.step_in_epoch
    assert result.stop_reason == "epochs"
    assert state.run.epoch == 1 and result.step == 2 * per_epoch == len(entering)
    assert entering[0] == 0 and entering[per_epoch] == 0  # each epoch starts from zero state
    assert all(v > 0 for i, v in enumerate(entering) if i % per_epoch)  # and carries it otherwise


def test_default_length_and_stop_reasons(tmp_path, corpus_file, monkeypatch):
    corpus = load_corpus(corpus_file)
    monkeypatch.setattr(plan_module, "DEFAULT_MAX_STEPS", 3)
    cfg = TrainConfig(seq_len=8, batch_size=4, eval_every=100, device="cpu")
    result = train_on(corpus, cfg, tmp_path / "a", model_config(corpus))
    assert (result.step, result.stop_reason) == (3, "max_steps")
    cfg = TrainConfig(seq_len=8, batch_size=4, eval_every=100, max_steps=4, device="cpu")
    assert train_on(corpus, cfg, tmp_path / "b", model_config(corpus)).stop_reason == "max_steps"


def test_resume_past_the_end_is_refused(tmp_path, corpus_file):
    corpus = load_corpus(corpus_file)
    train_on(corpus, CONFIG, tmp_path / "r", model_config(corpus))
    state = ckpt.load_checkpoint(tmp_path / "r", prefer=rundir.LAST)
    with pytest.raises(CharRNNError, match="already at step 12"):
        resume(tmp_path / "r")


def test_scheduleprogress():
    assert progress(50, 100, 0.0, 0.0, None) == 0.5
    assert progress(10, None, 0.0, 30.0, 60.0) == 0.5  # time-limited: progress is time
    assert progress(10, None, 0.5, 30.0, 60.0) == 0.75  # resumed at 0.5: the new limit ends it
    assert progress(10, None, 0.5, 60.0, 60.0) == 1.0
    assert progress(90, 100, 0.0, 1.0, 600.0) == 0.9  # whichever is further
    cfg = TrainConfig(lr=1.0, min_lr_frac=0.1, warmup_steps=10)
    assert lr_at(cfg, 0, 0.0) == pytest.approx(0.1) and lr_at(cfg, 9, 0.0) == pytest.approx(1.0)
    assert lr_at(cfg, 10, 0.0) == pytest.approx(1.0) and lr_at(cfg, 50, 1.0) == pytest.approx(0.1)
    assert lr_at(cfg, 50, 0.5) == pytest.approx(0.55)


def test_a_run_shorter_than_ten_warmups_warms_up_over_its_first_tenth(tmp_path, corpus_file):
    cfg = TrainConfig(lr=1.0, min_lr_frac=0.1, warmup_steps=100)
    lrs = [lr_at(cfg, s, progress(s, 60, 0.0, 0.0, None), 60) for s in range(60)]  # a 60-step run
    assert lrs[:5] == [pytest.approx((s + 1) / 6) for s in range(5)]  # the tenth: 6 steps, not 100
    peak = max(range(60), key=lrs.__getitem__)
    assert peak == 5 and lrs[peak] == pytest.approx(0.55 + 0.45 * math.cos(math.pi * 5 / 60))
    assert all(b < a for a, b in zip(lrs[peak:], lrs[peak + 1 :]))  # then the cosine decay
    long = [lr_at(cfg, s, progress(s, 3000, 0.0, 0.0, None), 3000) for s in range(101)]  # ten warm-ups or more: as before
    assert long[:99] == [pytest.approx((s + 1) / 100) for s in range(99)]
    timed = lr_at(cfg, 3, progress(3, None, 0.0, 6.0, 60.0))  # 6 s of a 60 s limit: warmed up, 4 steps in
    assert timed == pytest.approx(0.55 + 0.45 * math.cos(math.pi * 0.1))
    # And in a real run: the logged lr of a 20-step run reaches the peak's neighbourhood
    corpus = load_corpus(corpus_file)
    short = TrainConfig(seq_len=8, batch_size=4, max_steps=20, eval_every=4, lr=1e-2, device="cpu")
    rec = Recorder()
    train_on(corpus, short, tmp_path / "r", model_config(corpus), reporter=rec)
    assert rec.records[0]["lr"] > 0.9e-2  # step 4 of 20: warmed up (100 warm-up steps would give 4e-4)


def test_cli_resume_from_an_evaluation_save_is_exact(tmp_path, corpus_file):
    """N steps straight vs: the same run's step-N/2 evaluation checkpoint,
    resumed through the CLI for the remaining N/2 steps."""
    import shutil

    from conftest import run_cli

    class CopyAt8(Recorder):
        def evaluated(self, record):
            if record["step"] == 8:
                (tmp_path / "b").mkdir()
                shutil.copy(tmp_path / "a" / rundir.LAST, tmp_path / "b" / rundir.LAST)

    corpus = load_corpus(corpus_file)
    cfg = TrainConfig(seq_len=16, batch_size=4, max_steps=16, eval_every=8)
    mconf = ModelConfig("lstm", corpus.vocab.size, embedding=4, hidden=8, layers=2, dropout=0.2)
    train_on(corpus, cfg, tmp_path / "a", mconf, reporter=CopyAt8())
    assert run_cli("train", "--resume", tmp_path / "b", "--max-steps", "16").exit_code == 0
    a = ckpt.load_checkpoint(tmp_path / "a", prefer=rundir.LAST)
    b = ckpt.load_checkpoint(tmp_path / "b", prefer=rundir.LAST)
    assert [r["val_loss"] for r in a.run.metrics] == [r["val_loss"] for r in b.run.metrics]
    assert all(torch.equal(v, b.model.state_dict()[k]) for k, v in a.model.state_dict().items())


def test_nan_loss_stops_and_writes_nothing(tmp_path, corpus_file, monkeypatch):
    corpus = load_corpus(corpus_file)
    real_forward = CharRNN.forward
    calls = {"n": 0}

    def poisoned(self, ids, state=None):
        calls["n"] += self.training  # count training steps, not evaluation
        logits, state = real_forward(self, ids, state)
        return (logits * float("nan") if calls["n"] == 8 and self.training else logits), state

    monkeypatch.setattr(CharRNN, "forward", poisoned)
    with pytest.raises(TrainingDiverged, match="diverged at step 8"):
        train_on(corpus, CONFIG, tmp_path / "r", model_config(corpus))
    # the step-5 checkpoint (before the NaN) is intact and finite
    state = ckpt.load_checkpoint(tmp_path / "r", prefer=rundir.LAST)
    assert state.run.step == 5


def test_checkpoint_with_non_finite_weights_is_never_written(tmp_path, corpus_file):
    corpus = load_corpus(corpus_file)
    model = CharRNN(model_config(corpus))
    with torch.no_grad():
        model.head.bias[0] = float("inf")
    with pytest.raises(CharRNNError, match="NaN or infinite"):
        ckpt.save_checkpoint(tmp_path / "x.safetensors", model, corpus.vocab)
    assert not list(tmp_path.glob("*.safetensors*")) and not list(tmp_path.glob(".x*"))


def test_time_limit(tmp_path, corpus_file):
    corpus = load_corpus(corpus_file)
    cfg = TrainConfig(seq_len=8, batch_size=4, time_limit_s=0.5, eval_every=10_000, device="cpu")
    result = train_on(corpus, cfg, tmp_path / "r", model_config(corpus))
    assert result.stop_reason == "time_limit"
    assert (tmp_path / "r" / rundir.BEST).exists()  # the final step is evaluated and saved


@pytest.mark.parametrize("text, seconds", [("90", 90), ("90s", 90), ("10m", 600), ("1h30m", 5400), ("2.5h", 9000)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "ten minutes", "10x", "m10", "1h 30m"])
def test_parse_duration_rejects(text):
    with pytest.raises(CharRNNError):
        parse_duration(text)


def test_out_dir_protection(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / rundir.LAST).write_bytes(b"old run")
    with pytest.raises(CharRNNError, match="already holds a run"):
        prepare_out_dir(run, tmp_path / "default", force=False)
    assert (run / rundir.LAST).read_bytes() == b"old run"
    assert prepare_out_dir(run, tmp_path / "default", force=True) == run
    assert (run / rundir.LAST).read_bytes() == b"old run"  # replaced only once a new run passes its checks
    # the default name never clobbers: it moves on to -2
    assert prepare_out_dir(None, run, force=False) == tmp_path / "run-2"
    assert prepare_out_dir(None, tmp_path / "fresh", force=False) == tmp_path / "fresh"
    assert not (tmp_path / "fresh").exists()  # nothing is created before training starts
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(CharRNNError, match="is a file"):
        prepare_out_dir(afile, tmp_path / "d", force=True)


def test_precision_bf16_trains_on_cpu_and_fp16_is_refused(tmp_path, corpus_file):
    corpus = load_corpus(corpus_file)
    cfg = TrainConfig(seq_len=8, batch_size=4, max_steps=6, eval_every=3, precision="bf16", device="cpu")
    result = train_on(corpus, cfg, tmp_path / "a", model_config(corpus))
    assert result.step == 6 and result.best_val_loss is not None
    state = ckpt.load_checkpoint(tmp_path / "a", prefer=rundir.LAST)
    assert all(t.dtype == torch.float32 for t in state.model.state_dict().values())  # weights stay fp32
    with pytest.raises(CharRNNError, match="fp16 needs a CUDA GPU"):
        train_on(corpus, replace(cfg, precision="fp16"), tmp_path / "b", model_config(corpus))
    with pytest.raises(CharRNNError, match="--precision must be one of"):
        TrainConfig(precision="fp8")


@pytest.mark.parametrize("native", [True, False])
def test_precision_auto_is_bf16_only_on_a_cpu_with_native_bf16(tmp_path, corpus_file, monkeypatch, native):
    monkeypatch.setattr(device_module, "cpu_has_native_bf16", lambda: native)
    assert resolve_precision("auto", torch.device("cpu")) == ("bf16" if native else "fp32")
    assert resolve_precision("auto", torch.device("cuda")) == "fp32"  # not measured on GPUs yet
    assert resolve_precision("fp32", torch.device("cpu")) == "fp32"
    assert TrainConfig().precision == "auto"
    # End to end: the session trains (and reports) in the precision auto picked.
    corpus, seen = load_corpus(corpus_file), Recorder()
    train_on(corpus, replace(CONFIG, max_steps=2), tmp_path / "run", model_config(corpus), reporter=seen)
    picked = "bf16" if native else "fp32"
    assert seen.info["precision"] == device_module.describe_precision(picked, torch.device("cpu"))


def test_samples_during_training_are_logged_and_leave_resume_exact(tmp_path, corpus_file):
    corpus = load_corpus(corpus_file)
    cfg = replace(CONFIG, sample_every=5)
    mconf = model_config(corpus, dropout=0.3)
    straight = Recorder()
    train_on(corpus, cfg, tmp_path / "a", mconf, reporter=straight)
    assert [r["step"] for r in straight.records] == [5, 10, 12]
    assert [len(r.get("sample", "")) for r in straight.records] == [200, 200, 0]  # every 5 steps
    first = Recorder(interrupt_at=7)
    train_on(corpus, cfg, tmp_path / "b", mconf, reporter=first)
    second = Recorder()
    resume(tmp_path / "b", reporter=second)
    assert first.losses + second.losses == straight.losses
    assert second.records[0]["sample"] == straight.records[1]["sample"]
    with pytest.raises(CharRNNError, match="multiple of --eval-every"):
        TrainConfig(eval_every=20, sample_every=30)
