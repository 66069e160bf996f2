"""Fuzzing the checkpoint loader, bounded to stay fast (1,300 cases):
300 random bit flips, 300 truncations or header-length edits, 400 edits of
the metadata JSON and 300 of the tensors (wrong dtypes and shapes, one
dropped or added), both behind a valid checksum, and configs that declare
huge sizes. Every case ends as a valid load or one CharRNNError, never
another exception, and never by allocating what the config declares; a
training checkpoint that loads also resumes or refuses in one line.

CHARRNN_FUZZ_SCALE=20 runs 20 times the cases (a soak);
CHARRNN_FUZZ_REPORT=1 pytest -s prints the outcomes."""

from __future__ import annotations

import json
import struct
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from charrnn import checkpoint as ckpt
from charrnn.corpus import load_corpus
from charrnn.errors import CharRNNError
from charrnn.training.config import TrainConfig
from charrnn.training.launch import resume, train_on
from charrnn.model import ModelConfig

from conftest import FUZZ_OUTCOMES as OUTCOMES
from conftest import FUZZ_SCALE as SCALE
from conftest import make_text

FUZZ = settings(max_examples=300 * SCALE, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class Bytes(bytes):
    def __repr__(self) -> str:  # hypothesis prints its arguments on a failure
        return f"<{len(self)} bytes>"


@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> bytes:
    """A training checkpoint (weights, optimizer, carried state, RNG, run)."""
    d = tmp_path_factory.mktemp("fuzz")
    (d / "c.txt").write_text(make_text(120), encoding="utf-8")
    corpus = load_corpus(d / "c.txt")
    config = TrainConfig(seq_len=8, batch_size=4, max_steps=2, eval_every=2, device="cpu")
    train_on(corpus, config, d / "run", ModelConfig("lstm", corpus.vocab.size, embedding=3, hidden=5, layers=2))
    return Bytes((d / "run" / "last.safetensors").read_bytes())


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
    if data == valid:  # flips that cancel out
        OUTCOMES["bit flips", "unchanged"] += 1
        return
    result = outcome(tmp_path, bytes(data))
    assert result == "refused"  # every corruption is caught (the checksum, or the header's own checks)
    OUTCOMES["bit flips", result] += 1


@FUZZ
@given(cut=st.floats(0, 1, exclude_max=True), header=st.one_of(st.none(), st.integers(0, 2**64 - 1)))
def test_truncations_and_header_lengths(valid, tmp_path, cut, header):
    data = valid[: int(cut * len(valid))]
    if header is not None and len(data) >= 8:
        data = struct.pack("<Q", header) + data[8:]
    assert outcome(tmp_path, data) == "refused"
    OUTCOMES["truncations and header lengths", "refused"] += 1


def _rechecksummed(tensors: dict, meta: dict) -> bytes:
    """What someone who knows the format writes: any content, a valid checksum."""
    meta_json = json.dumps(meta, allow_nan=True)
    return st_save(tensors, metadata={"format": "charrnn", "meta": meta_json, "sha256": ckpt.digest(meta_json, tensors)})


def test_declared_sizes_are_checked_before_anything_is_allocated(valid, tmp_path):
    meta = json.loads(dict(json.loads(valid[8 : 8 + struct.unpack("<Q", valid[:8])[0]]))["__metadata__"]["meta"])
    for huge in ({"hidden": 10**9}, {"vocab_size": 10**12, "embedding": 10**6}, {"layers": 10**7},
                 {"embedding": 2**70}):  # past int64: torch's error would carry a C++ stack  # fmt: skip
        edited = {**meta, "model": {**meta["model"], **huge}}
        assert outcome(tmp_path, _rechecksummed(st_load(valid), edited)) == "refused"  # in milliseconds, no MemoryError


def _parts(valid: bytes) -> tuple[dict, dict]:
    header = json.loads(valid[8 : 8 + struct.unpack("<Q", valid[:8])[0]])
    return json.loads(header["__metadata__"]["meta"]), st_load(valid)


def _paths(value, prefix=()) -> list[tuple]:
    """Every place in a JSON document: dict keys and list positions."""
    found = [prefix] if prefix else []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, inner in items:
        found += _paths(inner, (*prefix, key))
    return found


HOSTILE = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.sampled_from([0, -1, 1, 2, 10**9, 10**18, 2**63]),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=4), st.lists(st.integers(-3, 3), max_size=3),
    st.lists(st.text(max_size=2), max_size=4), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)  # fmt: skip


def _edited(meta: dict, path: tuple, value) -> dict:
    """meta with the value at `path` replaced (or removed when value is DELETE)."""
    meta = json.loads(json.dumps(meta))
    *parents, last = path
    holder = meta
    for key in parents:
        holder = holder[key]
    if value is DELETE:
        del holder[last]
    else:
        holder[last] = value
    return meta


DELETE = object()


def outcome_and_resume(tmp_path: Path, data: bytes) -> str:
    """outcome(); a training checkpoint that loads must also resume for one
    step or refuse in one line (what resuming uses is checked at load)."""
    with tempfile.TemporaryDirectory(dir=tmp_path) as d:
        result = outcome(Path(d), data)
        if result == "loaded":
            loaded = ckpt.load_checkpoint(Path(d) / "x.safetensors")
            if loaded.run is not None:
                try:
                    resume(Path(d) / "x.safetensors", max_steps=loaded.run.step + 1)
                except CharRNNError as e:
                    assert "\n" not in str(e)
                    return "refused at resume"
                return "loaded and resumed"
        return result


@settings(max_examples=400 * SCALE, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_metadata_edits_behind_a_valid_checksum(valid, tmp_path, data):
    meta, tensors = _parts(valid)
    path = data.draw(st.sampled_from(_paths(meta)))
    value = data.draw(st.one_of(st.just(DELETE), HOSTILE))
    OUTCOMES["metadata edits", outcome_and_resume(tmp_path, _rechecksummed(tensors, _edited(meta, path, value)))] += 1


DTYPES = [torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.int32, torch.uint8, torch.bool]


@settings(max_examples=300 * SCALE, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_tensor_edits_behind_a_valid_checksum(valid, tmp_path, data):
    """Wrong dtypes, wrong or empty shapes, a tensor dropped or one added."""
    meta, tensors = _parts(valid)
    name = data.draw(st.sampled_from(sorted(tensors)))
    edit = data.draw(st.sampled_from(["dtype", "shape", "drop", "add"]))
    if edit == "dtype":
        tensors[name] = tensors[name].to(data.draw(st.sampled_from(DTYPES)))
    elif edit == "shape":
        shape = data.draw(st.lists(st.integers(0, 6), max_size=3))
        tensors[name] = torch.zeros(shape, dtype=tensors[name].dtype)
    elif edit == "drop":
        del tensors[name]
    else:
        tensors[name + "x"] = tensors[name].clone()
    OUTCOMES["tensor edits", outcome_and_resume(tmp_path, _rechecksummed(tensors, meta))] += 1
