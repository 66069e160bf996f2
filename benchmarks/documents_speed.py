"""Training speed of a corpus of documents against the same text as one stream.

    python benchmarks/documents_speed.py CORPUS [--steps N] [--log] [-- TRAIN OPTIONS]

Trains the same model on CORPUS (one document a line: names, say) with
`--documents lines` and without, N steps each, alternating three times,
and prints the characters scored per second of each (padding not counted)
and their ratio; the median of the three ratios is the figure. Both modes
read about --batch-size x --seq-len characters a step. Measured in one
run, the ratio holds on a shared machine where absolute speeds do not.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOG = ROOT / "benchmarks" / "results" / "documents_speed.jsonl"
MODEL = ["--model", "gru", "--layers", "2", "--hidden", "256", "--batch-size", "32", "--seq-len", "128"]


def chars_per_s(corpus: Path, out: Path, steps: int, extra: list[str]) -> float:
    cmd = [sys.executable, "-m", "charrnn", "train", str(corpus), "--out", str(out), "--force", "--max-steps",
           str(steps), "--eval-every", str(steps), *MODEL, *extra]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
    last = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][-1]
    return last["chars_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--log", action="store_true")
    parser.add_argument("extra", nargs="*")
    args = parser.parse_args()
    ratios, rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(3):
            docs = chars_per_s(args.corpus, Path(tmp) / "docs", args.steps, ["--documents", "lines", *args.extra])
            plain = chars_per_s(args.corpus, Path(tmp) / "plain", args.steps, args.extra)
            ratios.append(docs / plain)
            rows.append({"documents_chars_per_s": docs, "plain_chars_per_s": plain, "ratio": round(docs / plain, 3)})
            print(json.dumps(rows[-1]), flush=True)
    summary = {"corpus": args.corpus.name, "steps": args.steps, "model": " ".join(MODEL + args.extra),
               "median_ratio": round(statistics.median(ratios), 3), "runs": rows}  # fmt: skip
    print(json.dumps(summary))
    if args.log:
        cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                    if ln.startswith("model name")), "")  # fmt: skip
        with LOG.open("a") as f:
            f.write(json.dumps({"date": time.strftime("%Y-%m-%d"), "cpu": cpu, **summary}) + "\n")


if __name__ == "__main__":
    main()
