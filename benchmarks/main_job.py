"""The main job: `charrnn train` with no corpus and no budget (the shipped
corpus, the default length), as a new user runs it first. Reports the best
val loss (nats/char), the training time and the chars/s, so that a change
of defaults can be held to "a better loss in no more time".

    python benchmarks/main_job.py                      # charrnn's defaults
    python benchmarks/main_job.py -- --size fixed      # the fixed default model
    python benchmarks/main_job.py --log benchmarks/results/main_job.jsonl -- --model gru --hidden 256

Everything after `--` goes to `charrnn train` as is. Each run takes minutes
(3000 steps); compare runs made on the same machine, one at a time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import provenance  # noqa: E402  (the same record of where a figure was measured)

from charrnn import checkpoint as ckpt  # noqa: E402
from charrnn import rundir  # noqa: E402


def run(extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        done = subprocess.run([sys.executable, "-m", "charrnn", "train", "--out", str(out), *extra],
                              capture_output=True, text=True, check=False)  # fmt: skip
        if done.returncode != 0:
            sys.exit(f"error: training failed:\n{done.stderr[-2000:]}")
        best, last = ckpt.load_checkpoint(out), ckpt.load_checkpoint(out, prefer=rundir.LAST).run
        return {
            "args": extra,
            # the whole val split's loss: the last evaluation's where the others score a sample (--eval-chars),
            # which is the best's in a run that improves to its end, as the default run does
            "val_loss": last.metrics[-1].get("val_loss_full", best.run.best_val_loss),
            "sample_val_loss": best.run.best_val_loss if "val_loss_full" in last.metrics[-1] else None,
            "steps": last.step,
            "training_s": round(last.elapsed_s, 1),
            "chars_per_s": round(last.chars_seen / last.elapsed_s),
            "model": best.config.to_dict(),
            "train": best.run.train_config,
            "start_up": [line for line in done.stderr.splitlines()[:6] if line.startswith(("--size", "small corpus"))],
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--log", type=Path, help="append the result as one JSON line to this file")
    ap.add_argument("--note", default="", help="the machine, or anything else the log should say")
    ap.add_argument("train_args", nargs="*", help="after --: options for charrnn train")
    args = ap.parse_args()
    result = run(args.train_args) | provenance() | ({"note": args.note} if args.note else {})
    if args.log:
        with args.log.open("a") as f:
            f.write(json.dumps(result) + "\n")
    m = result["model"]
    print(f"{m['kind']} {m['layers']}x{m['hidden']}: val {result['val_loss']:.4f} nats/char after {result['steps']:,} steps,"
          f" {result['training_s']:.0f} s of training, {result['chars_per_s']:,} chars/s")  # fmt: skip


if __name__ == "__main__":
    main()
