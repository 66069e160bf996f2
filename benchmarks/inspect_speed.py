"""Recording speed and memory: 100,000 characters through a 2x512 LSTM,
every tensor of every layer (h, c, i, f, g, o), stored as float16.
Target: under a minute on 2 cores, peak RAM under 2 GB.

    python benchmarks/inspect_speed.py
    python benchmarks/inspect_speed.py --spill     # tensors streamed to disk
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from charrnn.inspection.record import record
from charrnn.corpus import Vocab
from charrnn.model import CharRNN, ModelConfig

DEFAULT_CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tinyshakespeare.txt"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--chars", type=int, default=100_000)
    ap.add_argument("--spill", action="store_true", help="stream tensors to .npy files instead of memory")
    args = ap.parse_args()
    if not args.corpus.is_file():
        sys.exit(f"error: corpus not found: {args.corpus}")
    text = args.corpus.read_text(encoding="utf-8")[: args.chars]
    vocab = Vocab.from_chars(text)
    torch.manual_seed(0)
    model = CharRNN(ModelConfig("lstm", vocab.size, embedding=64, hidden=512, layers=2)).eval()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        rec = record(model, vocab, text, dtype=np.float16, spill=Path(tmp) if args.spill else None)
        seconds = time.perf_counter() - t0
        stored = sum(a.nbytes for a in rec.tensors.values()) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{len(text):,} chars, {len(rec.tensors)} tensors ({stored:,.0f} MiB float16): {seconds:.1f} s,"
          f" {len(text) / seconds:,.0f} chars/s; peak RSS {peak:,.0f} MiB (before recording {before:,.0f} MiB)")


if __name__ == "__main__":
    main()
