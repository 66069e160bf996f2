"""Learning curves of a run: train and val loss against characters seen
and against wall time, from its metrics.jsonl, as a PNG.

    charrnn plot checkpoints/shakespeare-gru --out curves.png

Needs matplotlib (pip install -e '.[plot]').
"""

from __future__ import annotations

from pathlib import Path

from .errors import CharRNNError
from .files import atomic_path


def plot(entries: list[dict], out: Path, title: str) -> None:
    """A run's metrics entries (rundir.read_metrics) -> a PNG (or any format
    matplotlib writes, by out's suffix)."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise CharRNNError("plotting needs matplotlib: pip install -e '.[plot]'") from None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, x_key, label, scale in ((axes[0], "chars_seen", "characters seen (millions)", 1e6),
                                    (axes[1], "elapsed_s", "wall time (minutes)", 60)):  # fmt: skip
        xs = [r[x_key] / scale for r in entries]
        ax.plot(xs, [r["train_loss"] for r in entries], label="train", marker=".")
        ax.plot(xs, [r["val_loss"] for r in entries], label="val", marker=".")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("loss (nats/char)")
    axes[0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    kind = out.suffix.lstrip(".").lower()
    if kind not in fig.canvas.get_supported_filetypes():
        plt.close(fig)
        raise CharRNNError(f"cannot write a {out.suffix!r} image: use .png, .svg or .pdf")
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=100, format=kind)
    plt.close(fig)
