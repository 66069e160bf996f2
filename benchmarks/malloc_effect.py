"""What charrnn.training.memory.freed_memory_kept() is worth: train the default model
for a few steps with it and without it (alternating, so both see the same
machine noise) and print chars/s, kernel CPU time and page faults.

    python benchmarks/malloc_effect.py                   # default precision
    python benchmarks/malloc_effect.py -- --precision fp32
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "data" / "tinyshakespeare.txt"
# Runs the CLI in a child process, with the setting switched off if asked.
CHILD = """
import contextlib, sys
import charrnn.cli.train
if sys.argv.pop(1) == "off":
    charrnn.cli.train.freed_memory_kept = lambda: contextlib.nullcontext(False)
from charrnn.cli.entry import app
app(sys.argv[1:], prog_name="charrnn")
"""


def one_run(mode: str, steps: int, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        args = ["train", str(CORPUS), "--out", str(out), "--max-steps", str(steps), "--eval-every", str(steps),
                "--val-frac", "0.01", "--test-frac", "0", "--size", "fixed", *extra]  # fmt: skip
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(
            [sys.executable, "-c", CHILD, mode, *args],
            capture_output=True,
            text=True,
            check=False,
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            sys.exit(f"error: training failed:\n{done.stderr[-2000:]}")
        record = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
        return {
            "chars_per_s": record["chars_per_s"],
            "sys_s": after.ru_stime - before.ru_stime,
            "page_faults": after.ru_minflt - before.ru_minflt,
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("train_args", nargs="*", help="after --: options for charrnn train")
    args = ap.parse_args()
    if not CORPUS.is_file():
        sys.exit(f"error: corpus not found: {CORPUS}")
    runs: dict[str, list[dict]] = {"on": [], "off": []}
    for _ in range(args.repeats):
        for mode in ("off", "on"):
            runs[mode].append(one_run(mode, args.steps, args.train_args))
            print(mode, runs[mode][-1], file=sys.stderr, flush=True)
    med = {m: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for m, rs in runs.items()}
    for mode in ("off", "on"):
        m = med[mode]
        print(f"keep freed memory {mode:>3}: {m['chars_per_s']:9,.0f} chars/s  "
              f"{m['sys_s']:5.1f} s in the kernel  {m['page_faults']:11,.0f} page faults")  # fmt: skip
    print(f"speedup: {med['on']['chars_per_s'] / med['off']['chars_per_s']:.2f}x")


if __name__ == "__main__":
    main()
