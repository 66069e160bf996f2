"""The minimal cells' scan (charrnn/cells/scan.py): both algorithms equal
the plain recurrence, forward and backward; a scanning kind trains as its
step computes, and trains, samples, evaluates and is inspected through the
CLI; and kinds that declare a contradiction are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from charrnn import cells
from charrnn import checkpoint as ckpt
from charrnn.cells import Cell, Range, scan
from charrnn.errors import CharRNNError
from charrnn.evaluate import eval_text, score
from charrnn.model import CharRNN, ModelConfig

from conftest import SCAN_KINDS, run_cli


def recurrence(a, b, h0):
    """h(t) = a(t) h(t-1) + b(t), one position at a time: the definition."""
    h, out = h0, []
    for t in range(a.shape[1]):
        h = a[:, t] * h + b[:, t]
        out.append(h)
    return torch.stack(out, 1)


def gates(spread: float, shape=(3, 128, 16)):
    """a, b as a minGRU makes them, from pre-activations of the given spread."""
    torch.manual_seed(0)
    z, n = torch.randn(shape).mul(spread).sigmoid(), torch.randn(shape) * spread
    return 1 - z, z * scan.g(n)


@pytest.mark.parametrize("spread", [1.0, 20.0])  # 20: gates pinned near 0 and 1, as training pushes them
@pytest.mark.parametrize("algorithm", [scan.sequential, scan.parallel])
def test_both_algorithms_equal_the_recurrence_within_1e_5(algorithm, spread):
    a, b = gates(spread)
    h0 = torch.randn(3, 16)  # a carried state of any sign
    want = recurrence(a.double(), b.double(), h0.double())
    got = algorithm(a, b, h0)
    assert got.dtype == torch.float32
    assert ((got.double() - want).abs() / want.abs().clamp_min(1e-3)).max() < 1e-5


@pytest.mark.parametrize("length", [1, 2, 37])  # 1: nothing to combine; 37: not a power of two
@pytest.mark.parametrize("algorithm", [scan.sequential, scan.parallel])
def test_both_algorithms_have_the_recurrences_gradients(algorithm, length):
    torch.manual_seed(1)
    a = torch.rand(2, length, 5, dtype=torch.float64, requires_grad=True)
    b = torch.rand(2, length, 5, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(algorithm, (a, b, h0))
    torch.testing.assert_close(algorithm(a, b, h0), recurrence(a, b, h0), atol=1e-12, rtol=1e-12)
    # time-major tensors underneath, as a caller's may be: used as they are, never written to
    weights = torch.randn(length, 2, 5, dtype=torch.float64).transpose(0, 1)
    kept = weights.clone()
    want = torch.autograd.grad(recurrence(a, b, h0), (a, b, h0), weights)
    got = torch.autograd.grad(algorithm(a, b, h0), (a, b, h0), weights)
    for x, y in zip(got, want):
        torch.testing.assert_close(x, y, atol=1e-10, rtol=1e-10)
    assert torch.equal(weights, kept)


@pytest.mark.parametrize("kind", SCAN_KINDS)
def test_a_model_scanned_in_parallel_equals_its_step_path_and_gradients(kind, monkeypatch):
    """What CUDA and MPS run, inside a model, on the CPU."""
    torch.manual_seed(5)
    model = CharRNN(ModelConfig(kind, vocab_size=7, embedding=5, hidden=6, layers=2))
    ids, targets = torch.randint(0, 7, (3, 21)), torch.randint(0, 7, (3, 21))

    def run():
        model.zero_grad()
        logits, state = model(ids)
        F.cross_entropy(logits.flatten(0, 1), targets.flatten()).backward()
        return logits.detach(), state, [p.grad.clone() for p in model.parameters()]

    sequential = run()
    monkeypatch.setattr(scan, "algorithm", lambda device: scan.parallel)
    parallel = run()
    torch.testing.assert_close(parallel[0], sequential[0], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(parallel[1], sequential[1], atol=1e-6, rtol=1e-6)
    for x, y in zip(parallel[2], sequential[2]):
        torch.testing.assert_close(x, y, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("kind", SCAN_KINDS)
def test_a_trained_spread_of_weights_still_scans_as_it_steps(kind):
    """Weights 4x the initial spread saturate the gates, where a log-space
    scan's cancellation shows (up to 2e-4 here): logits and state of a
    128-character window equal the step path's within 1e-5."""
    torch.manual_seed(2)
    model = CharRNN(ModelConfig(kind, vocab_size=7, embedding=8, hidden=32, layers=2)).eval()
    with torch.no_grad():
        for p in model.rnn.parameters():
            p.mul_(4)
        ids = torch.randint(0, 7, (2, 128))
        fused, fused_state = model(ids)
        state = model.init_state(2)
        for t in range(128):
            logits, state = model.step(ids[:, t], state)
            torch.testing.assert_close(logits, fused[:, t], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(state[0], fused_state[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", SCAN_KINDS)
def test_the_scan_has_the_step_loops_gradients(kind, monkeypatch):
    torch.manual_seed(3)
    model = CharRNN(ModelConfig(kind, vocab_size=7, embedding=5, hidden=6, layers=2)).double()
    ids, targets = torch.randint(0, 7, (3, 20)), torch.randint(0, 7, (3, 20))
    state = tuple(s.double() + 0.3 for s in model.init_state(3))  # a carried state, not zeros

    def grads():
        model.zero_grad()
        logits, _ = model(ids, state)
        F.cross_entropy(logits.flatten(0, 1), targets.flatten()).backward()
        return [p.grad.clone() for p in model.parameters()]

    scanned = grads()
    monkeypatch.setattr(type(model.cell), "scans", False)  # cells/stepped.py then loops over `step`
    for x, y in zip(scanned, grads()):
        torch.testing.assert_close(x, y, atol=1e-10, rtol=1e-8)


@pytest.mark.parametrize("kind", SCAN_KINDS)
def test_the_scan_runs_in_float32_under_bf16_autocast(kind):
    """The window's gates come from a bf16 matmul; from there on it is float32."""
    torch.manual_seed(4)
    cell = cells.get(kind)
    gi = (torch.randn(2, 64, cell.blocks * 16) * 3).bfloat16()
    prev = (torch.rand(2, 16),)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        h, state = cell.scan(gi, prev)
    want, _ = cell.scan(gi.double(), tuple(p.double() for p in prev))
    assert h.dtype == state[0].dtype == torch.float32  # carried to the next window in float32
    torch.testing.assert_close(h.double(), want, atol=1e-5, rtol=1e-5)  # bf16 arithmetic would miss by 1e-2


def test_kinds_whose_declarations_contradict_are_refused():
    class Both(Cell):
        name, ranges, default_lr, scans = "both-test", {"h": Range.tanh}, 1e-3, True

    class WithModule(Cell):
        name, ranges, default_lr, recurrent, sequence_module = "module-test", {"h": Range.tanh}, 1e-3, False, torch.nn.GRU

    with pytest.raises(CharRNNError, match="only a kind that is not recurrent can scan"):
        cells.register(Both())
    with pytest.raises(CharRNNError, match="a sequence module .nn.RNNBase. has W_hh"):
        cells.register(WithModule())
    assert "both-test" not in cells.names() and "module-test" not in cells.names()


@pytest.mark.parametrize("kind", SCAN_KINDS)
def test_scanning_kinds_have_no_recurrent_weights(kind):
    model = CharRNN(ModelConfig(kind, vocab_size=7, embedding=5, hidden=6, layers=3))
    names = [name for name, _ in model.rnn.named_parameters()]
    assert names == [f"{w}_l{k}" for k in range(3) for w in ("weight_ih", "bias_ih")]
    assert model.layer_weights(1).w_hh is None and model.layer_weights(1).recurrent(torch.zeros(6)) is None
    blocks = cells.get(kind).blocks
    assert model.rnn.weight_ih_l1.shape == (blocks * 6, 6)


@pytest.mark.parametrize("kind", SCAN_KINDS)
def test_train_sample_eval_and_inspect_a_scanning_kind_through_the_cli(kind, tmp_path, corpus_file):
    run = tmp_path / "run"
    done = run_cli("train", corpus_file, "--out", run, "--model", kind, "--hidden", "8", "--embedding", "4",
                   "--layers", "2", "--seq-len", "16", "--batch-size", "4", "--max-steps", "20", "--eval-every", "10")  # fmt: skip
    assert done.exit_code == 0, done.output
    loaded = ckpt.load_checkpoint(run)
    assert loaded.config.kind == kind
    sampled = run_cli("sample", run, "--seed", "3", "--length", "40", "--prime", "ALICE:")
    assert sampled.exit_code == 0 and sampled.output.startswith("ALICE:") and len(sampled.output) >= 46
    assert run_cli("sample", run, "--seed", "3", "--length", "40", "--prime", "ALICE:").output == sampled.output
    scored = run_cli("eval", run, "--json")
    assert scored.exit_code == 0, scored.output
    assert json.loads(scored.output)["loss"] == score(loaded.model, eval_text(loaded).ids).loss > 0
    report = tmp_path / "report.json"
    done = run_cli("inspect", run, "--file", corpus_file, "--max-chars", "300", "--report", report,
                   "--out", tmp_path / "a.npz")  # fmt: skip
    assert done.exit_code == 0, done.output
    found = json.loads(report.read_text())
    gates = [f"l{k}.{g}" for k in range(2) for g in cells.get(kind).gate_names if g != "n"]
    assert sorted(found["saturation"]) == sorted(gates) and len(found["gradient_flow"]["l1.h"]) > 0
    with np.load(tmp_path / "a.npz") as npz:
        assert npz["l1.n"].shape == (300, 8) and (npz["l1.h"] > 0).all()  # h: an average of positive candidates


def test_the_coefficients_are_the_papers_formulas_in_the_traced_gates():
    torch.manual_seed(6)
    gi = torch.randn(4, 3 * 5, dtype=torch.float64) * 3
    a, b = cells.get("mingru").coefficients(gi[:, :10])
    g = cells.get("mingru").gates(gi[:, :10])
    torch.testing.assert_close(a, 1 - g["z"])
    torch.testing.assert_close(b, g["z"] * g["n"])
    a, b = cells.get("minlstm").coefficients(gi)
    g = cells.get("minlstm").gates(gi)
    torch.testing.assert_close(a, g["f"] / (g["f"] + g["i"]))
    torch.testing.assert_close(b, g["i"] / (g["f"] + g["i"]) * g["n"])
    x = torch.tensor([-3.0, -0.5, 0.0, 0.5, 3.0], dtype=torch.float64)
    torch.testing.assert_close(scan.g(x), torch.where(x >= 0, x + 0.5, torch.sigmoid(x)))
    assert scan.g(x)[2] == 0.5 and bool((scan.g(x) > 0).all())
