"""`charrnn --version`: the facts a bug report needs, from charrnn/about.py."""

from __future__ import annotations

import json
import platform
from importlib import metadata

import pytest
import torch

from charrnn import about
from charrnn import device as dev
from charrnn.cells import gru_cpu

from conftest import run_cli


def version_lines() -> list[str]:
    result = run_cli("--version")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    return result.stdout.splitlines()


def test_version_names_charrnn_torch_python_and_the_machine():
    lines = version_lines()
    assert lines[0] == f"charrnn {metadata.version('charrnn')}, torch {torch.__version__}, Python {platform.python_version()}"
    assert lines[1].startswith(f"{platform.platform(terse=True)}, {platform.machine()}: ")
    assert lines[1].endswith(f", {torch.get_num_threads()} threads")
    assert lines[2] == "devices: cpu; cuda: none; mps: no"  # conftest hides any GPU from tests not marked for one
    assert lines[4] == f"GRU C step: {gru_cpu.c_step_problem() or 'built'}"
    assert len(lines) == 5 and all(len(line) < 200 for line in lines[:4])


def test_version_is_eager_and_listed_in_help():
    assert run_cli("--version", "train", "--help").stdout.splitlines()[0].startswith("charrnn ")
    assert "--version" in run_cli("--help").stdout


@pytest.mark.parametrize(("native", "onednn", "said"), [
    (True, True, "bf16 on this CPU: native; --precision auto there: bf16"),
    (False, True, "bf16 on this CPU: emulated by oneDNN, not native; --precision auto there: fp32"),
    (False, False, "bf16 on this CPU: none (bf16 recurrences run in fp32); --precision auto there: fp32"),
])  # fmt: skip
def test_version_says_what_bf16_this_cpu_has_and_what_auto_picks(monkeypatch, native, onednn, said):
    monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda: native)
    monkeypatch.setattr(dev, "onednn_has_bf16", lambda: onednn)
    assert version_lines()[3] == said


def test_version_names_each_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: "NVIDIA A" if i < 2 else "NVIDIA B")
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert version_lines()[2] == "devices: cpu; cuda: 2 x NVIDIA A, 1 x NVIDIA B (CUDA 12.8); mps: yes"


def test_version_says_why_the_gru_c_step_is_not_in_use(monkeypatch):
    monkeypatch.setattr(gru_cpu, "gru_cstep", None)
    monkeypatch.setattr(gru_cpu, "_c_step_error", "the GRU's C step is an older build (ABI 2, this charrnn needs 3)")
    assert version_lines()[4] == ("GRU C step: the GRU's C step is an older build (ABI 2, this charrnn needs 3)"
                                  " (until then the GRU trains through PyTorch ops, slower)")  # fmt: skip


def test_the_facts_are_plain_values():
    facts = about.facts()
    assert json.loads(json.dumps(facts)) == facts
    assert {"charrnn", "torch", "python", "platform", "machine", "cpu", "cuda", "mps", "native_bf16", "onednn_bf16",
            "cpu_precision_auto", "gru_c_step"} <= set(facts)  # fmt: skip
