"""`charrnn export`: weights-only models that every reader loads."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
import torch

from charrnn import checkpoint as ckpt
from charrnn.export import export_weights

from conftest import assert_one_line_error, make_text, run_cli


@pytest.mark.parametrize("dtype, tol", [("fp32", 0.0), ("bf16", 1e-2), ("fp16", 1e-3)])
def test_export_keeps_the_model_in_a_third_of_the_size(trained_run, tmp_path, dtype, tol):
    out = tmp_path / f"model-{dtype}.safetensors"
    done = run_cli("export", trained_run, out, "--dtype", dtype)
    assert done.exit_code == 0, done.output
    source, exported = ckpt.load_checkpoint(trained_run), ckpt.load_checkpoint(out)
    assert exported.run is None and exported.vocab == source.vocab and exported.config == source.config
    assert out.stat().st_size <= source.path.stat().st_size / 3
    theirs = source.model.state_dict()
    for name, value in exported.model.state_dict().items():
        torch.testing.assert_close(value, theirs[name], atol=tol, rtol=tol)
    assert f"({dtype})" in done.stderr and "of " in done.stderr


def test_an_export_samples_evaluates_inspects_fine_tunes_and_refuses_to_resume(trained_run, corpus_file, tmp_path):
    out = tmp_path / "model.safetensors"
    export_weights(trained_run, out)
    same = [run_cli("sample", path, "--seed", "2", "--length", "40").stdout for path in (trained_run, out)]
    assert same[0] == same[1] and len(same[0]) > 40
    scored = json.loads(run_cli("eval", out, corpus_file, "--json").stdout)
    assert scored["loss"] > 0
    assert run_cli("inspect", out, "--text", "hello there", "--out", tmp_path / "a.npz").exit_code == 0
    child = tmp_path / "child"
    done = run_cli("train", corpus_file, "--init-from", out, "--out", child, "--seq-len", "16", "--batch-size", "4",
                   "--max-steps", "2")  # fmt: skip
    assert done.exit_code == 0, done.output
    assert ckpt.load_checkpoint(child).run.parent["step"] is None  # an export has no run
    assert_one_line_error(run_cli("train", "--resume", out), "weights only")


def test_export_refuses_to_overwrite_and_a_range_it_cannot_hold(trained_run, tmp_path):
    out = tmp_path / "model.safetensors"
    out.write_text("keep me")
    assert_one_line_error(run_cli("export", trained_run, out), "exists")
    assert out.read_text() == "keep me"
    assert run_cli("export", trained_run, out, "--force").exit_code == 0
    loaded = ckpt.load_checkpoint(trained_run)
    with torch.no_grad():
        loaded.model.head.weight[0, 0] = 1e6  # beyond fp16's 65504
    big = tmp_path / "big.safetensors"
    ckpt.save_checkpoint(big, loaded.model, loaded.vocab)
    assert_one_line_error(run_cli("export", big, tmp_path / "half.safetensors", "--dtype", "fp16"), "overflow fp16")
    assert not (tmp_path / "half.safetensors").exists()


@pytest.mark.parametrize("flag", [[], ["--web"]], ids=["model", "page"])
def test_a_full_disk_keeps_the_previous_export(trained_run, tmp_path, monkeypatch, flag):
    out = tmp_path / "out"
    assert run_cli("export", trained_run, *flag, out).exit_code == 0
    before, real = out.read_bytes(), Path.write_bytes

    def filling(self, data):  # the disk fills 100 bytes in
        real(self, data[:100])
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_bytes", filling)
    done = run_cli("export", trained_run, *flag, out, "--force")
    monkeypatch.undo()
    assert_one_line_error(done, "no space left on the device to write", "kB needed")
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if "out" in p.name) == ["out"]  # no temp file (.out.*.tmp) left
