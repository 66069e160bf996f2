"""One prepared check for the first CUDA machine: everything GPU-specific
in one short run (under 5 minutes), printed as one table.

    python benchmarks/gpu_check.py               # on a CUDA machine
    python benchmarks/gpu_check.py --seconds 5   # shorter training rows

It runs, on the GPU:
- the tests marked `cuda` (tests/test_cuda.py: each CUDA path against the CPU);
- `charrnn train` for --seconds each in fp32, bf16 and fp16 on
  tinyshakespeare (../shared/data, else the shipped corpus): chars/s, val loss;
- the same for a minGRU in bf16, and the minimal cells' two scans timed
  (which one `scan` should pick on this device);
- sampling chars/s at batch 1 and 64, and beam search's, from the fp32 run;
- `charrnn inspect` on 100,000 characters;
- `train --init-from` the fp32 run on this repository's README for 20 s;
- `export` the fp32 run, and sample the exported model against the checkpoint;
- a one-process torchrun over nccl: DDP, one training step, an all-reduce.

Without a GPU it runs the same rows on the CPU, small (its self-check:
fp16 is skipped, torchrun uses gloo), says that no GPU was found, and exits
0 if every row passed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "tinyshakespeare.txt"
SHIPPED = REPO / "corpora" / "shakespeare.txt"
sys.path.insert(0, str(REPO))  # the sampling row imports charrnn, installed or not


# Every subprocess's full output, written to --log: a device lease is short,
# so one run must carry enough to diagnose any failed row.
LOG: list[str] = []


def run_logged(cmd: list[str], timeout: float) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    LOG.append(f"$ {' '.join(cmd)}\n[exit {done.returncode}]\n{done.stdout}\n{done.stderr}\n")
    return done


def charrnn(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return run_logged([sys.executable, "-m", "charrnn", *map(str, args)], timeout)


def guarded(check, *args) -> tuple[bool, str]:
    """A row whose check raised is a failed row, not a lost table."""
    try:
        return check(*args)
    except Exception as exc:  # noqa: BLE001: reported in the table and the log
        import traceback

        LOG.append(traceback.format_exc())
        return False, f"{type(exc).__name__}: {exc}"[:200]


def cuda_tests() -> tuple[bool, str]:
    done = run_logged([sys.executable, "-m", "pytest", "-q", "-m", "cuda", "tests/test_cuda.py", "-p",
                       "no:cacheprovider"], timeout=600)  # fmt: skip
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr.strip()[-200:]
    return done.returncode in (0, 5), summary  # 5: nothing ran (all skipped without a GPU)


def train_row(corpus: Path, out: Path, precision: str, device: str, seconds: float, small: bool,
              *extra: str) -> tuple[bool, str]:  # fmt: skip
    size = ["--hidden", "64", "--layers", "1", "--eval-every", "20"] if small else ["--size", "fixed", "--eval-every", "200"]
    done = charrnn("train", corpus, "--out", out, "--device", device, "--precision", precision,
                   "--time-limit", f"{seconds}s", *size, *extra, timeout=seconds + 300)  # fmt: skip
    if done.returncode != 0:
        return False, done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"
    entries = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    speeds = [e["chars_per_s"] for e in entries if e.get("chars_per_s")]
    best = min(e["val_loss"] for e in entries)
    return True, f"{entries[-1]['step']:,} steps, {max(speeds):,.0f} chars/s, best val {best:.3f} nats/char"


def sampling_row(run: Path, device: str, small: bool) -> tuple[bool, str]:
    from charrnn.api import load  # (charrnn, here, is the helper that runs the command)
    from charrnn.sample import SampleConfig

    figures = []
    for batch, length in ((1, 300 if small else 3000), (64, 100 if small else 1000)):
        config = SampleConfig(length=length, seed=0, num_samples=batch)
        steps = load(run, device).columns("", config)
        t0, chars = time.perf_counter(), 0
        for step in steps:
            chars += len(step)
        figures.append(f"batch {batch}: {chars / (time.perf_counter() - t0):,.0f} chars/s")
    length = 100 if small else 500
    t0 = time.perf_counter()
    best = "".join(c[0] for c in load(run, device).columns("", SampleConfig(length=length, beam=8)))
    figures.append(f"beam 8: {len(best) / (time.perf_counter() - t0):,.0f} chars/s")
    return True, "; ".join(figures)


def scan_row(device: str, small: bool) -> tuple[bool, str]:
    """The minimal cells' two scans on this device, forward and backward:
    `scan` runs the parallel one off the CPU, on the belief (unmeasured
    before this row) that few large kernels beat 2T small ones there."""
    from charrnn.cells import scan

    shape = (32, 128, 64 if small else 384)
    ms, outs = {}, {}
    for name, fn in (("sequential", scan.sequential), ("parallel", scan.parallel)):
        times = []
        for _ in range(4):
            torch.manual_seed(0)
            a = torch.rand(shape, device=device, requires_grad=True)
            b = torch.rand(shape, device=device, requires_grad=True)
            h0 = torch.rand(shape[0], shape[2], device=device)
            _sync(device)
            t0 = time.perf_counter()
            outs[name] = fn(a, b, h0)
            outs[name].sum().backward()
            _sync(device)
            times.append(time.perf_counter() - t0)
        ms[name] = 1000 * sorted(times[1:])[1]
    rel = ((outs["parallel"] - outs["sequential"]).abs() / outs["sequential"]).max().item()
    return rel < 1e-5, (f"B32 T128 H{shape[2]}, forward + backward: sequential {ms['sequential']:.2f} ms, parallel "
                        f"{ms['parallel']:.2f} ms; max relative difference {rel:.1e}")  # fmt: skip


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def finetune_row(run: Path, out: Path, device: str, seconds: float) -> tuple[bool, str]:
    """`train --init-from` on the GPU, on a text the parent never saw (this
    repository's README: new characters, new rows)."""
    done = charrnn("train", REPO / "README.md", "--init-from", run, "--out", out, "--device", device,
                   "--time-limit", f"{seconds}s", timeout=seconds + 300)  # fmt: skip
    if done.returncode != 0:
        return False, done.stderr.strip()[-200:]
    entries = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return True, f"{entries[-1]['step']:,} steps, val {entries[0]['val_loss']:.3f} -> {min(e['val_loss'] for e in entries):.3f}"


def export_row(run: Path, tmp: Path, device: str) -> tuple[bool, str]:
    """An exported fp32 model samples on the GPU exactly as its checkpoint does."""
    model = tmp / "model.safetensors"
    done = charrnn("export", run, model, "--dtype", "fp32")
    if done.returncode != 0:
        return False, done.stderr.strip()[-200:]
    from charrnn.api import load  # (charrnn, here, is the helper that runs the command)
    from charrnn.sample import SampleConfig

    config = SampleConfig(length=300, temperature=0)
    first, second = ("".join(c[0] for c in load(src, device).columns("", config)) for src in (run, model))
    same = first == second
    size = model.stat().st_size / (run / "best.safetensors").stat().st_size
    return same, f"{size:.0%} of the checkpoint; argmax 300 chars {'equal' if same else 'DIFFER'} to the checkpoint's"


def inspect_row(run: Path, corpus: Path, device: str, chars: int, tmp: Path) -> tuple[bool, str]:
    t0 = time.perf_counter()
    done = charrnn("inspect", run, "--file", corpus, "--max-chars", chars, "--device", device, "--out", tmp / "a.npz")
    if done.returncode != 0:
        return False, done.stderr.strip()[-200:]
    return True, f"{chars:,} characters in {time.perf_counter() - t0:.1f} s (with start-up)"


NCCL_WORKER = """
import os, torch, torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from charrnn.model import CharRNN, ModelConfig
cuda = torch.cuda.is_available()
device = torch.device("cuda", int(os.environ["LOCAL_RANK"])) if cuda else torch.device("cpu")
dist.init_process_group("nccl" if cuda else "gloo")
model = CharRNN(ModelConfig("lstm", 20, 8, 32, 2)).to(device)
net = DistributedDataParallel(model, device_ids=[device.index] if cuda else None)
logits, _ = net(torch.randint(0, 20, (4, 16), device=device))
logits.float().mean().backward()
t = torch.ones(3, device=device)
dist.all_reduce(t)
print("backend", dist.get_backend(), "all-reduce", t.tolist())
dist.destroy_process_group()
"""


def torchrun_row() -> tuple[bool, str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", "--no-python",
           sys.executable, "-c", NCCL_WORKER]  # fmt: skip
    done = run_logged(cmd, timeout=300)
    lines = [line for line in done.stdout.splitlines() if line.startswith("backend")]
    return done.returncode == 0 and bool(lines), lines[0] if lines else done.stderr.strip()[-200:]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=None, help="training per precision (default 60 on a GPU, 5 on CPU)")
    ap.add_argument("--corpus", type=Path, default=None, help="default: tinyshakespeare, else the shipped corpus")
    ap.add_argument("--log", type=Path, default=None, help="write every subprocess's full output here")
    args = ap.parse_args()
    gpu = torch.cuda.is_available()
    device, small = ("cuda", False) if gpu else ("cpu", True)
    seconds = args.seconds or (60 if gpu else 5)
    # Absolute: the subprocesses run in the repository, not where this was started.
    corpus = (args.corpus or (SHARED if SHARED.is_file() else SHIPPED)).resolve()
    rows: list[tuple[str, bool, str]] = []
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp_name:
        tmp = Path(tmp_name)
        rows.append(("tests marked cuda", *guarded(cuda_tests)))
        for precision in ("fp32", "bf16", "fp16"):
            if precision == "fp16" and not gpu:
                rows.append(("train fp16", True, "skipped: fp16 needs CUDA"))
                continue
            rows.append((f"train {precision}, {seconds:g} s", *guarded(train_row, corpus, tmp / precision, precision,
                                                                               device, seconds, small)))  # fmt: skip
        rows.append((f"train mingru bf16, {seconds:g} s", *guarded(train_row, corpus, tmp / "mingru", "bf16", device,
                                                                    seconds, small, "--model", "mingru")))  # fmt: skip
        rows.append(("minimal cells' scan", *guarded(scan_row, device, small)))
        run = tmp / "fp32"
        if (run / "best.safetensors").exists():
            rows.append(("sample", *guarded(sampling_row, run, device, small)))
            rows.append(("inspect", *guarded(inspect_row, run, corpus, device, 5_000 if small else 100_000, tmp)))
            rows.append((f"fine-tune (--init-from), {min(seconds, 20):g} s",
                         *guarded(finetune_row, run, tmp / "finetuned", device, min(seconds, 20))))  # fmt: skip
            rows.append(("export + sample", *guarded(export_row, run, tmp, device)))
        rows.append(("torchrun, 1 process", *guarded(torchrun_row)))
    where = torch.cuda.get_device_name() if gpu else "no CUDA GPU found: the CPU-side self-check"
    table = Table(title=f"gpu_check: {where} (torch {torch.__version__})")
    for col in ("check", "result", "figures"):
        table.add_column(col)
    for name, ok, detail in rows:
        table.add_row(name, "ok" if ok else "FAILED", detail)
    Console(width=160).print(table)
    if args.log:
        args.log.write_text("\n".join(LOG))
    return 0 if all(ok for _, ok, _ in rows) else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
