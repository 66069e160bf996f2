"""nanoGPT beside charrnn on the same machine: nanoGPT's CPU recipe for
shakespeare_char (its README's: a 4-layer, 128-wide transformer, block 64,
batch 12, no dropout), trained for a number of iterations sized to a
wall-clock budget, then scored on the whole val split.

nanoGPT is not part of charrnn: bring a checkout of it (karpathy/nanoGPT)
and prepare its data from the same text, then

    cp ../shared/data/tinyshakespeare.txt NANOGPT/data/shakespeare_char/input.txt
    (cd NANOGPT && python data/shakespeare_char/prepare.py)     # the same 90/10 split as quality.py
    python benchmarks/nanogpt.py NANOGPT --iters 2500 --log benchmarks/results/nanogpt.jsonl

in a Python environment with torch and numpy (nanoGPT's prepare.py also
imports requests). nanoGPT has no time limit: its learning rate decays over
--iters, so size --iters to the budget by a short run first (its log prints
milliseconds per iteration), and compare the wall time this prints with the
budget. nanoGPT's own val loss is an estimate from 20 random blocks; this
also scores every character of the val split, in non-overlapping blocks of
64 (the expectation of that estimate), which is the figure to compare with
charrnn's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RECIPE = ["--device=cpu", "--compile=False", "--eval_iters=20", "--log_interval=50", "--block_size=64",
          "--batch_size=12", "--n_layer=4", "--n_head=4", "--n_embd=128", "--dropout=0.0"]  # fmt: skip


def train(nanogpt: Path, iters: int, out: Path) -> float:
    """Train nanoGPT's CPU recipe for `iters` iterations; the wall time in seconds."""
    cmd = [sys.executable, "train.py", "config/train_shakespeare_char.py", *RECIPE, f"--max_iters={iters}",
           f"--lr_decay_iters={iters}", f"--out_dir={out}"]  # fmt: skip
    t0 = time.monotonic()
    done = subprocess.run(cmd, cwd=nanogpt, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"error: nanoGPT's training failed:\n{done.stderr[-2000:]}")
    return time.monotonic() - t0


def score(nanogpt: Path, ckpt_path: Path) -> dict:
    """The checkpoint's loss over the whole val split, in non-overlapping blocks."""
    import numpy as np
    import torch

    sys.path.insert(0, str(nanogpt))
    from model import GPT, GPTConfig  # nanoGPT's

    ck = torch.load(ckpt_path, map_location="cpu")
    model = GPT(GPTConfig(**ck["model_args"]))
    model.load_state_dict({k.removeprefix("_orig_mod."): v for k, v in ck["model"].items()})
    model.eval()
    val = np.memmap(nanogpt / "data" / "shakespeare_char" / "val.bin", dtype=np.uint16, mode="r").astype(np.int64)
    T = ck["model_args"]["block_size"]
    n = (len(val) - 1) // T
    x, y = (torch.from_numpy(val[k : n * T + k].reshape(n, T)) for k in (0, 1))
    total = 0.0
    with torch.no_grad():
        for i in range(0, n, 256):
            _, loss = model(x[i : i + 256], y[i : i + 256])
            total += loss.item() * len(x[i : i + 256])
    return {"iter": ck["iter_num"], "estimated_val_loss": float(ck["best_val_loss"]), "val_loss": total / n,
            "val_chars": n * T}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("nanogpt", type=Path, help="a nanoGPT checkout, its shakespeare_char data prepared")
    ap.add_argument("--iters", type=int, required=True, help="iterations (a multiple of 250 ends on an evaluation)")
    ap.add_argument("--log", type=Path, help="append the result as one JSON line to this file")
    ap.add_argument("--note", default="", help="the machine, or anything else the log should say")
    args = ap.parse_args()
    commit = subprocess.run(["git", "-C", str(args.nanogpt), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True, check=False).stdout.strip()  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        wall = train(args.nanogpt, args.iters, Path(tmp))
        result = {"nanogpt_commit": commit, "iters": args.iters, "wall_s": round(wall, 1), "recipe": RECIPE,
                  **score(args.nanogpt, Path(tmp) / "ckpt.pt"), "date": time.strftime("%Y-%m-%d")}  # fmt: skip
    if args.note:
        result["note"] = args.note
    if args.log:
        with args.log.open("a") as f:
            f.write(json.dumps(result) + "\n")
    print(f"nanoGPT {args.iters} iterations in {wall:.0f} s: whole val split {result['val_loss']:.4f} nats/char"
          f" (its own estimate {result['estimated_val_loss']:.4f})")  # fmt: skip


if __name__ == "__main__":
    main()
