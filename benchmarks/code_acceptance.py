"""Does `inspect` find the paper's cells in a model of real code, do they
do anything, and where does the model beat n-gram models? The default
model trained 10 minutes on C source, inspected and compared on held-out
files.

    python benchmarks/code_acceptance.py --corpus DIR --heldout FILE            # trains first (10 minutes)
    python benchmarks/code_acceptance.py --run RUN --heldout FILE [--log]       # an existing run

The C source is yours to choose and is not committed (the figures in
docs/benchmarks.md used Linux 6.1's kernel/, mm/ and lib/ for training and
fs/ext4 for the held-out files: `apt-get download linux-source-6.1`).
Prints, for each of the paper's features (the C feature set): the best
unit, its r on the held-out half, its random-init control, and the rise in
loss with it held at 0 where the feature is active and where not; then
the n-gram table, the error breakdown and the closers, and the time and
peak memory of `inspect` and `compare`. Target: each feature's best unit at
|r| >= 0.6, far above its control, and ablating it raises the loss where
the feature is active. --log appends one JSON line to
benchmarks/results/code_acceptance.jsonl.
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

REPO = Path(__file__).resolve().parents[1]
LOG = REPO / "benchmarks" / "results" / "code_acceptance.jsonl"
PAPER = ("inside a string", "inside a comment", "inside an if condition", "bracket depth", "position in line")


def timed(*args: str) -> tuple[float, float, str]:
    """(seconds, peak MiB, stdout) of one charrnn command in its own process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "charrnn", *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)  # fmt: skip
    out = proc.stdout.read()
    errs = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status:
        sys.exit(f"error: charrnn {' '.join(args)} failed:\n{errs.decode(errors='replace')[-2000:]}")
    return time.perf_counter() - t0, usage.ru_maxrss / 1024, out.decode()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, help="C source to train on (a directory or a file)")
    ap.add_argument("--run", type=Path, help="an existing run instead of training")
    ap.add_argument("--heldout", type=Path, required=True, help="held-out C source to inspect and compare on")
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--log", action="store_true")
    args = ap.parse_args()
    if args.run is None:
        if args.corpus is None:
            sys.exit("error: give --corpus to train on, or --run")
        args.run = Path(tempfile.mkdtemp(prefix="charrnn-code-")) / "run"
        print(f"training on {args.corpus} for {args.minutes:g} minutes into {args.run} ...", flush=True)
        timed("train", str(args.corpus), "--time-limit", f"{args.minutes * 60:.0f}s", "--out", str(args.run))
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        inspect_s, inspect_mb, _ = timed("inspect", str(args.run), "--file", str(args.heldout), "--features", "c",
                                         "--report", str(report))  # fmt: skip
        found = json.loads(report.read_text(encoding="utf-8"))
    compare_s, compare_mb, out = timed("compare", str(args.run), str(args.heldout), "--json")
    compared = json.loads(out)
    cells = {}
    print(f"\ninspect: {inspect_s:.1f} s, peak {inspect_mb:,.0f} MiB; ablation column on {found['ablated_chars']:,} characters")
    print(f"{'feature':24} {'unit':>10} {'r':>6} {'control':>8} {'rise in':>8} {'rise out':>9}  verdict")
    for name in PAPER:
        rows = found["features"].get(name) or []
        if not rows:
            print(f"{name:24} {'-':>10}  (the feature is constant in a half of the text)")
            continue
        row = rows[0]
        a = row["ablation"] or {}
        ok = abs(row["r"]) >= 0.6 and abs(row["r"]) - abs(row["r_control"]) >= 0.3
        acts = a and not a["does_nothing"] and (a["inside"] or 0) > (a["outside"] or 0)
        verdict = ("found" if ok else "not found") + (", used" if acts else ", ablation: no specific effect")
        cells[name] = {"unit": f"{row['tensor']}:{row['unit']}", "r": row["r"], "r_control": row["r_control"],
                       "ablation": a or None, "found": ok, "used": bool(acts)}  # fmt: skip
        rise = [f"{v:+.4f}" if isinstance(v, float) else "-" for v in (a.get("inside"), a.get("outside"))]
        print(f"{name:24} {row['tensor'] + ':' + str(row['unit']):>10} {row['r']:+6.2f} {row['r_control']:+8.2f}"
              f" {rise[0]:>8} {rise[1]:>9}  {verdict}")  # fmt: skip
    print(f"\ncompare: {compare_s:.1f} s, peak {compare_mb:,.0f} MiB ({compared['seconds']})")
    print(f"the model {compared['rnn']:.4f} nats/char; n-gram: " +
          ", ".join(f"{r['n']}: {r['loss']:.3f}" for r in compared["ngram"]))  # fmt: skip
    print("errors: " + ", ".join(f"{k} {v:.1%}" for k, v in compared["breakdown"].items()))
    for b in compared["long_range"]:
        print(f"  {b['closes']:7} {b['from']:>4}-{b['to'] - 1 if b['to'] < 10**9 else '':<4} n={b['count']:<5}"
              f" model {b['rnn']:.3f}  n-gram {b['ngram']:.3f}")  # fmt: skip
    if args.log:
        row = {"run": str(args.run), "heldout": str(args.heldout), "inspect_s": round(inspect_s, 1),
               "inspect_mib": round(inspect_mb), "compare_s": round(compare_s, 1), "compare_mib": round(compare_mb),
               "cells": cells, "compare": compared}  # fmt: skip
        with LOG.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
