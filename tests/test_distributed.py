"""torchrun with 2 CPU processes (gloo): the same model as one process
with the same global batch, checkpoints that move between process counts,
clear errors, and a job that survives losing a process."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from charrnn import checkpoint as ckpt
from charrnn import rundir

from conftest import make_text

MODEL = ["--hidden", "12", "--embedding", "4", "--layers", "2", "--seq-len", "16", "--device", "cpu"]
ENV = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")


def torchrun(n: int, args: list[str], **kw) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}"]
    return subprocess.Popen(
        [*cmd, "-m", "charrnn", "train", *map(str, args)],
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw,
    )  # fmt: skip


def single(args: list[str]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "charrnn", "train", *map(str, args)]
    return subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=120)


def finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    p = tmp_path / "play.txt"
    p.write_text(make_text(n_lines=600), encoding="utf-8")
    return p


def weights(run: Path) -> dict[str, torch.Tensor]:
    return ckpt.load_checkpoint(run, prefer=rundir.LAST).model.state_dict()


def assert_same_run(a: Path, b: Path):
    """Two runs' last weights and every logged loss, equal to within 1e-5; their last states."""
    wa, wb = weights(a), weights(b)
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], atol=1e-5, rtol=0)
    ra, rb = (ckpt.load_checkpoint(run, prefer=rundir.LAST).run for run in (a, b))
    for ea, eb in zip(ra.metrics, rb.metrics, strict=True):
        assert ea["val_loss"] == pytest.approx(eb["val_loss"], abs=1e-5)
        assert ea["train_loss"] == pytest.approx(eb["train_loss"], abs=1e-5)
    return ra, rb


@pytest.mark.slow
def test_two_processes_train_the_single_process_model(tmp_path, corpus):
    # fp32: the claim is the same arithmetic in both layouts, and bf16's
    # rounding depends on each process's share of the batch.
    args = [corpus, *MODEL, "--batch-size", "8", "--max-steps", "12", "--eval-every", "6", "--precision", "fp32"]
    code, out = finish(torchrun(2, [*args, "--out", tmp_path / "ddp"]))
    assert code == 0, out
    assert out.count("training run") == 1  # rank 0 alone reports
    one = single([*args, "--out", tmp_path / "one"])
    assert one.returncode == 0, one.stderr
    da, db = assert_same_run(tmp_path / "ddp", tmp_path / "one")
    assert da.carried[0].shape == db.carried[0].shape  # every stream's state, gathered

    # and the distributed checkpoint resumes in one process (a different count)
    resumed = single(["--resume", tmp_path / "ddp", "--max-steps", "18"])
    assert resumed.returncode == 0, resumed.stderr
    assert ckpt.load_checkpoint(tmp_path / "ddp", prefer=rundir.LAST).run.step == 18


@pytest.mark.slow
def test_single_process_checkpoint_resumes_on_two(tmp_path, corpus):
    args = [corpus, *MODEL, "--batch-size", "8", "--eval-every", "6", "--out", tmp_path / "r"]
    assert single([*args, "--max-steps", "12"]).returncode == 0
    code, out = finish(torchrun(2, ["--resume", tmp_path / "r", "--max-steps", "18"]))
    assert code == 0, out
    assert ckpt.load_checkpoint(tmp_path / "r", prefer=rundir.LAST).run.step == 18


@pytest.mark.slow
def test_batch_that_does_not_split_is_a_clear_error(tmp_path, corpus):
    code, out = finish(torchrun(2, [corpus, *MODEL, "--batch-size", "5", "--out", tmp_path / "r"]))
    assert code != 0
    assert "error: --batch-size 5 cannot be split evenly across 2 processes" in out
    # torchrun prints its own report of the failed processes; charrnn itself shows no traceback
    assert "/charrnn/" not in out


@pytest.mark.slow
def test_losing_a_process_stops_the_job_and_the_run_resumes(tmp_path, corpus):
    run = tmp_path / "r"
    proc = torchrun(2, [corpus, *MODEL, "--batch-size", "8", "--max-steps", "100000", "--eval-every", "2",
                        "--out", run], start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while not (run / rundir.LAST).exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
        time.sleep(0.05)
    workers = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert len(workers) == 2, workers
    os.kill(int(workers[-1]), signal.SIGKILL)
    code, out = finish(proc)
    assert code != 0 and "exitcode" in out  # torchrun names the failed process and its exit code
    state = ckpt.load_checkpoint(run, prefer=rundir.LAST)
    resumed = single(["--resume", run, "--max-steps", str(state.run.step + 4)])
    assert resumed.returncode == 0, resumed.stderr
    assert ckpt.load_checkpoint(run, prefer=rundir.LAST).run.step == state.run.step + 4


@pytest.mark.slow
def test_time_limit_and_dropout_under_two_processes(tmp_path, corpus):
    """The time limit drives the learning rate: every process must use the
    same clock, or their weights drift apart (the per-evaluation check
    would stop the run). Dropout masks differ per process."""
    args = [corpus, *MODEL, "--batch-size", "8", "--time-limit", "6s", "--eval-every", "20", "--dropout", "0.2",
            "--warmup-steps", "2", "--out", tmp_path / "r"]  # fmt: skip
    code, out = finish(torchrun(2, args))
    assert code == 0, out
    assert "stopped by" in out and "time limit" in out
    assert ckpt.load_checkpoint(tmp_path / "r", prefer=rundir.LAST).run.step > 20


def _run_main(script: str) -> subprocess.CompletedProcess:
    prelude = (
        "import atexit, sys\nfrom charrnn.cli import entry\nfrom charrnn.training import distributed\n"
        "atexit.register(lambda: print('shutdown ran'))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", prelude + script], env=ENV, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("joined", [False, True])
def test_a_process_that_joined_a_group_exits_without_interpreter_shutdown(tmp_path, joined):
    # gloo's threads can abort the interpreter's shutdown (distributed.py),
    # so under torchrun the CLI ends with os._exit: same exit code and
    # output, but no shutdown (atexit handlers are its visible part).
    done = _run_main(
        f"distributed.joined = lambda: {joined}\n"
        f"sys.argv = ['charrnn', 'train', {str(tmp_path / 'missing.txt')!r}]\n"
        "print('before', end='')\n"
        "entry.main()\n"
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1
    assert done.stdout.startswith("before")  # flushed before the exit
    assert ("shutdown ran" in done.stdout) is not joined


@pytest.mark.parametrize(
    "body, code, stderr",
    [
        ("sys.argv = ['charrnn', '--help']", 0, ""),
        ("def app(): raise RuntimeError('boom')\nentry.app = app", 1, "RuntimeError: boom"),
        ("def app(): raise KeyboardInterrupt\nentry.app = app", 130, ""),
        ("def app(): sys.exit('a message')\nentry.app = app", 1, "a message"),
    ],
)
def test_every_ending_of_a_joined_process_keeps_its_exit_code(body, code, stderr):
    done = _run_main(f"distributed.joined = lambda: True\n{body}\nentry.main()\n")
    assert done.returncode == code, done.stderr
    assert stderr in done.stderr
    assert "shutdown ran" not in done.stdout


def test_joining_a_group_is_remembered():
    # setup() under a launcher (WORLD_SIZE > 1) with the group already made
    # (here a one-process group, so no second process is needed)
    script = (
        "import torch, torch.distributed as dist\n"
        "from charrnn.training import distributed\n"
        "assert not distributed.joined()\n"
        "dist.init_process_group('gloo', store=dist.HashStore(), rank=0, world_size=1)\n"
        "distributed.setup(torch.device('cpu'))\n"
        "print(distributed.joined())\n"
    )
    env = dict(ENV, WORLD_SIZE="2", RANK="0")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"


@pytest.mark.slow
def test_sigterm_under_torchrun_saves_and_resumes_bit_for_bit(tmp_path, corpus):
    """The launcher forwards SIGTERM to every worker: they agree on the
    step, rank 0 saves, every rank exits; the resumed run ends with the
    uninterrupted run's weights, each process's dropout included."""
    args = [corpus, *MODEL, "--batch-size", "8", "--max-steps", "60", "--eval-every", "5", "--dropout", "0.3",
            "--precision", "fp32", "--seed", "9"]  # fmt: skip
    code, out = finish(torchrun(2, [*args, "--out", tmp_path / "straight"]))
    assert code == 0, out
    run = tmp_path / "cut"
    proc = torchrun(2, [*args, "--out", run])
    deadline = time.monotonic() + 120
    while not (run / rundir.LAST).exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
        time.sleep(0.02)
    time.sleep(random.Random().uniform(0.0, 0.3))
    proc.send_signal(signal.SIGTERM)
    code, out = finish(proc)
    cut = ckpt.load_checkpoint(run, prefer=rundir.LAST).run.step
    assert "/charrnn/" not in out, out  # torchrun reports its own SignalException; charrnn shows no traceback
    if cut < 60:
        assert "interrupted (SIGTERM)" in out, out
        code, out = finish(torchrun(2, ["--resume", run]))
        assert code == 0, out
    a, b = weights(tmp_path / "straight"), weights(run)
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after a SIGTERM at step {cut}"


@pytest.mark.slow
def test_two_processes_train_the_single_process_model_of_documents(tmp_path):
    names = tmp_path / "names.txt"
    rng = __import__("random").Random(3)
    names.write_text("\n".join("".join(rng.choice("aeioulmnrst") for _ in range(rng.randint(2, 9))) for _ in range(900)),
                     encoding="utf-8")  # fmt: skip
    args = [names, *MODEL, "--documents", "lines", "--batch-size", "4", "--max-steps", "10", "--eval-every", "5",
            "--precision", "fp32"]  # fmt: skip
    code, out = finish(torchrun(2, [*args, "--out", tmp_path / "ddp"]))
    assert code == 0, out
    one = single([*args, "--out", tmp_path / "one"])
    assert one.returncode == 0, one.stderr
    assert_same_run(tmp_path / "ddp", tmp_path / "one")
