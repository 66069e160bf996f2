"""`charrnn score`'s speed: lines scored as parallel streams against one
line at a time, in one process.

    python benchmarks/score_speed.py CHECKPOINT [--text FILE] [--lines N] [--alone N]

Scores the first --lines lines of --text (default: tinyshakespeare's 40,000)
with Model.score_lines, and the first --alone of them one at a time with
Model.score (each line with its newline, as score_lines reads it), and
prints lines/s for both, their ratio, and the largest difference between
the two paths' per-line totals. The ratio is what to read (this machine is
shared).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import charrnn  # noqa: E402

SHARED = REPO.parent / "shared" / "data" / "tinyshakespeare.txt"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--text", type=Path, default=SHARED)
    ap.add_argument("--lines", type=int, default=40_000)
    ap.add_argument("--alone", type=int, default=2_000, help="lines scored one at a time (the slow path)")
    args = ap.parse_args()
    m = charrnn.load(args.checkpoint, "cpu")
    lines = args.text.read_text(encoding="utf-8").split("\n")[: args.lines]
    chars = sum(len(line) + 1 for line in lines)
    print(f"{m.path}: {m.config.kind} {m.config.layers}x{m.config.hidden}; {len(lines):,} lines, {chars:,} characters;"
          f" torch {torch.__version__}, {torch.get_num_threads()} threads")  # fmt: skip
    t0 = time.perf_counter()
    batched = m.score_lines(lines, unknown="skip")
    t_batched = time.perf_counter() - t0
    few = lines[: args.alone]
    t0 = time.perf_counter()
    alone = [m.score(line + "\n", unknown="skip") for line in few]
    t_alone = time.perf_counter() - t0
    worst = max(abs(a.total_nats - b.total_nats) for a, b in zip(alone, batched))
    rate_b, rate_a = len(lines) / t_batched, len(few) / t_alone
    print(f"{'path':>10} {'lines':>7} {'seconds':>8} {'lines/s':>9} {'chars/s':>10}")
    print(f"{'batched':>10} {len(lines):7,} {t_batched:8.2f} {rate_b:9,.0f} {chars / t_batched:10,.0f}")
    few_chars = sum(len(line) + 1 for line in few)
    print(f"{'alone':>10} {len(few):7,} {t_alone:8.2f} {rate_a:9,.0f} {few_chars / t_alone:10,.0f}")
    print(f"batched / alone: {rate_b / rate_a:.1f}x lines/s; largest difference in a line's total: {worst:.2e} nats")


if __name__ == "__main__":
    main()
