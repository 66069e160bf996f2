from __future__ import annotations

import pytest
import torch

from charrnn import cells
from charrnn.device import onednn_has_bf16
from charrnn.model import CharRNN, ModelConfig

from conftest import BUILTIN_KINDS

KINDS = BUILTIN_KINDS


def tiny(kind: str, layers: int = 2, dropout: float = 0.0) -> CharRNN:
    torch.manual_seed(0)
    # distinct small sizes (V=5, E=3, H=4) so a transposed weight cannot pass by accident
    return CharRNN(ModelConfig(kind, vocab_size=5, embedding=3, hidden=4, layers=layers, dropout=dropout)).eval()


@pytest.mark.parametrize("kind", KINDS)
def test_step_path_equals_fused_forward(kind):
    model = tiny(kind, layers=3)
    ids = torch.randint(0, 5, (2, 6))  # (B, T)
    with torch.no_grad():
        fused_logits, fused_state = model(ids)
        state = model.init_state(2)
        for t in range(6):
            logits, state = model.step(ids[:, t], state)
            torch.testing.assert_close(logits, fused_logits[:, t], atol=1e-5, rtol=0)
    for a, b in zip(state, fused_state):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_trace_exposes_every_layer_state_and_gate(kind):
    model = tiny(kind)
    trace: dict = {}
    with torch.no_grad():
        _, state = model.step(torch.tensor([1, 2]), model.init_state(2), trace)
    assert list(trace) == model.config.trace_names
    for name, t in trace.items():
        assert t.shape == (2, 4), name
        gate = name.split(".")[1]
        if gate in ("i", "f", "o", "r", "z"):
            assert bool(((t >= 0) & (t <= 1)).all()), name
    torch.testing.assert_close(trace["l1.h"], state[0][1])
    if kind == "lstm":
        torch.testing.assert_close(trace["l1.c"], state[1][1])


@pytest.mark.parametrize("kind", KINDS)
def test_chunked_with_carried_state_equals_one_pass(kind):
    model = tiny(kind)
    ids = torch.randint(0, 5, (3, 12))
    with torch.no_grad():
        whole, _ = model(ids)
        a, state = model(ids[:, :5])
        b, _ = model(ids[:, 5:], state)
    torch.testing.assert_close(torch.cat([a, b], 1), whole, atol=1e-6, rtol=0)


def test_lstm_forget_gate_bias_starts_at_one():
    model = tiny("lstm")
    for k in range(2):
        total = model.rnn.__getattr__(f"bias_ih_l{k}") + model.rnn.__getattr__(f"bias_hh_l{k}")
        assert torch.equal(total[4:8], torch.ones(4))
        assert not torch.equal(total[:4], torch.ones(4))


@pytest.mark.parametrize("kind", KINDS)
def test_gradcheck(kind):
    model = tiny(kind).double()
    ids = torch.randint(0, 5, (2, 3))
    h0 = tuple(s.double().requires_grad_() for s in model.init_state(2))

    def f(*state):
        logits, _ = model(ids, tuple(state))
        return logits

    assert torch.autograd.gradcheck(f, h0, eps=1e-6, atol=1e-5)


def test_state_shapes_and_detach():
    for kind, n in [("rnn", 1), ("gru", 1), ("lstm", 2), ("mingru", 1), ("minlstm", 1)]:
        model = tiny(kind)
        state = model.init_state(3)
        assert len(state) == n and all(s.shape == (2, 3, 4) for s in state)
        _, new = model(torch.zeros(3, 2, dtype=torch.long), state)
        assert all(not s.requires_grad for s in model.detach_state(new))


@pytest.mark.parametrize("kind", BUILTIN_KINDS)
def test_every_path_makes_its_tensors_on_the_models_device(kind):
    """On the meta device, a tensor made without device= would land on the
    CPU and the op mixing the two would raise: the GPU paths, checked here."""
    from charrnn.prime import read_prime
    from charrnn.stepper import FastStepper

    with torch.device("meta"):
        model = CharRNN(ModelConfig(kind, 10, embedding=4, hidden=8, layers=2)).eval()
        dropped = CharRNN(ModelConfig(kind, 10, embedding=4, hidden=8, layers=2, dropout=0.2, embed_dropout=0.2)).train()
    ids = torch.zeros(3, 5, dtype=torch.long, device="meta")
    logits, state = model(ids)
    trained, _ = dropped(ids)  # training's masks too
    _, state = model.step(ids[:, 0], model.init_state(3))
    stepper = FastStepper(model, 3)
    stepper.load_state(state)
    stepper.reorder(torch.tensor([2, 0, 0], device="meta"))  # beam search's parents
    outputs = [logits, trained, stepper.step(ids[:, 0]), read_prime(model, ids[0])[0], *state, *stepper.state()]
    assert {t.device.type for t in outputs} == {"meta"}


RECURRENT_KINDS = [k for k in KINDS if cells.get(k).recurrent]  # the kinds with a W_hh to drop


def _autocast(precision: str):
    from contextlib import nullcontext

    return torch.autocast("cpu", torch.bfloat16) if precision == "bf16" else nullcontext()


# bf16: FastGRU's C step casts W_hh. It takes bf16 only where oneDNN has it;
# elsewhere nn.GRU's own autocast path runs, where the forward matches
# exactly but the W_hh gradients of the two models differ by bf16 rounding
# (up to 0.9% relative on an AVX2-only EPYC), so the 1e-6 check cannot hold.
WEIGHT_DROP_CASES = [(kind, "fp32") for kind in RECURRENT_KINDS] + [
    pytest.param("gru", "bf16", marks=pytest.mark.skipif(not onednn_has_bf16(), reason="oneDNN has no bf16 here"))
]


@pytest.mark.parametrize("kind, precision", WEIGHT_DROP_CASES)
def test_weight_drop_masks_each_layers_w_hh_once_per_window(kind, precision):
    """Training with weight drop = the same model whose W_hh are the masked
    ones (drawn first, in layer order), forward and gradients; eval is the
    unmasked model."""
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(kind, vocab_size=5, embedding=3, hidden=4, layers=2, weight_drop=0.5)).train()
    plain = CharRNN(ModelConfig(kind, vocab_size=5, embedding=3, hidden=4, layers=2)).eval()
    plain.load_state_dict(model.state_dict())
    ids = torch.randint(0, 5, (2, 7))
    torch.manual_seed(1)
    with _autocast(precision):
        logits, _ = model(ids)
    torch.manual_seed(1)
    scales = [torch.nn.functional.dropout(torch.ones_like(model.rnn.weight_hh_l0), 0.5) for _ in range(2)]
    assert all(0 < (s == 0).sum() < s.numel() for s in scales)  # some entries dropped, not all
    with torch.no_grad():
        for k, s in enumerate(scales):
            getattr(plain.rnn, f"weight_hh_l{k}").mul_(s)
    with _autocast(precision):
        masked, _ = plain(ids)
    torch.testing.assert_close(logits, masked, atol=1e-6, rtol=0)
    logits.square().sum().backward()
    masked.square().sum().backward()
    for k, s in enumerate(scales):  # dL/dW = dL/d(masked W) * scale: zero where dropped
        got, want = getattr(model.rnn, f"weight_hh_l{k}").grad, getattr(plain.rnn, f"weight_hh_l{k}").grad * s
        torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    model.eval()
    plain.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(model(ids)[0], plain(ids)[0], atol=0, rtol=0)


@pytest.mark.parametrize("kind", RECURRENT_KINDS)
def test_weight_drop_draws_a_new_mask_for_each_window(kind):
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(kind, vocab_size=5, embedding=3, hidden=4, layers=2, weight_drop=0.5)).train()
    ids = torch.randint(0, 5, (2, 7))
    first, second = model(ids)[0], model(ids)[0]  # no other dropout: only the masks can differ
    assert not torch.allclose(first, second)


@pytest.mark.parametrize("kind", KINDS)
def test_embed_dropout_masks_each_streams_embedding_once_per_window(kind):
    """Training with embedding dropout = the plain model with each stream's
    embedding features scaled by one mask (drawn first) at every step,
    forward and gradients; eval is the plain model."""
    torch.manual_seed(0)
    shape = dict(vocab_size=5, embedding=3, hidden=4, layers=2)
    model = CharRNN(ModelConfig(kind, **shape, embed_dropout=0.5)).train()
    plain = CharRNN(ModelConfig(kind, **shape)).eval()
    plain.load_state_dict(model.state_dict())
    ids = torch.randint(0, 5, (4, 7))
    torch.manual_seed(1)
    logits, _ = model(ids)
    torch.manual_seed(1)
    keep = torch.empty(4, 1, 3).bernoulli_(0.5) / 0.5  # (B, 1, E): one mask per stream, all T steps
    assert 0 < (keep == 0).sum() < keep.numel()
    hook = plain.embed.register_forward_hook(lambda module, args, out: out * keep)
    masked, _ = plain(ids)
    torch.testing.assert_close(logits, masked, atol=1e-6, rtol=0)
    logits.square().sum().backward()
    masked.square().sum().backward()
    for (name, got), want in zip(model.named_parameters(), plain.parameters()):
        torch.testing.assert_close(got.grad, want.grad, atol=1e-6, rtol=0, msg=name)
    hook.remove()
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(ids)[0], plain(ids)[0], atol=0, rtol=0)


def test_embed_dropout_draws_a_new_mask_for_each_window():
    torch.manual_seed(0)
    model = CharRNN(ModelConfig("gru", vocab_size=5, embedding=3, hidden=4, layers=2, embed_dropout=0.5)).train()
    ids = torch.randint(0, 5, (2, 7))
    first, second = model(ids)[0], model(ids)[0]  # no other dropout: only the masks can differ
    assert not torch.allclose(first, second)
    with pytest.raises(Exception, match=r"embed dropout must be in \[0, 1\)"):
        ModelConfig("gru", 5, embed_dropout=1.0)


def test_weight_drop_is_refused_for_a_kind_without_w_hh():
    from charrnn.errors import CharRNNError

    for kind in ("mingru", "minlstm"):
        with pytest.raises(CharRNNError, match="weight drop acts on W_hh, and a min"):
            ModelConfig(kind, 5, weight_drop=0.2)
    with pytest.raises(CharRNNError, match=r"weight drop must be in \[0, 1\)"):
        ModelConfig("gru", 5, weight_drop=1.0)
