"""Sampling speed of an older charrnn against this one, in one process:
the older package (from a git ref, renamed charrnn_old) and this checkout
sample from the same weights, timed alternately, median of the repeats.
It checks that both give the same text first.

    python benchmarks/sample_ab.py [--ref 9b0da54] [--repeats 11]
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
VOCAB = tuple(sorted(set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ .,;:!?'\n-")))
CASES = [("lstm", 512, 1, 400), ("lstm", 128, 1, 1500), ("lstm", 512, 64, 100), ("gru", 512, 1, 400),
         ("rnn", 512, 1, 1500)]  # fmt: skip  (kind, hidden, batch, characters per sample)


def load_old(ref: str, into: Path):
    """The package at `ref`, importable as charrnn_old (it imports itself relatively)."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "charrnn"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    (into / "charrnn").rename(into / "charrnn_old")
    sys.path.insert(0, str(into))
    return {name: importlib.import_module(f"charrnn_old.{name}") for name in ("model", "sample", "data")}


def chars_per_s(steps) -> float:
    t0, n = time.perf_counter(), 0
    for chars in steps:
        n += len(chars)
    return n / (time.perf_counter() - t0)


def compare(old: dict, kind: str, hidden: int, batch: int, length: int, repeats: int) -> tuple[float, float]:
    from charrnn import corpus, model, sample

    torch.manual_seed(0)
    new_model = model.CharRNN(model.ModelConfig(kind, len(VOCAB), 64, hidden, 2)).eval()
    old_cfg = old["model"].ModelConfig(getattr(old["model"], "CellKind", str)(kind), len(VOCAB), 64, hidden, 2)
    old_model = old["model"].CharRNN(old_cfg).eval()
    old_model.load_state_dict(new_model.state_dict())

    def run_new():
        return sample.generate(new_model, corpus.Vocab(VOCAB), "ab", sample.SampleConfig(length, seed=1, num_samples=batch))

    def run_old():
        cfg = old["sample"].SampleConfig(length, seed=1, num_samples=batch)
        return old["sample"].generate(old_model, old["data"].Vocab(VOCAB), "ab", cfg)

    if list(run_old()) != list(run_new()):
        raise SystemExit(f"error: {kind} 2x{hidden} batch {batch}: the two versions sample different text")
    olds, news = [], []
    for _ in range(repeats):
        olds.append(chars_per_s(run_old()))
        news.append(chars_per_s(run_new()))
    return statistics.median(olds), statistics.median(news)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref", default="9b0da54", help="the older version (a git ref)")
    ap.add_argument("--repeats", type=int, default=11, help="alternating repeats per case (median taken)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = load_old(args.ref, Path(tmp))
        print(f"sampling chars/s, {args.ref} against this checkout ({torch.get_num_threads()} threads):")
        for kind, hidden, batch, length in CASES:
            o, n = compare(old, kind, hidden, batch, length, args.repeats)
            print(f"  {kind} 2x{hidden} batch {batch:>2}: {args.ref} {o:>8,.0f}  now {n:>8,.0f}  ratio {n / o:.3f}")


if __name__ == "__main__":
    main()
