"""What shared machines and clusters do to a run: a second writer on its
directory, a --force whose new run fails at once, a full disk."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from charrnn import checkpoint as ckpt
from charrnn import rundir
from charrnn.model import CharRNN

from conftest import TINY, run_cli

ENV = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", PYTHONUNBUFFERED="1")


def start_training(corpus: Path, out: Path, log: Path, *extra: str) -> subprocess.Popen:
    with open(log, "wb") as f:
        return subprocess.Popen([sys.executable, "-m", "charrnn", "train", str(corpus), "--out", str(out), *TINY,
                                 "--device", "cpu", "--max-steps", "1000000", "--eval-every", "2", *extra],
                                env=ENV, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)  # fmt: skip


def wait_for(path: Path, proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, log.read_text(errors="replace")
        assert time.monotonic() < deadline, f"no {path.name} in {timeout} s"
        time.sleep(0.02)


@pytest.fixture
def running(tmp_path: Path, corpus_file: Path):
    """A training process writing tmp_path/run; killed at the end."""
    run, log = tmp_path / "run", tmp_path / "train.log"
    proc = start_training(corpus_file, run, log)
    wait_for(run / rundir.LAST, proc, log)
    yield run, proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_a_second_writer_is_refused_naming_the_holder(running, corpus_file):
    run, proc = running
    holder = f"process {proc.pid} on {socket.gethostname()}"
    for args in (["--resume", run, "--max-steps", "2000000"], [corpus_file, "--out", run, "--force", *TINY]):
        done = run_cli("train", *args)
        assert done.exit_code == 1, done.output
        assert done.output.strip().splitlines()[-1] == f"error: {run} is in use by {holder}: one run at a time per directory"
    ckpt.load_checkpoint(run, prefer=rundir.LAST)  # the running writer's files are untouched and whole
    assert proc.poll() is None


def test_a_dead_holder_does_not_block(running):
    run, proc = running
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    step = ckpt.load_checkpoint(run, prefer=rundir.LAST).run.step
    done = run_cli("train", "--resume", run, "--max-steps", str(step + 2))
    assert done.exit_code == 0, done.output
    assert ckpt.load_checkpoint(run, prefer=rundir.LAST).run.step == step + 2


def test_readers_always_see_a_whole_checkpoint_while_training_writes(running):
    run, proc = running
    loads, deadline = 0, time.monotonic() + 3
    steps = set()
    while time.monotonic() < deadline:
        steps.add(ckpt.load_checkpoint(run, prefer=rundir.LAST).run.step)  # raises on a torn file
        loads += 1
    assert proc.poll() is None and loads > 20 and len(steps) > 1, (loads, steps)


def test_a_model_too_big_for_memory_is_a_one_line_error(tmp_path, corpus_file, monkeypatch):
    def cannot_allocate(self, *args, **kwargs):  # what the CPU allocator says for --hidden 100000000
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 102400000000 bytes")

    monkeypatch.setattr(CharRNN, "to", cannot_allocate)
    done = run_cli("train", corpus_file, "--out", tmp_path / "run", "--hidden", "5000", "--max-steps", "1")
    line = done.output.strip().splitlines()[-1]
    assert done.exit_code == 1 and "Traceback" not in done.output
    assert line.startswith("error: out of memory on cpu building the model (") and "--hidden" in line, line


@pytest.mark.parametrize(("option", "value"), [("--lr", "1e39"), ("--weight-decay", "1e30"), ("--lr", "nan")])
def test_optimizer_settings_past_fp32_are_refused(tmp_path, corpus_file, option, value):
    done = run_cli("train", corpus_file, "--out", tmp_path / "run", *TINY, option, value, "--max-steps", "1")
    line = done.output.strip().splitlines()[-1]
    assert done.exit_code == 1 and line.startswith("error: ") and option in line, line

def test_force_keeps_the_old_run_until_the_new_one_saves(trained_run, corpus_file, monkeypatch):
    before = {name: (trained_run / name).read_bytes() for name in rundir.RUN_FILES[:3]}

    def out_of_memory(self, ids, state=None):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(CharRNN, "forward", out_of_memory)
    done = run_cli("train", corpus_file, "--out", trained_run, "--force", *TINY, "--max-steps", "4")
    assert done.exit_code == 1 and "Traceback" not in done.output
    assert done.output.strip().splitlines()[-1].startswith("error: out of memory on cpu at step 1")
    assert "--batch-size" in done.output
    assert {name: (trained_run / name).read_bytes() for name in before} == before  # nothing of the old run lost
    monkeypatch.undo()
    done = run_cli("train", corpus_file, "--out", trained_run, "--force", *TINY, "--max-steps", "3",
                   "--eval-every", "100")  # fmt: skip
    assert done.exit_code == 0, done.output
    new = ckpt.load_checkpoint(trained_run, prefer=rundir.LAST).run
    assert new.step == 3 and (trained_run / rundir.BEST).exists()
    assert [e["step"] for e in rundir.read_metrics(trained_run)] == [3]  # the old log is gone with the old run


def test_an_unwritable_run_directory_is_found_before_training(tmp_path, corpus_file):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    done = run_cli("train", corpus_file, "--out", blocker / "run", *TINY, "--max-steps", "2")
    assert done.exit_code == 1, done.output
    assert done.output.strip().splitlines()[-1].startswith(f"error: cannot write to run directory {blocker / 'run'}")
    if os.geteuid() != 0:  # root may write anywhere: the permission case needs a user
        locked = tmp_path / "ro"
        locked.mkdir()
        locked.chmod(0o500)
        try:
            done = run_cli("train", corpus_file, "--out", locked / "run", *TINY, "--max-steps", "2")
        finally:
            locked.chmod(0o700)
        assert done.exit_code == 1 and "cannot write to run directory" in done.output


def _train_until_the_disk_is_full(corpus_file, run, monkeypatch) -> str:
    """Train with the caller's full-disk patch in place; the error line it ends with."""
    done = run_cli("train", corpus_file, "--out", run, *TINY, "--max-steps", "40", "--eval-every", "2")
    monkeypatch.undo()
    assert done.exit_code == 1, done.output
    return done.output.strip().splitlines()[-1]


def test_a_full_disk_during_a_save_keeps_the_previous_checkpoints(tmp_path, corpus_file, monkeypatch):
    run, real, writes = tmp_path / "run", Path.write_bytes, []

    def filling(self, data):  # the disk fills 100 bytes into the fifth file written
        writes.append(self)
        if len(writes) < 5:
            return real(self, data)
        with open(self, "wb") as f:
            f.write(data[:100])
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_bytes", filling)
    line = _train_until_the_disk_is_full(corpus_file, run, monkeypatch)
    assert line.startswith("error: no space left on the device to write") and "kB needed" in line, line
    assert sorted(p.name for p in run.iterdir() if p.name.endswith(".tmp")) == []
    last = ckpt.load_checkpoint(run, prefer=rundir.LAST)  # the previous save, whole
    assert last.run.step == 2
    # best is written before last: it may be the newer one, and resuming from last rewrites it
    assert ckpt.load_checkpoint(run, prefer=rundir.BEST).run.step in (2, 4)
    assert run_cli("train", "--resume", run, "--max-steps", str(last.run.step + 2)).exit_code == 0



def test_a_full_disk_during_a_metrics_append_leaves_no_torn_line(tmp_path, corpus_file, monkeypatch):
    run, real_write, appends = tmp_path / "run", os.write, []

    def filling(fd, data):  # the second append (step 6; step 2 rewrote the file) gets 10 bytes in, then the disk is full
        if not os.readlink(f"/proc/self/fd/{fd}").endswith(rundir.METRICS):
            return real_write(fd, data)
        appends.append(fd)
        if len(appends) == 2:
            return real_write(fd, bytes(data[:10]))
        if len(appends) > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", filling)
    line = _train_until_the_disk_is_full(corpus_file, run, monkeypatch)
    assert line.startswith("error: no space left on the device to append to") and "kB needed" in line, line
    lines = (run / rundir.METRICS).read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [2, 4]  # whole lines only: the torn one was cut off
    last = ckpt.load_checkpoint(run, prefer=rundir.LAST)
    assert last.run.step == 6 and [e["step"] for e in last.run.metrics] == [2, 4, 6]  # the checkpoint holds it
    assert run_cli("train", "--resume", run, "--max-steps", "8").exit_code == 0
    assert [e["step"] for e in rundir.read_metrics(run)] == [2, 4, 6, 8]

def test_sample_output_is_all_or_nothing(trained_run, tmp_path, monkeypatch):
    import charrnn.api as api

    def breaks(*args, **kw):
        yield ["a"]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(api, "generate", breaks)  # what `charrnn sample` draws from, through the API
    out = tmp_path / "samples.txt"
    done = run_cli("sample", trained_run, "--output", out, "--length", "50")
    assert done.exit_code == 1 and "no space left on the device to write" in done.output
    assert sorted(p.name for p in tmp_path.iterdir() if "samples" in p.name) == []  # no half file, no temp


def test_files_get_the_users_umask(trained_run, tmp_path):
    previous = os.umask(0o027)
    try:
        assert run_cli("train", "--resume", trained_run, "--max-steps", "22").exit_code == 0
        assert run_cli("inspect", trained_run, "--text", "ALICE: the quick brown fox jumps over a lazy dog.\n" * 3, "--report", tmp_path / "r.json").exit_code == 0
    finally:
        os.umask(previous)
    for path in (trained_run / rundir.LAST, trained_run / rundir.METRICS, tmp_path / "r.json"):
        assert path.stat().st_mode & 0o777 == 0o640, path  # 0666 less the umask: never world-writable
