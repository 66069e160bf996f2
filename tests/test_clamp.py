"""Units held at a value (charrnn/clamp.py): `charrnn sample --clamp`."""

from __future__ import annotations

import pytest
import torch

import charrnn
from charrnn import checkpoint as ckpt
from charrnn.clamp import Clamp, Unit, parse_clamps
from charrnn.corpus import Vocab
from charrnn.model import CharRNN, ModelConfig
from charrnn.stepper import FastStepper

from conftest import BUILTIN_KINDS, assert_one_line_error, make_text, run_cli

VOCAB = Vocab.from_chars(make_text(20))


def model_of(kind: str) -> CharRNN:
    torch.manual_seed(1)
    m = CharRNN(ModelConfig(kind, VOCAB.size, embedding=6, hidden=12, layers=2)).eval()
    with torch.no_grad():  # larger weights: argmax text that varies, and units that matter
        m.head.weight.mul_(4)
        for name, p in m.rnn.named_parameters():
            p.mul_(3 if "weight" in name else 1)
    return m


def held_argmax(model: CharRNN, prime: str, clamps: list[Clamp], length: int) -> str:
    """Greedy decoding a layer at a time with CharRNN's own cell steps,
    each clamped unit set after its layer's step: slow, obviously right."""
    cell, parts = model.cell, model.cell.state_names
    state = model.init_state(1)

    def step(i: int):
        nonlocal state
        x, layers = model.embed(torch.tensor([i])), []
        for k in range(model.config.layers):
            w = model.layer_weights(k)
            prev = tuple(s[k] for s in state)
            new, _ = cell.step(w.input(x), w.recurrent(prev[0]), prev)
            new = [t.clone() for t in new]
            for c in clamps:
                if c.unit.layer == k:
                    new[parts.index(c.unit.part)][:, c.unit.index] = c.value
            layers.append(new)
            x = new[0]
        state = tuple(torch.stack(p) for p in zip(*layers))
        return model.head(x)[0]

    with torch.no_grad():
        for ch in prime:
            logits = step(int(VOCAB.encode(ch)[0]))
        out = ""
        for _ in range(length):
            out += VOCAB.chars[int(logits.argmax())]
            logits = step(int(VOCAB.encode(out[-1])[0]))
    return out


def clamps_for(kind: str) -> list[str]:
    specs = ["l0.h:3=0.9", "l1.h:5=-0.8"]
    return specs + ["l1.c:7=2.5"] if kind == "lstm" else specs


@pytest.mark.parametrize("kind", BUILTIN_KINDS)
def test_a_clamped_sample_is_the_model_run_with_the_units_held(kind, tmp_path):
    model = model_of(kind)
    path = tmp_path / "m.safetensors"
    ckpt.save_checkpoint(path, model, VOCAB)
    m = charrnn.load(path, "cpu")
    specs = clamps_for(kind)
    clamped = m.sample(prime="BOB: the", length=80, temperature=0, clamp=specs)
    assert clamped == held_argmax(model, "BOB: the", list(parse_clamps(specs, model.config)), 80)
    sampled = m.sample(prime="BOB:", length=60, seed=3, clamp=specs)  # drawn: reproducible
    assert sampled == m.sample(prime="BOB:", length=60, seed=3, clamp=specs) and len(sampled) == 60
    assert sampled != m.sample(prime="BOB:", length=60, seed=3)  # and holding the units changes the text


@pytest.mark.parametrize("kind", BUILTIN_KINDS)
def test_the_stepper_holds_each_clamped_unit_on_every_step(kind):
    model = model_of(kind)
    clamps = parse_clamps(clamps_for(kind), model.config)
    stepper = FastStepper(model, 3, clamps=clamps)
    parts = model.cell.state_names
    ids = torch.tensor(VOCAB.encode(make_text(2)[:60]).astype("int64"))
    for i in ids:
        stepper.step(i.expand(3))
        state = stepper.state()  # (layers, B, H) per part
        for c in clamps:
            assert torch.all(state[parts.index(c.unit.part)][c.unit.layer, :, c.unit.index] == c.value)
    free = FastStepper(model, 1)
    for i in ids:
        free.step(i[None])
    assert not torch.equal(free.state()[0][:, 0], state[0][:, 0])  # the clamps changed the rest too


def test_one_row_can_be_held_alone():
    model = model_of("gru")
    stepper = FastStepper(model, 2, clamps=[Clamp(Unit(1, "h", 4), 0.0, row=1)])
    for i in VOCAB.encode("ALICE: the").astype("int64"):
        stepper.step(torch.tensor([i, i]))
        h = stepper.state()[0]
        assert h[1, 1, 4] == 0 and h[1, 0, 4] != 0


@pytest.mark.parametrize("spec, message", [
    ("l0.h:3", "UNIT=VALUE"),
    ("h3=1", "l<layer>.<part>:<index>"),
    ("l2.h:3=1", "layers 0 to 1"),
    ("l0.h:12=1", "units are 0 to 11"),
    ("l0.r:1=1", "r is a gate"),
    ("l0.c:1=1", "state parts are h"),
    ("l0.h:1=nan", "finite number"),
    ("l0.h:1=big", "finite number"),
])  # fmt: skip
def test_bad_clamps_are_refused_in_one_line(spec, message, tmp_path):
    path = tmp_path / "m.safetensors"
    ckpt.save_checkpoint(path, model_of("gru"), VOCAB)
    assert_one_line_error(run_cli("sample", path, "--clamp", spec, "--length", "5"), message)


def test_clamp_through_the_cli(tmp_path):
    path = tmp_path / "m.safetensors"
    ckpt.save_checkpoint(path, model_of("lstm"), VOCAB)
    args = ("sample", path, "--prime", "BOB:", "--length", "40", "--temperature", "0", "--no-echo")
    done = run_cli(*args, "--clamp", "l1.c:7=2.5", "--clamp", "l0.h:3=0.9")
    assert done.exit_code == 0
    want = charrnn.load(path, "cpu").sample(prime="BOB:", length=40, temperature=0, clamp=["l1.c:7=2.5", "l0.h:3=0.9"])
    assert done.stdout == want + "\n"
    assert_one_line_error(run_cli(*args, "--clamp", "l0.h:1=1", "--clamp", "l0.h:1=2"), "twice")
    assert_one_line_error(run_cli("sample", path, "--beam", "3", "--clamp", "l0.h:1=1"), "--beam")


def test_the_api_takes_a_clamp_alone_none_or_a_list_and_refuses_the_rest(tmp_path):
    path = tmp_path / "m.safetensors"
    ckpt.save_checkpoint(path, model_of("gru"), VOCAB)
    m = charrnn.load(path, "cpu")
    plain = m.sample(prime="BOB:", length=20, temperature=0)
    assert m.sample(prime="BOB:", length=20, temperature=0, clamp=None) == plain
    alone = m.sample(prime="BOB:", length=20, temperature=0, clamp="l0.h:3=0.9")
    assert alone == m.sample(prime="BOB:", length=20, temperature=0, clamp=["l0.h:3=0.9"])
    for bad in ([1.0], 5, {"l0.h:3": 1}):
        with pytest.raises(charrnn.CharRNNError, match="clamp takes strings"):
            m.sample(prime="BOB:", length=5, clamp=bad)
