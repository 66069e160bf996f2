"""The batcher (charrnn/batching.py): generations that join and leave one
shared batch at any step each get the text they would get alone."""

from __future__ import annotations

import contextlib
import time

import pytest
import torch

import charrnn
from charrnn.api import sample_config
from charrnn.batching import Batcher
from charrnn.checkpoint import save_checkpoint
from charrnn.corpus import Vocab
from charrnn.model import CharRNN, ModelConfig

from conftest import BUILTIN_KINDS, make_text

VOCAB = Vocab.from_chars(make_text(30))


def loaded(tmp_path, kind: str) -> charrnn.Model:
    torch.manual_seed(4)
    net = CharRNN(ModelConfig(kind, VOCAB.size, embedding=6, hidden=16, layers=2))
    with torch.no_grad():
        net.head.weight.mul_(4)  # sharper distributions: texts that differ by seed
    save_checkpoint(tmp_path / "m.safetensors", net, VOCAB)
    return charrnn.load(tmp_path / "m.safetensors", "cpu")


@contextlib.contextmanager
def running(model: charrnn.Model):
    """A batcher over `model`, closed when the block ends."""
    batcher = Batcher(model.net, model.vocab)
    try:
        yield batcher
    finally:
        batcher.close()


def take(generation, n: int | None = None) -> str:
    """n more characters of a generation (None: the rest)."""
    out = []
    for chars in generation:
        out.append(chars[0])
        if n is not None and len(out) == n:
            break
    return "".join(out)


# Each: a prime and the controls, seeded so that the text alone is known.
REQUESTS = [
    ("BOB:", dict(length=70, temperature=0.8, seed=1)),
    ("", dict(length=40, temperature=1.0, seed=2)),
    ("ALICE: the", dict(length=90, temperature=0.8, top_k=3, seed=3)),
    ("CAROL:", dict(length=60, temperature=1.3, top_p=0.7, seed=4)),
    ("BOB:", dict(length=200, temperature=1.0, seed=5)),  # with a stop string: one this text will meet
]


@pytest.mark.parametrize("kind", BUILTIN_KINDS)
def test_generations_joining_and_leaving_get_their_own_text(kind, tmp_path):
    model = loaded(tmp_path, kind)
    requests = [*REQUESTS[:4], ("BOB:", REQUESTS[4][1] | {"stop": model.sample(prime="BOB:", **REQUESTS[4][1])[20]})]
    alone = [model.sample(prime=prime, **controls) for prime, controls in requests]
    assert len(set(alone)) == len(alone)
    with running(model) as batcher:
        gens = [batcher.submit(prime, sample_config(**controls)) for prime, controls in requests[:2]]
        got = [take(gens[0], 10), take(gens[1], 5)]  # two rows in flight
        gens += [batcher.submit(prime, sample_config(**controls)) for prime, controls in requests[2:]]  # three join
        got[0] += take(gens[0], 20)
        got += [take(g) for g in gens[2:]]  # they end at different steps: rows leave
        got[0] += take(gens[0])
        got[1] += take(gens[1])
        assert got == alone
        assert alone[4].endswith(requests[4][1]["stop"]) and len(alone[4]) <= 21  # the stop string ended it


def test_an_abandoned_generation_leaves_and_the_rest_go_on(tmp_path):
    model = loaded(tmp_path, "gru")
    with running(model) as batcher:
        left = batcher.submit("BOB:", sample_config(length=100_000, temperature=1.0, seed=9))
        stays = batcher.submit("", sample_config(length=300, temperature=0.9, seed=8))
        take(left, 5)
        left.close()  # the client went away
        assert take(stays) == model.sample(length=300, temperature=0.9, seed=8)
        deadline = time.monotonic() + 60
        while batcher.in_flight and time.monotonic() < deadline:
            time.sleep(0.01)
        assert batcher.in_flight == 0
        assert take(batcher.submit("", sample_config(length=0, temperature=1.0))) == ""  # nothing to draw: ends at once


def test_the_batcher_refuses_what_it_cannot_batch(tmp_path):
    with running(loaded(tmp_path, "gru")) as batcher:
        with pytest.raises(ValueError):
            batcher.submit("", sample_config(length=5, temperature=0))
        with pytest.raises(charrnn.CharRNNError, match="never seen"):
            batcher.submit("\u2603", sample_config(length=5))  # the prime is checked before it joins


def test_closing_ends_the_generations_in_flight_and_refuses_new_ones(tmp_path):
    model = loaded(tmp_path, "gru")
    batcher = Batcher(model.net, model.vocab)
    going = batcher.submit("BOB:", sample_config(length=100_000, temperature=1.0))
    take(going, 3)
    batcher.close()
    with pytest.raises(charrnn.CharRNNError, match="shutting down"):
        take(going)  # ends with an error, rather than waiting for ever
    with pytest.raises(charrnn.CharRNNError, match="shutting down"):
        batcher.submit("", sample_config(length=5, temperature=1.0))
