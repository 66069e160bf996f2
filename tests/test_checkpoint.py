from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

from charrnn import checkpoint as ckpt
from charrnn import rundir
from charrnn.corpus import Vocab
from charrnn.errors import CharRNNError
from charrnn.model import CharRNN, ModelConfig

from conftest import BUILTIN_KINDS, run_cli


def small_model(kind="gru") -> tuple[CharRNN, Vocab]:
    vocab = Vocab.from_chars("abc\n한🙂")
    torch.manual_seed(1)
    return CharRNN(ModelConfig(kind, vocab.size, embedding=3, hidden=5, layers=2)), vocab


@pytest.mark.parametrize("kind", BUILTIN_KINDS)
def test_save_load_gives_same_logits(tmp_path, kind):
    model, vocab = small_model(kind)
    path = tmp_path / "m.safetensors"
    ckpt.save_checkpoint(path, model, vocab)
    loaded = ckpt.load_checkpoint(path)
    assert loaded.vocab == vocab and loaded.config == model.config and loaded.run is None
    ids = torch.randint(0, vocab.size, (2, 7))
    model.eval()
    assert torch.equal(model(ids)[0], loaded.model(ids)[0])


def test_run_directory_means_best(tmp_path):
    model, vocab = small_model()
    ckpt.save_checkpoint(tmp_path / rundir.BEST, model, vocab)
    assert rundir.checkpoint_path(tmp_path) == tmp_path / rundir.BEST
    with pytest.raises(CharRNNError, match="has no last"):
        rundir.checkpoint_path(tmp_path, prefer=rundir.LAST)


def saved(tmp_path) -> Path:
    model, vocab = small_model()
    path = tmp_path / "m.safetensors"
    ckpt.save_checkpoint(path, model, vocab)
    return path


def test_truncated_is_refused(tmp_path):
    path = saved(tmp_path)
    data = path.read_bytes()
    for cut in (3, 100, len(data) // 2, len(data) - 1):
        path.write_bytes(data[:cut])
        with pytest.raises(CharRNNError, match="not a charrnn checkpoint|corrupt or truncated"):
            ckpt.load_checkpoint(path)


def test_bit_flip_is_refused(tmp_path):
    path = saved(tmp_path)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01  # inside the tensor bytes
    path.write_bytes(bytes(data))
    with pytest.raises(CharRNNError, match="checksum does not match"):
        ckpt.load_checkpoint(path)


def test_newer_format_version_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(ModelConfig, "format_version", lambda config: 99)
    path = saved(tmp_path)
    with pytest.raises(CharRNNError, match="format version 99, newer"):
        ckpt.load_checkpoint(path)


def test_a_model_without_weight_drop_stays_readable_by_version_1_and_one_with_it_asks_for_an_upgrade(tmp_path, monkeypatch):
    model, vocab = small_model()
    dropped = CharRNN(ModelConfig("gru", vocab.size, embedding=3, hidden=5, layers=2, weight_drop=0.25))
    ckpt.save_checkpoint(tmp_path / "plain.safetensors", model, vocab)
    ckpt.save_checkpoint(tmp_path / "dropped.safetensors", dropped, vocab)
    assert ckpt.load_checkpoint(tmp_path / "dropped.safetensors").config.weight_drop == 0.25
    for name, version in (("plain", 1), ("dropped", 2)):
        path = tmp_path / f"{name}.safetensors"
        meta = json.loads(ckpt._read_header(path, path.read_bytes())["meta"])
        assert meta["version"] == version and ("weight_drop" in meta["model"]) == (name == "dropped")
    monkeypatch.setattr(ckpt, "VERSION", 1)  # charrnn before weight drop
    assert ckpt.load_checkpoint(tmp_path / "plain.safetensors").config == model.config
    with pytest.raises(CharRNNError, match="format version 2, newer than this charrnn reads \\(1\\): upgrade"):
        ckpt.load_checkpoint(tmp_path / "dropped.safetensors")


def test_embedding_dropout_is_format_version_3_and_charrnn_before_it_asks_for_an_upgrade(tmp_path, monkeypatch):
    _, vocab = small_model()
    both = CharRNN(ModelConfig("gru", vocab.size, embedding=3, hidden=5, layers=2, weight_drop=0.25, embed_dropout=0.1))
    path = tmp_path / "both.safetensors"
    ckpt.save_checkpoint(path, both, vocab)
    meta = json.loads(ckpt._read_header(path, path.read_bytes())["meta"])
    assert meta["version"] == 3 and meta["model"]["embed_dropout"] == 0.1
    assert ckpt.load_checkpoint(path).config == both.config
    monkeypatch.setattr(ckpt, "VERSION", 2)  # charrnn with weight drop, before embedding dropout
    with pytest.raises(CharRNNError, match="format version 3, newer than this charrnn reads \\(2\\): upgrade"):
        ckpt.load_checkpoint(path)


def test_other_files_are_refused(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello, I am not a checkpoint")
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, foreign)
    for p in (text, empty):
        with pytest.raises(CharRNNError, match="not a charrnn checkpoint"):
            ckpt.load_checkpoint(p)
    with pytest.raises(CharRNNError, match="not a charrnn checkpoint"):
        ckpt.load_checkpoint(foreign)


class Trap:
    """Unpickling this creates a marker file: proof that code from the file ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("container", ["pickle", "torch.save"])
def test_booby_trapped_pickle_runs_no_code(tmp_path, container, corpus_file):
    marker = tmp_path / "PWNED"
    trap = tmp_path / "model.safetensors"
    if container == "pickle":
        trap.write_bytes(pickle.dumps(Trap(marker)))
    else:
        torch.save({"model": Trap(marker)}, trap)
    # sanity: the trap does fire when unpickled
    pickle.loads(pickle.dumps(Trap(tmp_path / "control")))
    assert (tmp_path / "control").exists()

    for args in (["sample", trap], ["eval", trap, corpus_file], ["train", "--resume", trap]):
        result = run_cli(*args)
        assert result.exit_code == 1, (args, result.output)
        assert "not a charrnn checkpoint" in result.stderr
    with pytest.raises(CharRNNError):
        ckpt.load_checkpoint(trap)
    assert not marker.exists()


def test_checkpoint_is_plain_safetensors(tmp_path):
    """Other tools can read the weights with the safetensors library alone."""
    from safetensors import safe_open

    path = saved(tmp_path)
    with safe_open(str(path), "pt") as f:
        assert "model.head.weight" in f.keys()
        assert f.metadata()["format"] == "charrnn"


def _crafted(tmp_path, meta_json: str) -> Path:
    """A file with a valid checksum around arbitrary metadata: what someone
    who knows the format could write."""
    from safetensors.torch import save as st_save

    model, _ = small_model()
    tensors = {f"model.{k}": v.contiguous() for k, v in model.state_dict().items()}
    digest = ckpt.digest(meta_json, tensors)
    path = tmp_path / "crafted.safetensors"
    path.write_bytes(st_save(tensors, metadata={"format": "charrnn", "meta": meta_json, "sha256": digest}))
    return path


def _meta(**changes) -> str:
    import json

    model, vocab = small_model()
    meta = {"format": "charrnn", "version": 1, "model": model.config.to_dict(), "vocab": list(vocab.chars)}
    meta.update(changes)
    return json.dumps(meta)


@pytest.mark.parametrize(
    "meta_json",
    [
        "[]",
        "{not json",
        '{"version": 1}',
        _meta(version=0),
        _meta(version="1"),
        _meta(vocab=["a", "b"]),
        _meta(model={"kind": "lstm", "vocab_size": 7, "embedding": 3, "hidden": 10**9, "layers": 2}),
        _meta(model={"kind": "transformer", "vocab_size": 7}),
        _meta(run={"step": "many"}),
    ],
)
def test_crafted_checkpoints_are_refused_in_one_line(tmp_path, meta_json):
    path = _crafted(tmp_path, meta_json)
    with pytest.raises(CharRNNError):
        ckpt.load_checkpoint(path)
    result = run_cli("sample", path, "--length", "3")
    assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1, result.output
