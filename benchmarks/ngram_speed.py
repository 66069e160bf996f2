"""How fast `charrnn compare` counts and scores its n-gram models.

    python benchmarks/ngram_speed.py [CORPUS] [--max-n 20] [--test-frac 0.05]

Counts interpolated Kneser-Ney models of orders 1..--max-n on the first
95% of CORPUS (default: the shipped corpus, 5 MB) and scores the rest, one
order at a time as `charrnn compare` does, and prints the seconds it took,
the peak memory of the process, and the loss of a few orders. Target: a
5 MB corpus at n = 20 well under a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from charrnn.corpus import Vocab  # noqa: E402
from charrnn.ngram import next_char_probs  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", type=Path, nargs="?", default=REPO / "corpora" / "shakespeare.txt")
    ap.add_argument("--max-n", type=int, default=20)
    ap.add_argument("--test-frac", type=float, default=0.05)
    args = ap.parse_args()
    text = args.corpus.read_text(encoding="utf-8")
    vocab = Vocab.from_chars(text)
    ids = vocab.encode(text)
    cut = int(len(ids) * (1 - args.test_frac))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    [probs] = next_char_probs(ids[:cut], [ids[cut:]], args.max_n, vocab.size)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    loss = -np.log(probs).mean(1)
    print(f"{args.corpus}: {cut:,} training characters, {len(ids) - cut:,} scored, n = 1..{args.max_n}")
    print(f"counted and scored in {seconds:.1f} s; peak RSS {peak:,.0f} MiB ({before:,.0f} before)")
    print("loss (nats/char): " + ", ".join(f"n={n} {loss[n - 1]:.3f}" for n in (1, 3, 5, 8, 12, args.max_n) if n <= args.max_n))


if __name__ == "__main__":
    main()
