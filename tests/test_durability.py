"""Durability: training survives SIGKILL at any moment and Ctrl-C, and the
atomic writer never leaves a half-written target.

The kill test keeps ONE run directory and, cycle after cycle, starts
`charrnn train --resume` on it and SIGKILLs it at a random moment, so every
cycle costs one process start and exercises resume too."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from charrnn import checkpoint as ckpt
from charrnn import files, rundir
from charrnn.corpus import Vocab
from charrnn.errors import CharRNNError
from charrnn.model import CharRNN, ModelConfig
from charrnn.training.config import TrainConfig
from charrnn.training.launch import resume, train_on

from conftest import make_text

# A bigger-than-tiny model so a save (serialise, hash, write, fsync, rename)
# is a good share of each step-and-save cycle: kills often land mid-save.
KILL_MODEL = ["--hidden", "64", "--embedding", "8", "--layers", "1", "--seq-len", "16", "--batch-size", "4"]
SMALL_MODEL = ["--hidden", "16", "--embedding", "4", "--layers", "1", "--seq-len", "16", "--batch-size", "4"]
BIG_STEPS = "1000000"
KILLS = 8  # cycle 4 starts early, 2 and 7 aim at a write in flight
DEADLINE_S = 90.0  # generous: a loaded CI machine may start torch slowly

# What an interrupted write_bytes_atomic can leave: mkstemp's hidden temp file.
TEMP_NAME = re.compile(r"^\.(last\.safetensors|best\.safetensors|metrics\.jsonl)\.[A-Za-z0-9_]+\.tmp$")


# --------------------------------------------------------------------------
# Helpers


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", PYTHONUNBUFFERED="1")
    return env


def _start(args: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    # stderr gets one line per evaluation: send it to a file, never a pipe
    # that nobody drains (a full pipe would block the trainer).
    out = open(log, "wb")
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "charrnn", "train", *args],
            cwd=cwd,
            env=_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    finally:
        out.close()


def _run(args: list[str], cwd: Path, timeout: float = DEADLINE_S) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "charrnn", "train", *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
    )


def _stamp(path: Path):
    """Changes whenever the file is replaced (each atomic save is a new inode)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _wait_for_new_save(proc: subprocess.Popen, last: Path, before, log: Path) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while _stamp(last) in (None, before):
        if proc.poll() is not None:
            pytest.fail(f"trainer exited with {proc.returncode} before saving:\n{log.read_text(errors='replace')}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail(f"no new {last.name} within {DEADLINE_S} s:\n{log.read_text(errors='replace')}")
        time.sleep(0.005)


def _wait_for_temp(proc: subprocess.Popen, run_dir: Path, log: Path) -> None:
    """Spin until a save's temp file exists: the write is in flight."""
    deadline = time.monotonic() + DEADLINE_S
    while not any(name.endswith(".tmp") for name in os.listdir(run_dir)):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail(f"never saw a save in flight:\n{log.read_text(errors='replace')}")


def _kill(proc: subprocess.Popen, log: Path) -> None:
    if proc.poll() is not None:
        pytest.fail(f"trainer exited by itself ({proc.returncode}) before the kill:\n{log.read_text(errors='replace')}")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=DEADLINE_S)
    assert proc.returncode == -signal.SIGKILL


def _check_metrics(run_dir: Path, last: ckpt.Checkpoint) -> bool:
    """metrics.jsonl after a crash: every complete line is JSON. Returns True
    if the last line was torn (no newline and not JSON). The file may lack
    the newest record (killed between saving `last` and appending) but never
    holds a record `last` does not: it is appended only after the save."""
    text = (run_dir / rundir.METRICS).read_text(encoding="utf-8")
    lines = text.split("\n")
    tail = lines.pop()  # "" when the file ends with a newline
    records = [json.loads(line) for line in lines]  # raises on any bad complete line
    torn = False
    if tail:
        try:
            records.append(json.loads(tail))
        except ValueError:
            torn = True
    steps = [r["step"] for r in records]
    saved = [r["step"] for r in last.run.metrics]
    assert steps in (saved, saved[:-1]), (steps[-5:], saved[-5:])
    return torn


def _check_run_dir(run_dir: Path) -> tuple[ckpt.Checkpoint, list[str], bool]:
    """Everything a crash may leave must load and verify; returns last, the
    leftover temp files, and whether metrics.jsonl had a torn last line."""
    last, _, leftovers, torn = _check_run_dir_full(run_dir)
    return last, leftovers, torn


def _check_run_dir_full(run_dir: Path):
    last = ckpt.load_checkpoint(run_dir, prefer=rundir.LAST)  # verifies the checksum
    assert last.run is not None and last.path == run_dir / rundir.LAST
    best = None
    if (run_dir / rundir.BEST).exists():
        best = ckpt.load_checkpoint(run_dir, prefer=rundir.BEST)
        assert best.run is not None
    if last.run.best_val_loss is not None:
        # best is written before last, so it holds a model at least as good
        # as the best val loss last records (better, if a crash fell between)
        assert best is not None and best.run.best_val_loss <= last.run.best_val_loss
    leftovers = sorted(p.name for p in run_dir.iterdir() if p.name not in rundir.RUN_FILES)
    for name in leftovers:
        # Only an interrupted atomic write's hidden temp file may be left, and
        # it must never be what a run directory resolves to.
        assert TEMP_NAME.match(name), f"unexpected file in the run directory: {name}"
    for prefer in (rundir.LAST, rundir.BEST):
        if (run_dir / prefer).exists():
            assert rundir.checkpoint_path(run_dir, prefer) == run_dir / prefer
    torn = _check_metrics(run_dir, last)
    return last, best, leftovers, torn


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    p = tmp_path / "play.txt"
    p.write_text(make_text(), encoding="utf-8")
    return p


# --------------------------------------------------------------------------
# 1. SIGKILL at random moments, resume after every one


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume(tmp_path: Path, corpus: Path):
    rng = random.Random(20240611)
    run_dir = tmp_path / "run"
    last_path = run_dir / rundir.LAST
    log = tmp_path / "train.log"
    t_start = time.monotonic()

    step = None  # the step of last.safetensors after the previous kill
    temps_seen: set[str] = set()
    mid_write_kills = 0
    torn_lines = 0
    for cycle in range(KILLS):
        if step is None:  # the first process starts the run
            args = [str(corpus), "--out", str(run_dir), *KILL_MODEL, "--device", "cpu"]
        else:
            args = ["--resume", str(run_dir)]
        args += ["--max-steps", BIG_STEPS, "--eval-every", "1"]
        before = _stamp(last_path)
        proc = _start(args, tmp_path, log)
        early = step is not None and cycle % 5 == 4
        mid_save = cycle % 5 == 2
        if early:
            # Sometimes anywhere from start-up on: imports, loading `last`,
            # rewriting metrics.jsonl, the first step or the first save.
            time.sleep(rng.uniform(0.0, 2.5))
            if proc.poll() is not None:
                pytest.fail(f"trainer exited early ({proc.returncode}):\n{log.read_text(errors='replace')}")
        else:
            # Once it has saved (so this process's resume did work), kill it
            # at a random phase of its step / evaluate / save cycle.
            _wait_for_new_save(proc, last_path, before, log)
            if mid_save:  # aim at a write in flight (leftover temps show the hits)
                _wait_for_temp(proc, run_dir, log)
            else:
                time.sleep(rng.uniform(0.0, 0.2))
        _kill(proc, log)

        last, best, leftovers, torn = _check_run_dir_full(run_dir)
        mid_write_kills += bool(set(leftovers) - temps_seen)
        temps_seen.update(leftovers)
        torn_lines += torn
        if step is not None:
            if early:
                assert last.run.step >= step
            else:
                assert last.run.step > step, f"cycle {cycle}: resume did not advance past step {step}"
        step = last.run.step

    # A final resume runs to its end: exactly 3 more steps, a clean exit.
    result = _run(["--resume", str(run_dir), "--max-steps", str(step + 3)], tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"resuming {last_path} at step {step:,}" in " ".join(result.stderr.split())
    final, _, torn = _check_run_dir(run_dir)
    assert final.run.step == step + 3 and not torn
    text = (run_dir / rundir.METRICS).read_text(encoding="utf-8")
    assert text.endswith("\n")  # resume rewrote it whole from the checkpoint
    assert [json.loads(line)["step"] for line in text.splitlines()] == [r["step"] for r in final.run.metrics]

    elapsed = time.monotonic() - t_start
    print(
        f"\n{KILLS} kills in {elapsed:.1f} s; final step {final.run.step};"
        f" kills mid-write (left a temp file): {mid_write_kills}; torn metrics lines: {torn_lines}"
    )


# --------------------------------------------------------------------------
# 2. Ctrl-C


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: signal.Signals(s).name)
def test_a_stop_signal_saves_last_and_exits_128_plus_its_number(tmp_path: Path, corpus: Path, sig: int):
    run_dir = tmp_path / "run"
    last_path = run_dir / rundir.LAST
    log = tmp_path / "train.log"
    args = [str(corpus), "--out", str(run_dir), *SMALL_MODEL, "--device", "cpu"]
    proc = _start(args + ["--max-steps", BIG_STEPS, "--eval-every", "2"], tmp_path, log)
    _wait_for_new_save(proc, last_path, None, log)
    seen = ckpt.load_checkpoint(run_dir, prefer=rundir.LAST).run.step
    time.sleep(0.1)
    proc.send_signal(sig)
    try:
        rc = proc.wait(timeout=DEADLINE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"trainer ignored {signal.Signals(sig).name}:\n{log.read_text(errors='replace')}")
    output = log.read_text(errors="replace")
    assert rc == 128 + sig, output
    assert "Traceback" not in output
    assert "interrupted; continue with: charrnn train --resume" in " ".join(output.split())
    assert f"interrupted ({signal.Signals(sig).name})" in output

    last, leftovers, _ = _check_run_dir(run_dir)
    assert leftovers == []  # an orderly stop leaves no temp file
    assert last.run.step >= seen

    result = _run(["--resume", str(run_dir), "--max-steps", str(last.run.step + 3)], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    resumed = ckpt.load_checkpoint(run_dir, prefer=rundir.LAST)
    assert resumed.run.step == last.run.step + 3


@pytest.mark.slow
def test_sigterm_at_a_random_moment_then_resume_is_bit_exact(tmp_path: Path, corpus: Path):
    """What a preempted cluster job does: SIGTERM somewhere mid-run, then
    --resume to the end; the weights equal an uninterrupted run's, dropout
    and all."""
    steps = "120"
    args = [str(corpus), *KILL_MODEL, "--dropout", "0.3", "--layers", "2", "--device", "cpu", "--precision", "fp32",
            "--max-steps", steps, "--eval-every", "7", "--seed", "5"]  # fmt: skip
    straight = _run([*args, "--out", str(tmp_path / "straight")], tmp_path)
    assert straight.returncode == 0, straight.stderr
    run_dir, log = tmp_path / "cut", tmp_path / "cut.log"
    proc = _start([*args, "--out", str(run_dir)], tmp_path, log)
    _wait_for_new_save(proc, run_dir / rundir.LAST, None, log)
    time.sleep(random.Random().uniform(0.0, 0.4))
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=DEADLINE_S)
    cut = ckpt.load_checkpoint(run_dir, prefer=rundir.LAST).run.step
    assert rc == (143 if cut < int(steps) else 0), log.read_text(errors="replace")
    if cut < int(steps):
        resumed = _run(["--resume", str(run_dir)], tmp_path)
        assert resumed.returncode == 0, resumed.stderr
    a = ckpt.load_checkpoint(tmp_path / "straight", prefer=rundir.LAST)
    b = ckpt.load_checkpoint(run_dir, prefer=rundir.LAST)
    assert a.run.step == b.run.step == int(steps)
    for name, weight in a.model.state_dict().items():
        assert torch.equal(weight, b.model.state_dict()[name]), f"{name} differs after a SIGTERM at step {cut}"
    print(f"\nSIGTERM landed at step {cut} of {steps}")


# --------------------------------------------------------------------------
# 3. The atomic writer


def _temps(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_write_bytes_atomic_replaces_whole(tmp_path: Path):
    target = tmp_path / "sub" / "f.bin"
    a, b = b"A" * 100_000, b"B" * 7
    files.write_bytes_atomic(target, a)
    assert target.read_bytes() == a
    files.write_bytes_atomic(target, b)  # shorter: no tail of A may survive
    assert target.read_bytes() == b
    assert sorted(p.name for p in target.parent.iterdir()) == ["f.bin"]


class _Unwritable:
    """Not bytes: the write into the temp file fails after mkstemp made it."""


def test_write_bytes_atomic_failed_write_keeps_original(tmp_path: Path):
    target = tmp_path / "f.bin"
    files.write_bytes_atomic(target, b"original")
    with pytest.raises(TypeError):
        files.write_bytes_atomic(target, _Unwritable())  # type: ignore[arg-type]
    assert target.read_bytes() == b"original"
    assert _temps(tmp_path) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]


@pytest.mark.parametrize("exc", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_write_bytes_atomic_fsync_failure_keeps_original(tmp_path: Path, monkeypatch, exc):
    target = tmp_path / "f.bin"
    files.write_bytes_atomic(target, b"original")
    calls = []

    def failing_fsync(fd):
        calls.append(fd)
        raise exc  # the new bytes are in the temp file, not yet renamed

    monkeypatch.setattr(files.os, "fsync", failing_fsync)
    with pytest.raises(CharRNNError if isinstance(exc, OSError) else type(exc)):  # a full disk: a one-line error
        files.write_bytes_atomic(target, b"new content that must not appear")
    monkeypatch.undo()
    assert calls, "write_bytes_atomic never fsynced"
    assert target.read_bytes() == b"original"
    assert _temps(tmp_path) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]


def test_truncated_checkpoint_is_refused(tmp_path: Path):
    """What a non-atomic save killed midway would leave: it must not load
    (so the SIGKILL test above would catch non-atomic saves)."""
    vocab = Vocab.from_chars("abc\n")
    model = CharRNN(ModelConfig("lstm", vocab.size, embedding=4, hidden=16, layers=1))
    data = ckpt.checkpoint_bytes(model, vocab)
    for cut in (4, 100, len(data) // 2, len(data) - 1):
        p = tmp_path / f"cut{cut}.safetensors"
        p.write_bytes(data[:cut])
        with pytest.raises(CharRNNError):
            ckpt.load_checkpoint(p)


# --------------------------------------------------------------------------
# A crash between writing `best` and writing `last`


class _Crash(BaseException):
    """Stands in for SIGKILL at one exact point (nothing after it runs)."""


@pytest.mark.parametrize("when", ["before best", "between best and last"])
def test_crash_around_best_keeps_best_consistent(tmp_path: Path, monkeypatch, corpus: Path, when: str):
    """`best.safetensors` must always hold a model at least as good as the
    best validation loss the run records, and after resuming, exactly the
    best one. (Writing `last` before `best` broke this: a crash between left
    `last` claiming a loss no `best` file held.)"""
    from charrnn.corpus import load_corpus

    data = load_corpus(corpus, "utf-8")
    config = TrainConfig(seq_len=16, batch_size=4, eval_every=1, max_steps=12, warmup_steps=2, seed=5, device="cpu")
    mconf = ModelConfig("lstm", data.vocab.size, embedding=4, hidden=16, layers=1)
    real_write = files.write_bytes_atomic
    best_writes = []

    def write(path, payload):
        if path.name == rundir.BEST:
            best_writes.append(path)
        if len(best_writes) == 3:  # the third improvement: die around its save
            if when == "before best" or path.name == rundir.LAST:
                raise _Crash
        real_write(path, payload)

    monkeypatch.setattr(files, "write_bytes_atomic", write)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with pytest.raises(_Crash):
        train_on(data, config, run_dir, mconf)
    monkeypatch.undo()

    last = ckpt.load_checkpoint(run_dir, prefer=rundir.LAST).run
    best = ckpt.load_checkpoint(run_dir, prefer=rundir.BEST).run
    assert last.best_val_loss == min(r["val_loss"] for r in last.metrics)
    assert best.best_val_loss <= last.best_val_loss

    state = ckpt.load_checkpoint(run_dir, prefer=rundir.LAST)
    resume(state.path)
    last = ckpt.load_checkpoint(run_dir, prefer=rundir.LAST).run
    best = ckpt.load_checkpoint(run_dir, prefer=rundir.BEST).run
    assert last.step == 12
    assert best.best_val_loss == last.best_val_loss == min(r["val_loss"] for r in last.metrics)
