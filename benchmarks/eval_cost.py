"""What evaluation costs a run: the share of its time spent scoring the val split.

    python benchmarks/eval_cost.py [--corpus PATH] [--val-frac F] [--steps N] [--log] [-- TRAIN OPTIONS]

Trains twice with `charrnn train`'s defaults (plus the options after `--`)
on a corpus whose val split is larger than the default evaluation budget:
once as the defaults choose (a fixed sample, the whole split at the end)
and once with `--eval-chars 0` (the whole split every time). For each it
prints the characters an evaluation scored, the mean seconds per
evaluation, the training seconds between evaluations, and evaluation's
share of the run (every evaluation, the last's whole-split pass included,
over the run's elapsed time). Both runs are in one invocation, so the
shares compare on one machine; the absolute seconds do not travel.
Defaults: the shipped corpus with a 20% val split (about 1 MB), 1,500
steps (three evaluations at the default cadence). `--no-whole` skips the
second run, for a corpus whose whole val split takes long to score.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOG = ROOT / "benchmarks" / "results" / "eval_cost.jsonl"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def train(corpus: Path, out: Path, steps: int, val_frac: float, extra: list[str]) -> list[dict]:
    cmd = [sys.executable, "-m", "charrnn", "train", str(corpus), "--out", str(out), "--max-steps", str(steps),
           "--val-frac", str(val_frac), "--patience", "0", *extra]  # fmt: skip
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def summary(label: str, metrics: list[dict]) -> dict:
    evals = [m["eval_s"] for m in metrics]
    full = metrics[-1].get("eval_full_s", 0.0)
    elapsed = metrics[-1]["elapsed_s"]
    training = elapsed - sum(evals) - full - sum(m.get("save_s", 0.0) for m in metrics)
    return {
        "label": label,
        "evaluations": len(metrics),
        "chars_scored": metrics[0].get("val_chars"),
        "eval_s_mean": round(sum(evals) / len(evals), 2),
        "training_s_between": round(training / len(metrics), 1),
        "final_whole_split_s": round(full, 2) or None,
        "final_whole_split_chars": metrics[-1].get("val_chars_full"),
        "interval_eval_share": round(sum(evals) / (sum(evals) + training), 4),  # the in-training evaluations' share
        "eval_share": round((sum(evals) + full) / elapsed, 4),  # with the final whole-split pass
        "elapsed_s": round(elapsed, 1),
        "val_loss_last": round(metrics[-1]["val_loss"], 4),
        "val_loss_full": round(metrics[-1].get("val_loss_full", metrics[-1]["val_loss"]), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=ROOT / "corpora" / "shakespeare.txt")
    parser.add_argument("--val-frac", type=float, default=0.2)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--log", action="store_true", help=f"append the results to {LOG.relative_to(ROOT)}")
    parser.add_argument("--no-whole", action="store_true",
                        help="skip the run that scores the whole split every time (on a large corpus, hours)")
    parser.add_argument("extra", nargs="*", help="options for charrnn train, after --")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        runs = [("default (sampled)", [])] + ([] if args.no_whole else [("--eval-chars 0 (whole split)", ["--eval-chars", "0"])])
        for label, extra in runs:
            metrics = train(args.corpus, Path(tmp) / label.split()[0], args.steps, args.val_frac, args.extra + extra)
            rows.append(summary(label, metrics))
            print(json.dumps(rows[-1]), flush=True)
    if args.log:
        with LOG.open("a") as f:
            for row in rows:
                record = {"date": time.strftime("%Y-%m-%d"), "cpu": cpu_name(), "corpus": args.corpus.name,
                          "val_frac": args.val_frac, "steps": args.steps, "options": args.extra, **row}  # fmt: skip
                f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
