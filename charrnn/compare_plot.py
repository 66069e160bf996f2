"""`charrnn compare --plot`: the comparison as one figure (needs matplotlib,
the `plot` extra): the loss against n beside the model's, the breakdown of
its errors, and the loss on closing characters against their distance."""

from __future__ import annotations

from pathlib import Path

from .compare import Comparison
from .errors import CharRNNError
from .files import atomic_path

MIN_COUNT = 10  # a distance bin with fewer closers is left off the figure (it stays in the table and the JSON)


FORMATS = ("png", "svg", "pdf")


def check_plot(out: Path) -> None:
    """Refuse, before any work, a figure that could not be written."""
    if out.suffix.lstrip(".").lower() not in FORMATS:
        raise CharRNNError(f"--plot {out}: name a .png, .svg or .pdf file")
    _pyplot()


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise CharRNNError("--plot needs matplotlib: pip install -e '.[plot]'") from None
    return plt


def plot_comparison(c: Comparison, out: Path) -> None:
    check_plot(out)
    plt = _pyplot()
    fig, (loss_ax, err_ax, far_ax) = plt.subplots(1, 3, figsize=(15, 4.2))
    ns, losses = zip(*c.ngram)
    loss_ax.plot(ns, losses, "o-", label="n-gram (Kneser-Ney)")
    loss_ax.axhline(c.rnn, color="C3", label="the model")
    loss_ax.set(xlabel="n", ylabel="test loss (nats/char)", title="n-gram models against the model")
    loss_ax.legend()
    names = list(c.breakdown)
    err_ax.barh(names[::-1], [c.breakdown[n].share for n in names[::-1]], color="C0")
    err_ax.set(xlabel="share of the model's errors", title=f"{c.errors:,} errors (p < 0.5), peeled top down")
    for closes, colour in (("bracket", "C0"), ("quote", "C2")):
        bins = [b for b in c.long_range if b.closes == closes and b.count >= MIN_COUNT]
        if bins:
            mids = [(b.low * min(b.high, b.low * 4)) ** 0.5 for b in bins]  # geometric middles; the last bin is open
            far_ax.plot(mids, [b.rnn for b in bins], "o-", color=colour, label=f"{closes}: the model")
            far_ax.plot(mids, [b.ngram for b in bins], "s--", color=colour, alpha=0.6, label=f"{closes}: {c.best_n}-gram")
    far_ax.set(xscale="log", xlabel="distance to the opener (characters)", ylabel="loss on the closer (nats)",
               title="closing brackets and quotes" if c.long_range else "no closed brackets or quotes in the text")  # fmt: skip
    if c.long_range:
        far_ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format=out.suffix.lstrip(".").lower(), dpi=110)
    plt.close(fig)
