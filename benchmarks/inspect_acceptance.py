"""Does `inspect` find what is there? Train a 1x128 LSTM on a synthetic
corpus with known structure (charrnn.inspection.synthetic), record a fresh held-out
text, and report the finder's best cell-state unit per feature against the
same statistic at random initialisation, plus a shuffled-label negative
control. Targets: quotes |r| >= 0.6, beating the control by >= 0.3;
shuffled labels best |r| < 0.05.

    python benchmarks/inspect_acceptance.py                # ~5 minutes on 2 cores
    python benchmarks/inspect_acceptance.py --run DIR      # reuse a trained run
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from charrnn import checkpoint as ckpt
from charrnn.inspection import synthetic
from charrnn.inspection.analysis import correlations
from charrnn.inspection.features import BUILTIN_FEATURES
from charrnn.inspection.record import record
from charrnn.model import CharRNN


def train(run: Path, minutes: float, seed: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "synthetic.txt"
        corpus.write_text(synthetic.generate(2_000_000, seed=seed))
        cmd = [sys.executable, "-m", "charrnn", "train", str(corpus), "--out", str(run), "--force",
               "--layers", "1", "--hidden", "128", "--seq-len", "100", "--batch-size", "32",
               "--time-limit", f"{minutes}m", "--eval-every", "500", "--seed", str(seed)]  # fmt: skip
        subprocess.run(cmd, check=True)


def best_cell_unit(acts: np.ndarray, feature: np.ndarray) -> tuple[int, float]:
    """Pick on the first half, report r on the second."""
    half = len(feature) // 2
    j = int(np.argmax(np.abs(correlations(acts[:half], feature[:half]))))
    return j, float(correlations(acts[half:, j : j + 1], feature[half:])[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, help="an already trained run directory (skips training)")
    ap.add_argument("--minutes", type=float, default=4.0, help="training time")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    run = args.run or Path(tempfile.mkdtemp()) / "run"
    if args.run is None:
        train(run, args.minutes, args.seed)
    state = ckpt.load_checkpoint(run)
    text = synthetic.generate(20_000, seed=args.seed + 1000)  # text the model never saw
    trained = record(state.model, state.vocab, text)
    torch.manual_seed(args.seed)
    control = record(CharRNN(state.config), state.vocab, text)
    table = Table(title=f"best l0.c unit per feature, held-out half ({state.run.step} steps, val {state.run.best_val_loss:.3f})")
    for col in ("feature", "unit", "r", "r control (same unit, random init)", "r - |control|"):
        table.add_column(col, justify="right")
    for name in ("inside double quotes", "inside a comment", "bracket depth", "indentation", "position in line"):
        f = BUILTIN_FEATURES[name](text)
        j, r = best_cell_unit(trained.tensors["l0.c"], f)
        rc = float(correlations(control.tensors["l0.c"][len(f) // 2 :, j : j + 1], f[len(f) // 2 :])[0])
        table.add_row(name, str(j), f"{r:+.3f}", f"{rc:+.3f}", f"{abs(r) - abs(rc):.3f}")
    shuffled = np.random.default_rng(0).permutation(BUILTIN_FEATURES["inside double quotes"](text))
    j, r = best_cell_unit(trained.tensors["l0.c"], shuffled)
    table.add_row("shuffled quote labels", str(j), f"{r:+.3f}", "", "")
    Console(width=130).print(table)


if __name__ == "__main__":
    main()
