"""benchmarks/gpu_check.py on a machine without a GPU: its CPU-side
self-check runs every row and says that no GPU was found."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import make_text

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


@pytest.mark.slow
def test_the_gpu_check_runs_its_cpu_self_check(tmp_path):
    corpus = tmp_path / "play.txt"
    corpus.write_text(make_text(800), encoding="utf-8")
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")  # on a GPU machine too: the self-check, not the real run
    # A relative --corpus, from another directory: the script's subprocesses run in the repository.
    done = subprocess.run([sys.executable, str(SCRIPT), "--seconds", "1", "--corpus", corpus.name],
                          capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no CUDA GPU found" in done.stdout and "FAILED" not in done.stdout
    for row in ("tests marked cuda", "train fp32", "train bf16", "sample", "inspect", "fine-tune", "export + sample", "torchrun"):
        assert row in done.stdout
