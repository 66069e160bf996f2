"""The GRU's hand-written CPU path (charrnn/cells/gru_cpu.py) against nn.GRU,
with its step's maths in the optional C step (cells/_gru_step.c) and without."""

from __future__ import annotations

import importlib.util
import shutil
import sys
import sysconfig
from pathlib import Path

import pytest
import torch
from torch import nn

import charrnn.cells
from charrnn.cells import gru_cpu
from charrnn.cells.gru_cpu import FastGRU, GRULayer
from charrnn.model import CharRNN, ModelConfig

BUILT = gru_cpu.gru_cstep  # None where the optional C step is not built


@pytest.fixture(params=["c", "c-addmm", "ops"])
def step(request, monkeypatch) -> str:
    """Each test below runs with the C step (GEMMs through oneDNN where it
    is, and through addmm) and with its PyTorch-ops twin."""
    if request.param != "ops" and BUILT is None:
        pytest.skip("the optional C step is not built here")
    monkeypatch.setattr(gru_cpu, "gru_cstep", BUILT if request.param != "ops" else None)
    if request.param == "c-addmm":
        monkeypatch.setattr(BUILT, "_onednn", lambda dtype: False)
    return request.param


@pytest.mark.parametrize(("state", "reason"), [
    ("absent", "the GRU's C step (charrnn/cells/_gru_step.c) is not built: `pip install -e .` builds it"),
    ("older", "the GRU's C step is an older build (ABI 2, this charrnn needs 3): rebuild it with `pip install -e .`"),
    ("broken", "the GRU's C step does not load (import of charrnn.cells._gru_step halted; None in sys.modules):"
               " rebuild it with `pip install -e .`"),
])  # fmt: skip
def test_a_missing_stale_or_broken_c_step_is_named_with_how_to_rebuild(monkeypatch, state, reason):
    name = "charrnn.cells._gru_step"
    fake = type(sys)("_gru_step")
    fake.ABI = 2
    monkeypatch.setitem(sys.modules, name, fake if state == "older" else None)  # None: the import fails
    monkeypatch.setattr(charrnn.cells, "_gru_step", fake, raising=False)
    if state != "older":
        monkeypatch.delattr(charrnn.cells, "_gru_step")
    if state == "broken":  # the file is there, but does not load
        monkeypatch.setattr(importlib.util, "find_spec", lambda *a, **kw: object())
    monkeypatch.delitem(sys.modules, "charrnn.cells.gru_cstep", raising=False)  # so that it is imported afresh
    monkeypatch.delattr(charrnn.cells, "gru_cstep", raising=False)
    module, error = gru_cpu._load_c_step()
    assert module is None and error == reason
    monkeypatch.setattr(gru_cpu, "gru_cstep", None)
    monkeypatch.setattr(gru_cpu, "_c_step_error", error)
    assert gru_cpu.c_step_problem() == f"{reason} (until then the GRU trains through PyTorch ops, slower)"


def test_a_built_c_step_is_no_problem():
    if BUILT is None:
        pytest.skip("the optional C step is not built here")
    assert gru_cpu.c_step_problem() is None and gru_cpu._load_c_step() == (BUILT, None)


def _pair(inputs: int, hidden: int, layers: int, dropout: float = 0.0) -> tuple[nn.GRU, FastGRU]:
    torch.manual_seed(0)
    ref = nn.GRU(inputs, hidden, layers, batch_first=True, dropout=dropout)
    fast = FastGRU(inputs, hidden, layers, batch_first=True, dropout=dropout)
    fast.load_state_dict(ref.state_dict())  # same parameter names: checkpoints move between them
    return ref, fast


def _run(module: nn.Module, x: torch.Tensor, h0: torch.Tensor | None, weights: torch.Tensor) -> list[torch.Tensor]:
    """Outputs and every gradient of a loss that reads both the outputs and the last state."""
    leaves = [x, *module.parameters()] + ([h0] if h0 is not None else [])
    for leaf in leaves:
        leaf.grad = None
    out, last = module(x, h0)
    ((out * weights).sum() + (last**2).sum()).backward()
    return [out.detach(), last.detach(), *(leaf.grad for leaf in leaves)]


@pytest.mark.parametrize(("layers", "steps", "with_h0"), [(1, 1, True), (2, 37, True), (3, 5, False)])
def test_equals_nn_gru_forward_and_gradients(layers: int, steps: int, with_h0: bool, step: str):
    ref, fast = _pair(5, 7, layers)
    x = torch.randn(3, steps, 5, requires_grad=True)
    h0 = torch.randn(layers, 3, 7, requires_grad=True) if with_h0 else None
    weights = torch.randn(3, steps, 7)
    expected, got = _run(ref, x, h0, weights), _run(fast, x, h0, weights)
    assert "GRULayer" in fast(x, h0)[0].grad_fn.next_functions[0][0].name()  # the hand-written path ran
    assert len(got) == len(expected)
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e, rtol=0, atol=1e-5)


def test_gradcheck_in_float64(step: str):
    torch.manual_seed(1)
    T, B, In, H = 4, 2, 3, 5

    def leaf(*shape):
        return torch.randn(*shape, dtype=torch.float64, requires_grad=True)

    args = (leaf(T, B, In), leaf(B, H), leaf(3 * H, In), leaf(3 * H, H), leaf(3 * H), leaf(3 * H))
    assert torch.autograd.gradcheck(GRULayer.apply, args)


def test_leaves_the_incoming_gradient_alone(step: str):
    torch.manual_seed(2)
    T, B, In, H = 9, 2, 4, 6
    weights = [torch.randn(3 * H, In), torch.randn(3 * H, H), torch.randn(3 * H), torch.randn(3 * H)]
    out = GRULayer.apply(torch.randn(T, B, In), torch.zeros(B, H), *(w.requires_grad_() for w in weights))
    grad = torch.randn_like(out)  # contiguous and time-major: the backward gets this very tensor
    kept = grad.clone()
    out.backward(grad)
    assert torch.equal(grad, kept)


@pytest.mark.parametrize("lacking", ["the C step", "oneDNN's bf16"])
def test_under_bf16_autocast_without_what_it_needs_runs_nn_grus_own_path(lacking: str, monkeypatch):
    if lacking == "the C step":
        monkeypatch.setattr(gru_cpu, "gru_cstep", None)
    elif BUILT is not None:
        monkeypatch.setattr(BUILT, "bf16_supported", lambda: False)
    ref, fast = _pair(4, 6, 2)
    x = torch.randn(2, 9, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected, got = ref(x), fast(x)
    for e, g in zip(expected, got):
        assert torch.equal(g, e)


@pytest.mark.skipif(BUILT is None or not BUILT.bf16_supported(), reason="needs the C step and oneDNN's bf16")
def test_under_bf16_autocast_the_c_step_runs_bf16_gemms_near_fp32():
    """bf16 GEMMs, fp32 gates and state: outputs and gradients within bf16's
    rounding of the fp32 figures, no further off than nn.GRU's own autocast."""
    ref, fast = _pair(16, 32, 2)
    torch.manual_seed(4)
    x, weights = torch.randn(4, 50, 16, requires_grad=True), torch.randn(4, 50, 32)
    h0 = torch.randn(2, 4, 32, requires_grad=True)  # its gradient too: the window's last GEMM runs
    exact = _run(ref, x, h0, weights)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        layer = fast(x)[0].grad_fn.next_functions[0][0]
        assert "GRULayer" in layer.name() and layer.saved_tensors[1].dtype == torch.bfloat16  # hg: bf16 GEMM inputs
        got, theirs = _run(fast, x, h0, weights), _run(ref, x, h0, weights)
    assert got[0].dtype == theirs[0].dtype == torch.float32
    for g, t, e in zip(got, theirs, exact):
        scale = e.abs().max()
        assert (g - e).abs().max() <= 0.02 * scale
        assert (g - e).abs().max() <= 2 * (t - e).abs().max() + 1e-3 * scale


def test_dropout_between_layers_only_while_training():
    ref, fast = _pair(4, 6, 2, dropout=0.5)
    x = torch.randn(2, 9, 4)
    fast.train()
    trained, _ = fast(x)
    fast.eval(), ref.eval()
    evaluated, _ = fast(x)
    torch.testing.assert_close(evaluated, ref(x)[0], rtol=0, atol=1e-5)
    assert not torch.allclose(trained, evaluated)


def test_the_gru_kind_trains_with_it():
    model = CharRNN(ModelConfig("gru", vocab_size=5, embedding=3, hidden=4, layers=2))
    assert type(model.rnn) is FastGRU
    assert set(model.rnn.state_dict()) == set(nn.GRU(3, 4, 2).state_dict())


def test_refuses_a_wrong_state_and_leaves_other_inputs_to_nn_gru():
    _, fast = _pair(4, 6, 2)
    with pytest.raises(RuntimeError):
        fast(torch.randn(2, 9, 4), torch.zeros(3, 2, 6))  # three layers of state for two
    ref, fast64 = (m.double() for m in _pair(4, 6, 2))
    x = torch.randn(2, 9, 4, dtype=torch.float64)
    torch.testing.assert_close(fast64(x)[0], ref(x)[0], rtol=0, atol=1e-12)
    out, _ = fast(torch.randn(9, 4))  # unbatched: nn.GRU's own path
    assert out.shape == (9, 6)


@pytest.mark.skipif(BUILT is None, reason="the optional C step is not built here")
def test_c_step_matches_pytorch_on_extreme_and_nan_preactivations():
    """The C step's own exp (cells/_gru_step.c) against torch's sigmoid and
    tanh, far into saturation, at zero, and on inf and NaN."""
    from charrnn.cells import _gru_step

    B, H = 3, 37  # H not a multiple of any vector width: the loops' tails run
    torch.manual_seed(3)
    gi, gh, h = torch.randn(B, 3 * H) * 30, torch.randn(B, 3 * H) * 30, torch.randn(B, H)
    gi[0, :6] = torch.tensor([0.0, -1e-6, 88.0, -90.0, float("inf"), -float("inf")])
    gh[0, :6] = 0.0
    gi[1, H + 1] = float("nan")
    gates, n, h_next = torch.empty(B, 3 * H), torch.empty(B, H), torch.empty(B, H)
    ptrs = (t.data_ptr() for t in (gi, gh, h, gates, n, h_next, h_next))
    _gru_step.forward(0, B, H, *ptrs)
    pre = gi + gh
    r, z = pre[:, :H].sigmoid(), pre[:, H : 2 * H].sigmoid()
    want_n = torch.tanh(gi[:, 2 * H :] + r * gh[:, 2 * H :])
    want = (torch.cat([r, z, gh[:, 2 * H :]], 1), want_n, torch.lerp(want_n, h, z))
    for g, e in zip((gates, n, h_next), want):
        torch.testing.assert_close(g, e, rtol=1e-6, atol=1e-6, equal_nan=True)
    assert h_next[1, 1].isnan() and h_next.isnan().sum() == 1  # NaN carried through, not clamped away


def test_c_step_is_built_where_a_c_compiler_is():
    """setup.py builds it optionally: a failed build must not go unnoticed on
    the machines that can build it (CI's among them)."""
    cc = (sysconfig.get_config_var("CC") or "").split()
    headers = Path(sysconfig.get_paths()["include"], "Python.h")
    if not sys.platform.startswith("linux") or not cc or not shutil.which(cc[0]) or not headers.exists():
        pytest.skip("no C compiler or no Python headers here: the PyTorch-ops path runs")
    assert BUILT is not None, "pip install -e . did not build charrnn/cells/_gru_step.c (or an old build is there)"


@pytest.mark.skipif(BUILT is None, reason="the optional C step is not built here")
def test_c_step_rounds_bf16_state_as_pytorch_does():
    """With bf16 GEMMs the C step writes each new state twice, fp32 and bf16
    (the next GEMM's input): the bf16 copy is PyTorch's own rounding of the
    fp32 one, ties, overflow and NaN included."""
    from charrnn.cells import _gru_step

    B, H = 2, 24
    torch.manual_seed(5)
    gi, gh = torch.randn(B, 3 * H).bfloat16(), torch.randn(B, 3 * H).bfloat16()
    gi[:, 2 * H :] = 0.0
    gh[:, H : 2 * H] = -100.0  # z = 0: h_next = n = tanh(0 + r gh_n) exactly as below
    gh[:, 2 * H :] = 0.0
    h = torch.randn(B, H)
    gates, n, h_next, h_bf16 = torch.empty(B, 3 * H), torch.empty(B, H), torch.empty(B, H), torch.empty(B, H).bfloat16()
    _gru_step.forward(2, B, H, *(t.data_ptr() for t in (gi, gh, h, gates, n, h_next, h_bf16)))
    assert torch.equal(h_bf16, h_next.bfloat16())
    # the rounding itself, on values the step cannot make: through a state that z = 1 copies
    gh[:, H : 2 * H] = 100.0
    nan_all_ones = torch.tensor([0x7FFFFFFF], dtype=torch.int32).view(torch.float32).item()  # rounds up into -0.0 unless caught
    values = [1 + 2**-8, 1 + 3 * 2**-8, 3.4e38, float("inf"), float("nan"), nan_all_ones, -1 - 2**-8, 1e-40]
    h = torch.tensor(values * 3).view(1, H).expand(B, H).contiguous()
    _gru_step.forward(2, B, H, *(t.data_ptr() for t in (gi, gh, h, gates, n, h_next, h_bf16)))
    torch.testing.assert_close(h_bf16, h.bfloat16(), rtol=0, atol=0, equal_nan=True)


def test_bias_gradients_over_a_long_window_are_as_exact_as_nn_gru(step: str):
    """Over T*B = 8192 rows the biases' gradients are sums of 8192 terms: as
    close to fp64's as nn.GRU's own (a single running sum was 20x further)."""
    torch.manual_seed(0)
    ref, fast = _pair(16, 32, 1)
    exact = nn.GRU(16, 32, 1, batch_first=True).double()
    exact.load_state_dict(ref.state_dict())
    x, weights = torch.randn(64, 128, 16), torch.randn(64, 128, 32)
    grads = []
    for module in (ref, fast, exact):
        out, _ = module(x.to(module.weight_hh_l0.dtype))
        (out * weights.to(out.dtype)).sum().backward()
        grads.append([module.bias_ih_l0.grad.double(), module.bias_hh_l0.grad.double()])
    for theirs, ours, want in zip(*grads):  # nn.GRU, FastGRU, fp64
        assert (ours - want).abs().max() <= 3 * (theirs - want).abs().max() + 1e-6


@pytest.mark.skipif(BUILT is None, reason="the optional C step is not built here")
@pytest.mark.parametrize("kind", [0, 2])
def test_c_backward_step_writes_both_gradient_halves_and_sums_the_biases(kind: int):
    """One step back, against its formulas in PyTorch: d_gi = [dN | dz | dr]
    and d_gh = [dz | dr | dgh_n] (dz and dr in both), rounded to bf16 where
    the GEMMs are (kind 2); carry_out = dout(t-1) + z dh; and the biases'
    sums, added to what two calls before left there, from the values before
    rounding."""
    from charrnn.cells import _gru_step

    B, H, gemm = 3, 37, (torch.float32 if kind == 0 else torch.bfloat16)
    torch.manual_seed(6)
    carry, h, n, dout_prev = torch.randn(B, H), torch.randn(B, H), torch.rand(B, H) * 2 - 1, torch.randn(B, H)
    mm = torch.randn(B, H).to(gemm)
    gates = torch.cat([torch.rand(B, 2 * H), torch.randn(B, H)], 1)  # r, z in (0, 1); gh_n
    d_gi, d_gh, carry_out = torch.empty(B, 3 * H, dtype=gemm), torch.empty(B, 3 * H, dtype=gemm), torch.empty(B, H)
    before = torch.randn(4 * H)
    sums = before.clone()
    _gru_step.backward(kind, B, H, *(t.data_ptr() for t in (carry, mm, gates, n, h, dout_prev, d_gi, d_gh, carry_out, sums)))
    r, z, gh_n = gates.split(H, 1)
    d = carry + mm.float()
    dn = d * (1 - z) * (1 - n * n)
    dz, dr, dgh = d * (h - n) * z * (1 - z), dn * gh_n * r * (1 - r), dn * r
    close = {"rtol": 1e-6, "atol": 1e-6}
    torch.testing.assert_close(d_gi, torch.cat([dn, dz, dr], 1).to(gemm), **close)
    torch.testing.assert_close(d_gh, torch.cat([dz, dr, dgh], 1).to(gemm), **close)
    torch.testing.assert_close(carry_out, dout_prev + z * d, **close)
    torch.testing.assert_close(sums, before + torch.cat([dn, dz, dr, dgh], 1).sum(0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"x": torch.randn(0, 2, 3)}, "no time steps"),
        ({"x": torch.randn(4, 2, 3).half()}, "fp32 or fp64"),
        ({"w_hh": torch.randn(12, 5)}, "w_hh has shape"),
    ],
)
def test_a_layer_refuses_what_it_cannot_run(change: dict, message: str):
    args = {"x": torch.randn(4, 2, 3), "h0": torch.zeros(2, 5), "w_ih": torch.randn(15, 3), "w_hh": torch.randn(15, 5),
            "b_ih": torch.zeros(15), "b_hh": torch.zeros(15)}  # fmt: skip
    args.update(change)
    if BUILT is None and message != "no time steps":
        pytest.skip("the PyTorch-ops path leaves these to PyTorch's own errors")
    with pytest.raises(ValueError, match=message):
        GRULayer.apply(*args.values())
