"""Fuzzing the checkpoint loader, bounded to stay fast: 300 random bit
flips and 300 truncations or header-length edits of a real training
checkpoint, and configs that declare huge sizes behind a valid checksum.
Every case must end as a valid load or one CharRNNError, never another
exception, and never by allocating what the config declares."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from charrnn import checkpoint as ckpt
from charrnn.data import load_corpus
from charrnn.errors import CharRNNError
from charrnn.training.config import TrainConfig
from charrnn.training.loop import train
from charrnn.model import ModelConfig

from conftest import make_text

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> bytes:
    """A training checkpoint (weights, optimizer, carried state, RNG, run)."""
    d = tmp_path_factory.mktemp("fuzz")
    (d / "c.txt").write_text(make_text(120), encoding="utf-8")
    corpus = load_corpus(d / "c.txt")
    config = TrainConfig(seq_len=8, batch_size=4, max_steps=2, eval_every=2, device="cpu")
    train(corpus, config, d / "run", ModelConfig("lstm", corpus.vocab.size, embedding=3, hidden=5, layers=2))
    return (d / "run" / "last.safetensors").read_bytes()


def outcome(tmp_path: Path, data: bytes) -> str:
    path = tmp_path / "x.safetensors"
    path.write_bytes(data)
    try:
        loaded = ckpt.load_checkpoint(path)
    except CharRNNError as e:
        assert "\n" not in str(e)
        return "refused"
    assert loaded.model is not None
    return "loaded"


@FUZZ
@given(flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 7)), min_size=1, max_size=4))
def test_bit_flips(valid, tmp_path, flips):
    data = bytearray(valid)
    for where, bit in flips:
        data[int(where * len(data))] ^= 1 << bit
    outcome(tmp_path, bytes(data))


@FUZZ
@given(cut=st.floats(0, 1, exclude_max=True), header=st.one_of(st.none(), st.integers(0, 2**64 - 1)))
def test_truncations_and_header_lengths(valid, tmp_path, cut, header):
    data = valid[: int(cut * len(valid))]
    if header is not None and len(data) >= 8:
        data = struct.pack("<Q", header) + data[8:]
    assert outcome(tmp_path, data) == "refused"


def _rechecksummed(tensors: dict, meta: dict) -> bytes:
    """What someone who knows the format writes: any content, a valid checksum."""
    meta_json = json.dumps(meta, allow_nan=True)
    return st_save(tensors, metadata={"format": "charrnn", "meta": meta_json, "sha256": ckpt.digest(meta_json, tensors)})


def test_declared_sizes_are_checked_before_anything_is_allocated(valid, tmp_path):
    meta = json.loads(dict(json.loads(valid[8 : 8 + struct.unpack("<Q", valid[:8])[0]]))["__metadata__"]["meta"])
    for huge in ({"hidden": 10**9}, {"vocab_size": 10**12, "embedding": 10**6}, {"layers": 10**7}):
        edited = {**meta, "model": {**meta["model"], **huge}}
        assert outcome(tmp_path, _rechecksummed(st_load(valid), edited)) == "refused"  # in milliseconds, no MemoryError
