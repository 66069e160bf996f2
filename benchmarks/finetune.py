"""Fine-tuning against training from scratch, on small corpora of a user's own.

    charrnn train --out checkpoints/shakespeare-lstm --size fixed   # the parent: the default LSTM
    python benchmarks/finetune.py                             # 60 s per run
    python benchmarks/finetune.py --seconds 30 --scales 0.25

For each small corpus (50 KB of Python source from the standard library,
and 50 KB of licence prose where Debian ships the GPL texts), it trains the
default model from scratch, then fine-tunes the parent (`--init-from`) with
the learning rate at each of --scales times the kind's default, every run
for the same wall-clock budget, with the same split (last 10% val), and
evaluating every 10 steps. Prints the best val loss of each: the fine-tuning
default (training/finetune.py LR_SCALE) is the scale that does best.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from charrnn import checkpoint as ckpt

REPO = Path(__file__).resolve().parents[1]
SIZE = 50_000  # characters


def corpora(tmp: Path) -> dict[str, Path]:
    """name -> a file of SIZE characters."""
    sources = {"code": [Path(sysconfig.get_paths()["stdlib"]) / "argparse.py"],
               "prose": [Path("/usr/share/common-licenses") / n for n in ("GPL-3", "GPL-2")]}  # fmt: skip
    out = {}
    for name, files in sources.items():
        if all(f.exists() for f in files):
            text = "".join(f.read_text(encoding="utf-8") for f in files)[:SIZE]
            (tmp / f"{name}.txt").write_text(text, encoding="utf-8")
            out[name] = tmp / f"{name}.txt"
    return out


# The model the logged figures were measured with (before --size auto sized
# a 50 kB corpus's model itself): the fixed default, 2x384 without dropout.
SCRATCH = ["--size", "fixed"]


def best_val(corpus: Path, seconds: float, extra: list[str], tmp: Path) -> float:
    out = tmp / "run"
    cmd = [sys.executable, "-m", "charrnn", "train", str(corpus), "--out", str(out), "--force", "--val-frac", "0.1",
           "--test-frac", "0", "--eval-every", "10", "--time-limit", f"{seconds:g}s", *extra]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    return ckpt.load_checkpoint(out).run.best_val_loss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parent", type=Path, default=REPO / "checkpoints" / "shakespeare-lstm")
    ap.add_argument("--seconds", type=float, default=60.0, help="wall-clock budget of every run")
    ap.add_argument("--scales", default="1,0.5,0.25,0.1", help="fine-tuning lr, as fractions of the kind's default")
    args = ap.parse_args()
    parent = ckpt.load_checkpoint(args.parent)
    lr = parent.config.cell.default_lr
    c, step = parent.config, parent.run.step if parent.run else "-"
    print(f"parent: {parent.path} ({c.layers}x{c.hidden} {c.kind}, step {step}); {os.cpu_count()} CPUs,"
          f" {platform.processor() or platform.machine()}")  # fmt: skip
    print(f"{'corpus':8} {'start':24} {'best val (nats/char)':>20}")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for name, corpus in corpora(tmp).items():
            print(f"{name:8} {'scratch':24} {best_val(corpus, args.seconds, SCRATCH, tmp):20.4f}", flush=True)
            for scale in (float(s) for s in args.scales.split(",")):
                extra = ["--init-from", str(args.parent), "--lr", f"{lr * scale:.3g}"]
                val = best_val(corpus, args.seconds, extra, tmp)
                print(f"{name:8} {f'fine-tune, lr x{scale:g}':24} {val:20.4f}", flush=True)


if __name__ == "__main__":
    main()
