"""Learning curves of a run: train and val loss against characters seen
and against wall time, from its metrics.jsonl, as a PNG.

    python -m charrnn.curves checkpoints/shakespeare-lstm --out curves.png

Needs matplotlib (pip install -e '.[plot]').
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .checkpoint import METRICS
from .errors import CharRNNError


def read_metrics(run: Path) -> list[dict]:
    path = run / METRICS if run.is_dir() else run
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise CharRNNError(f"cannot read {path}: {e.strerror or e}") from None
    records = []
    for n, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except ValueError:
            if n < len(lines):  # only a last line torn by a crash is forgiven
                raise CharRNNError(f"{path} line {n} is not JSON") from None
    if not records:
        raise CharRNNError(f"{path} holds no evaluations yet")
    return records


def plot(records: list[dict], out: Path, title: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise CharRNNError("plotting needs matplotlib: pip install -e '.[plot]'") from None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, x_key, label, scale in ((axes[0], "chars_seen", "characters seen (millions)", 1e6),
                                    (axes[1], "elapsed_s", "wall time (minutes)", 60)):  # fmt: skip
        xs = [r[x_key] / scale for r in records]
        ax.plot(xs, [r["train_loss"] for r in records], label="train", marker=".")
        ax.plot(xs, [r["val_loss"] for r in records], label="val", marker=".")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("loss (nats/char)")
    axes[0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="a run directory (or its metrics.jsonl)")
    ap.add_argument("--out", type=Path, default=Path("curves.png"), help="PNG to write (default curves.png)")
    args = ap.parse_args(argv)
    try:
        plot(read_metrics(args.run), args.out, str(args.run))
    except CharRNNError as e:
        sys.exit(f"error: {e}")
    print(args.out)


if __name__ == "__main__":
    main()
