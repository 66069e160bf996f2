"""Evaluation in parallel streams against one stream: speed and loss.

    python benchmarks/eval_speed.py CHECKPOINT [--text FILE] [--chars N]
    python benchmarks/eval_speed.py CHECKPOINT --warmups 256 --repeats 3    # charrnn eval's setting

Scores the first --chars characters of --text (default: 1,000,000 of
tinyshakespeare) with the checkpoint's model, once as one stream (the exact
figure) and then as parallel streams at several warm-up lengths, in one
process, and prints the loss, its relative difference from one stream, the
time and the speed-up. The ratios are what to read (this machine is shared).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from charrnn.checkpoint import load_checkpoint  # noqa: E402
from charrnn.device import resolve_precision  # noqa: E402
from charrnn.evaluate import STREAMS, WARMUP, score  # noqa: E402

SHARED = REPO.parent / "shared" / "data" / "tinyshakespeare.txt"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--text", type=Path, default=SHARED)
    ap.add_argument("--chars", type=int, default=1_000_000)
    ap.add_argument("--streams", type=int, nargs="+", default=[STREAMS])
    ap.add_argument("--warmups", type=int, nargs="+", default=[0, 64, 128, WARMUP, 512])
    ap.add_argument("--precision", default=None,
                    help="for the parallel streams: fp32, bf16 (default: what charrnn eval uses here)")
    ap.add_argument("--repeats", type=int, default=1, help="time each parallel setting this often; the median counts")
    args = ap.parse_args()
    precision = args.precision or resolve_precision("auto", torch.device("cpu"))
    checkpoint = load_checkpoint(args.checkpoint)
    text = args.text.read_text(encoding="utf-8")[: args.chars]
    ids, skipped = checkpoint.vocab.encode_known(text, skip_unknown=True)  # as `charrnn eval --unknown skip`
    if skipped:
        print(f"left out {skipped:,} characters the model never saw")
    model = checkpoint.model
    print(f"{checkpoint.path}: {model.config.kind} {model.config.layers}x{model.config.hidden};"
          f" {len(ids):,} characters; torch {torch.__version__}, {torch.get_num_threads()} threads;"
          f" parallel streams in {precision}")  # fmt: skip
    t0 = time.perf_counter()
    one = score(model, ids, streams=1)
    t_one = time.perf_counter() - t0
    print(f"{'streams':>7} {'warm-up':>7} {'loss':>10} {'rel diff':>9} {'seconds':>8} {'speed-up':>8}")
    print(f"{1:7} {'-':>7} {one.loss:10.6f} {0:9.2%} {t_one:8.1f} {1:8.2f}")
    for streams in args.streams:
        for warmup in args.warmups:
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                many = score(model, ids, streams=streams, warmup=warmup, precision=precision)
                times.append(time.perf_counter() - t0)
            t = statistics.median(times)
            assert many.chars == one.chars
            diff = (many.loss - one.loss) / one.loss
            print(f"{streams:7} {warmup:7} {many.loss:10.6f} {diff:9.3%} {t:8.1f} {t_one / t:8.2f}", flush=True)


if __name__ == "__main__":
    main()
