"""Quality per minute: train charrnn on tinyshakespeare for a wall-clock
budget, with nanoGPT's shakespeare_char split (first 90% train, last 10%
val), and report val loss, bits per char, chars/s and parameters.

    python benchmarks/quality.py --minutes 3.5                       # the default model
    python benchmarks/quality.py --minutes 10 -- --model gru --hidden 384
    python benchmarks/quality.py --minutes 3.5 --json

Everything after `--` goes to `charrnn train` as is. The learning rate
decays to its floor exactly when the time runs out (--time-limit).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from charrnn import checkpoint as ckpt

DEFAULT_CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tinyshakespeare.txt"


def run(corpus: Path, minutes: float, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "charrnn", "train", str(corpus), "--out", str(out),
               "--val-frac", "0.1", "--test-frac", "0", "--time-limit", f"{minutes * 60:.0f}s", *extra]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"error: training failed:\n{done.stderr[-2000:]}")
        best = ckpt.load_checkpoint(out)
        last = best.run.metrics[-1]
        return {
            "args": extra,
            "minutes": minutes,
            "val_loss": best.run.best_val_loss,
            "val_bpc": best.run.best_val_loss / 0.6931471805599453,
            "steps": last["step"],
            "chars_per_s": last["chars_seen"] / last["elapsed_s"],
            "parameters": best.model.num_parameters(),
            "model": best.config.to_dict(),
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--minutes", type=float, default=3.5, help="wall-clock training budget")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    ap.add_argument("train_args", nargs="*", help="after --: options for charrnn train")
    args = ap.parse_args()
    if not args.corpus.is_file():
        sys.exit(f"error: corpus not found: {args.corpus}")
    result = run(args.corpus, args.minutes, args.train_args)
    if args.json:
        print(json.dumps(result))
        return
    table = Table(title=f"tinyshakespeare, 90/10 split, {args.minutes} minutes")
    for col in ("model", "parameters", "steps", "chars/s", "val loss (nats/char)", "val bpc"):
        table.add_column(col, justify="right")
    m = result["model"]
    table.add_row(
        f"{m['layers']}x{m['hidden']} {m['kind']} (E{m['embedding']}) {' '.join(args.train_args)}",
        f"{result['parameters']:,}", str(result["steps"]), f"{result['chars_per_s']:,.0f}",
        f"{result['val_loss']:.4f}", f"{result['val_bpc']:.4f}",
    )  # fmt: skip
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
