"""The minimal cells' scan (charrnn/cells/scan.py): both algorithms equal
the plain recurrence, forward and backward; a scanning kind trains as its
step computes; and the kinds refuse what cannot work."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from charrnn import cells
from charrnn.cells import Cell, Range, scan
from charrnn.errors import CharRNNError
from charrnn.model import CharRNN, ModelConfig

from conftest import SCAN_KINDS


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


@pytest.mark.parametrize("algorithm", [scan.sequential, scan.parallel])
def test_both_algorithms_have_the_recurrences_gradients(algorithm):
    torch.manual_seed(1)
    a = torch.rand(2, 37, 5, dtype=torch.float64, requires_grad=True)  # 37: not a power of two
    b = torch.rand(2, 37, 5, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(algorithm, (a, b, h0))
    weights = torch.randn(2, 37, 5, dtype=torch.float64)
    want = torch.autograd.grad((recurrence(a, b, h0) * weights).sum(), (a, b, h0))
    got = torch.autograd.grad((algorithm(a, b, h0) * weights).sum(), (a, b, h0))
    for x, y in zip(got, want):
        torch.testing.assert_close(x, y, atol=1e-10, rtol=1e-10)


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
    torch.manual_seed(4)
    model = CharRNN(ModelConfig(kind, vocab_size=7, embedding=8, hidden=16, layers=2))
    ids = torch.randint(0, 7, (2, 64))
    with torch.no_grad():
        full, _ = model(ids)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half, state = model(ids)
    assert state[0].dtype == torch.float32  # carried to the next window in float32
    assert (half.float() - full).abs().max() < 0.05  # bf16 matmuls; a bf16 recurrence drifts further


def test_a_kind_that_scans_must_not_read_h_through_weights():
    class Both(Cell):
        name, ranges, default_lr, scans = "both-test", {"h": Range.tanh}, 1e-3, True

    with pytest.raises(CharRNNError, match="only a kind that is not recurrent can scan"):
        cells.register(Both())
    assert "both-test" not in cells.names()


@pytest.mark.parametrize("kind", SCAN_KINDS)
def test_scanning_kinds_have_no_recurrent_weights(kind):
    model = CharRNN(ModelConfig(kind, vocab_size=7, embedding=5, hidden=6, layers=3))
    names = [name for name, _ in model.rnn.named_parameters()]
    assert names == [f"{w}_l{k}" for k in range(3) for w in ("weight_ih", "bias_ih")]
    assert model.layer_weights(1).w_hh is None and model.layer_weights(1).recurrent(torch.zeros(6)) is None
    blocks = cells.get(kind).blocks
    assert model.rnn.weight_ih_l1.shape == (blocks * 6, 6)
