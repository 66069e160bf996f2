"""The proof that a cell kind has one room: a kind defined and registered
only in this file trains, resumes exactly, samples, evaluates and is
inspected through the public API and the CLI, with nothing else edited.

The kind is a leaky integrator with two state parts (h and a memory m)
and one gate, and no fused kernel: it trains with cells/stepped.py.
"""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest
import torch

from charrnn import cells
from charrnn import checkpoint as ckpt
from charrnn import rundir
from charrnn.cells import Cell, Range
from charrnn.errors import CharRNNError
from charrnn.evaluate import eval_text, score
from charrnn.inspection.analysis import analyse
from charrnn.inspection.record import record
from charrnn.model import CharRNN, ModelConfig
from charrnn.sample import SampleConfig, generate
from charrnn.stepper import FastStepper
from charrnn.training.config import TrainConfig
from charrnn.training.loop import SilentReporter
from charrnn.training.launch import Request, resume, train
from charrnn.training.plan import Options

from conftest import make_text, run_cli


class Leaky(Cell):
    """u = sigmoid(.), m' = u m + (1 - u) tanh(.), h' = tanh(m')."""

    name = "leaky-test"
    summary = "leaky-test (a test's kind)"
    state_names = ("h", "m")
    gate_names = ("u",)
    ranges = {"h": Range.tanh, "m": Range.tanh, "u": Range.sigmoid}
    default_lr = 5e-3
    blocks = 2

    def step(self, gi, gh, prev):
        u, n = (gi + gh).chunk(2, dim=-1)
        u = u.sigmoid()
        m = u * prev[1] + (1 - u) * n.tanh()
        return (m.tanh(), m), {"u": u}


class Losses(SilentReporter):
    """A reporter that keeps every step's loss, and can press Ctrl-C."""

    def __init__(self, interrupt_at: int | None = None):
        self.losses, self.interrupt_at = [], interrupt_at

    def step(self, step, loss, chars_per_s):
        self.losses.append(loss)
        if step == self.interrupt_at:
            os.kill(os.getpid(), signal.SIGINT)


@pytest.fixture
def leaky():
    cells.register(Leaky())
    yield cells.get("leaky-test")
    cells.unregister("leaky-test")


CONFIG = TrainConfig(seq_len=8, batch_size=4, max_steps=10, eval_every=5, warmup_steps=2, seed=7, device="cpu",
                     precision="fp32")  # fmt: skip


def shape(vocab_size: int = 1, dropout: float = 0.2) -> ModelConfig:
    return ModelConfig("leaky-test", vocab_size, embedding=4, hidden=6, layers=2, dropout=dropout)


def _new(corpus, out) -> Request:
    return Request(Options(CONFIG, shape(), size="fixed"), corpus=corpus, out=out)


def test_the_kind_trains_and_resumes_exactly(leaky, tmp_path):
    corpus = tmp_path / "play.txt"
    corpus.write_text(make_text(60), encoding="utf-8")
    straight = Losses()
    train(_new(corpus, tmp_path / "a"), straight)
    first, second = Losses(interrupt_at=4), Losses()
    assert train(_new(corpus, tmp_path / "b"), first).interrupted
    resume(tmp_path / "b", reporter=second)
    assert len(straight.losses) == 10 and first.losses + second.losses == straight.losses
    a, b = (ckpt.load_checkpoint(tmp_path / d, prefer=rundir.LAST) for d in ("a", "b"))
    assert a.config.kind == "leaky-test" and a.run.train_config["lr"] == 5e-3  # the kind's default lr
    for name, weight in a.model.state_dict().items():
        assert torch.equal(weight, b.model.state_dict()[name]), name
    assert [p.shape[0] for p in a.model.rnn.parameters()] == [12, 12, 12, 12] * 2  # 2 blocks of 6 rows


def test_steps_sampling_and_recording_agree_with_training(leaky):
    torch.manual_seed(0)
    model = CharRNN(shape(5, dropout=0.0)).eval()
    ids = torch.randint(0, 5, (3, 9))
    with torch.no_grad():
        fused, _ = model(ids)
        state, stepper, traces = model.init_state(3), FastStepper(model, 3), []
        for t in range(9):
            trace = {}
            logits, state = model.step(ids[:, t], state, trace)
            torch.testing.assert_close(logits, fused[:, t], atol=1e-5, rtol=0)
            torch.testing.assert_close(stepper.step(ids[:, t]), logits, atol=1e-5, rtol=0)
            traces.append(trace)
    assert list(traces[0]) == model.config.trace_names == ["l0.h", "l0.m", "l0.u", "l1.h", "l1.m", "l1.u"]
    vocab = _vocab()
    rec = record(model, vocab, vocab.decode(ids[0].tolist()))
    for name in model.config.trace_names:
        steps = torch.stack([trace[name][0] for trace in traces]).numpy()
        np.testing.assert_allclose(rec.tensors[name], steps, atol=1e-5, rtol=0)


def test_sample_eval_and_inspect_through_the_cli(leaky, tmp_path):
    corpus = tmp_path / "play.txt"
    corpus.write_text(make_text(60), encoding="utf-8")
    train(_new(corpus, tmp_path / "run"))
    run = tmp_path / "run"
    done = run_cli("sample", run, "--seed", "3", "--length", "40", "--prime", "ALICE:")
    assert done.exit_code == 0 and done.output.startswith("ALICE:") and len(done.output) >= 46
    again = run_cli("sample", run, "--seed", "3", "--length", "40", "--prime", "ALICE:")
    assert again.output == done.output
    done = run_cli("eval", run, "--json")
    assert done.exit_code == 0, done.output
    loaded = ckpt.load_checkpoint(run)
    test_split = eval_text(loaded)
    assert test_split.source.startswith("the test split of")
    assert json.loads(done.output)["loss"] == score(loaded.model, test_split.ids).loss > 0
    report = tmp_path / "report.json"
    done = run_cli("inspect", run, "--file", corpus, "--max-chars", "400", "--report", report, "--out", tmp_path / "a.npz")
    assert done.exit_code == 0, done.output
    text = report.read_text()
    assert '"l1.u"' in text and '"gradient_flow"' in text  # the gate's saturation, and the flow
    with np.load(tmp_path / "a.npz") as npz:
        assert npz["l1.m"].shape == (400, 6)
    rec = record(loaded.model, loaded.vocab, corpus.read_text()[:300])
    assert set(analyse(rec, loaded.model).saturation) == {"l0.u", "l1.u"}
    text = "".join(c[0] for c in generate(loaded.model, loaded.vocab, "BOB:", SampleConfig(length=30, seed=1)))
    assert len(text) == 30


def test_a_kind_without_a_fused_kernel_keeps_to_the_models_device(leaky):
    with torch.device("meta"):
        model = CharRNN(shape(5, dropout=0.0)).eval()
    ids = torch.zeros(2, 4, dtype=torch.long, device="meta")
    logits, state = model(ids)
    stepper = FastStepper(model, 2)
    stepper.load_state(state)
    assert {t.device.type for t in (logits, stepper.step(ids[:, 0]), *state)} == {"meta"}


def test_unknown_kinds_are_refused_in_one_line(tmp_path):
    with pytest.raises(CharRNNError, match="unknown cell kind 'leaky-test'"):
        ModelConfig("leaky-test", 5)


def _vocab():
    from charrnn.corpus import Vocab

    return Vocab(tuple("abcde"))
