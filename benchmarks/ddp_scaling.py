"""Distributed training throughput: 1 process against 2 processes under
torchrun (gloo, CPU), each with one thread, same model and global batch.

Runs alternate (1, 2, 1, 2, ...) so both see the same machine noise; the
figure is each run's training chars/s over its last evaluation interval
(which excludes evaluation and saving), median over repeats.

    python benchmarks/ddp_scaling.py              # about 4 minutes on 2 cores
    python benchmarks/ddp_scaling.py --quick      # smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"


def run(
    processes: int, corpus: Path, steps: int, model: list[str], batch: int, device: str = "cpu", one_thread: bool = True
) -> float:
    """Train `steps` steps; return chars/s of the last evaluation interval."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        args = [str(corpus), "--out", str(out), "--max-steps", str(steps), "--eval-every", str(steps // 2)]
        args += [*model, "--batch-size", str(batch), "--device", device, "--val-frac", "0.01"]
        launcher = [sys.executable, "-m", "charrnn", "train"]
        if processes > 1:
            launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                        f"--nproc_per_node={processes}", "-m", "charrnn", "train"]  # fmt: skip
        env = dict(os.environ, OMP_NUM_THREADS="1") if one_thread else dict(os.environ)
        done = subprocess.run([*launcher, *args], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"error: training with {processes} process(es) failed:\n{done.stdout}{done.stderr}")
        records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        return records[-1]["chars_per_s"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="text corpus (default: tinyshakespeare)")
    ap.add_argument("--steps", type=int, default=60, help="training steps per run")
    ap.add_argument("--repeats", type=int, default=3, help="alternating repeats (median taken)")
    ap.add_argument("--quick", action="store_true", help="tiny model and few steps: a smoke test")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = ap.parse_args()
    if not args.corpus.is_file():
        sys.exit(f"error: corpus not found: {args.corpus}")
    model = ["--hidden", "32", "--layers", "1"] if args.quick else ["--hidden", "256", "--layers", "2"]
    steps, repeats = (10, 1) if args.quick else (args.steps, args.repeats)
    results: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(repeats):
        for n in (1, 2):
            results[n].append(run(n, args.corpus, steps, model, 32))
    one, two = statistics.median(results[1]), statistics.median(results[2])
    summary = {"model": " ".join(model), "batch": 32, "one_process_chars_per_s": one,
               "two_processes_chars_per_s": two, "ratio": two / one, "runs": results}  # fmt: skip
    if args.json:
        print(json.dumps(summary))
        return
    table = Table(title="distributed training on CPU (gloo, 1 thread per process, global batch 32)")
    for col in ("model", "1 process chars/s", "2 processes chars/s", "ratio"):
        table.add_column(col, justify="right")
    table.add_row(summary["model"], f"{one:,.0f}", f"{two:,.0f}", f"{two / one:.2f}x")
    Console(width=120).print(table)
    if torch.cuda.is_available():
        gpu_table(args.corpus, 10 if args.quick else args.steps)


def gpu_table(corpus: Path, steps: int) -> None:
    """Single-GPU chars/s for 2x512 and 3x512 LSTMs against the same model on the CPU."""
    table = Table(title=f"one GPU ({torch.cuda.get_device_name()}) against the CPU, T=128, B=64")
    for col in ("model", "CPU chars/s", "GPU chars/s", "ratio"):
        table.add_column(col, justify="right")
    for layers in (2, 3):
        model = ["--hidden", "512", "--layers", str(layers)]
        cpu = run(1, corpus, steps, model, 64, "cpu", one_thread=False)
        gpu = run(1, corpus, steps * 5, model, 64, "cuda", one_thread=False)
        table.add_row(f"{layers}x512 lstm", f"{cpu:,.0f}", f"{gpu:,.0f}", f"{gpu / cpu:.1f}x")
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
