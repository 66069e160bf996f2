"""`charrnn compare`: checkpoint (+ text) -> the model beside n-gram
models of its training text -> tables, JSON, a plot, or a page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from .. import files
from ..api import load
from ..compare import ERROR_BELOW, MAX_N, Comparison
from ..inspection import page
from ..inspection.record import record
from .options import CheckpointArg, DeviceName, DeviceOpt, ForceOpt, Unknown, console, err, unknown_opt

UnknownTextOpt = unknown_opt("Characters of the text")


def compare(
    checkpoint: CheckpointArg,
    text_file: Annotated[Optional[Path], typer.Argument(
        help="Text to score. Default: the checkpoint's own test split.", show_default=False)] = None,  # fmt: skip
    max_n: Annotated[int, typer.Option(help="n-gram models of orders 1 to this.", min=1, max=64)] = MAX_N,
    max_chars: Annotated[Optional[int], typer.Option(
        help="Score at most this many characters of the text (default: all).", min=2)] = None,  # fmt: skip
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
    plot: Annotated[Optional[Path], typer.Option(
        help="Also write a figure (PNG, SVG or PDF by the suffix; needs matplotlib: charrnn[plot]).")] = None,  # fmt: skip
    html: Annotated[Optional[Path], typer.Option(
        help="Also write the inspect page of the text's start, with a view that colours each character by where"
             " the model beats or loses to the best n-gram.")] = None,  # fmt: skip
    html_chars: Annotated[int, typer.Option(help="Characters shown on the page.", min=1)] = 3000,
    force: ForceOpt = False,
    unknown: UnknownTextOpt = Unknown.error,
    device: DeviceOpt = DeviceName.auto,
) -> None:
    """Set a model beside n-gram models of its own training text: the loss
    against n, where its errors lie, and how it closes brackets and quotes
    far from their openers."""
    for path, flag in ((plot, "--plot"), (html, "--html")):
        if path is not None:
            files.check_replaceable(path, force, flag)
    if plot is not None:
        from ..compare_plot import check_plot, plot_comparison  # matplotlib only when asked for

        check_plot(plot)  # before minutes of counting, not after
    model = load(checkpoint, device.value)
    result = model.compare(text_file, max_n, max_chars, unknown.value)
    if plot is not None:
        plot_comparison(result, plot)
        err.print(f"wrote {plot}", markup=False)
    if html is not None:
        n = min(html_chars, len(result.text))
        rec = record(model.net, model.vocab, result.text[:n])
        view = {"n": result.best_n, "model": _rounded(result.rnn_logp[: n - 1]), "ngram": _rounded(result.ngram_logp[: n - 1])}
        files.write_bytes_atomic(html, page.render(rec, {"compare": view}, n).encode())
        err.print(f"wrote {html}", markup=False)
    if as_json:
        print(json.dumps(result.to_dict()))
        return
    _print(result)


def _rounded(values) -> list[float]:
    return [round(float(v), 4) for v in values]


def _print(c: Comparison) -> None:
    console.print(f"{c.source}: {c.chars:,} characters predicted; the model {c.rnn:.4f} nats/char,"
                  f" the best n-gram (n = {c.best_n}) {dict(c.ngram)[c.best_n]:.4f}", markup=False, highlight=False)
    ngrams = Table(title="n-gram models (interpolated Kneser-Ney on the train split)")
    for col in ("n", "loss (nats/char)", "vs the model"):
        ngrams.add_column(col, justify="right")
    for n, loss in c.ngram:
        ngrams.add_row(str(n), f"{loss:.4f}", f"{loss - c.rnn:+.4f}")
    ngrams.add_row("model", f"{c.rnn:.4f}", "", style="bold")
    console.print(ngrams)
    errors = Table(title=f"the model's {c.errors:,} errors (a character given p < {ERROR_BELOW}), peeled in this order")
    for col in ("category", "errors", "share of errors", "share of all loss"):
        errors.add_column(col, justify="left" if col == "category" else "right")
    for name, cat in c.breakdown.items():
        errors.add_row(name, f"{cat.errors:,}", f"{cat.share:.1%}", f"{cat.loss_share:.1%}")
    console.print(errors)
    far = Table(title=f"closing characters: loss against the distance to their opener (n-gram: n = {c.best_n})")
    for col in ("closes", "distance", "count", "model", "n-gram", "model better by"):
        far.add_column(col, justify="left" if col == "closes" else "right")
    for b in c.long_range:
        span = f"{b.low}-{b.high - 1}" if b.high < 10**9 else f"{b.low}+"
        far.add_row(b.closes, span, f"{b.count:,}", f"{b.rnn:.3f}", f"{b.ngram:.3f}", f"{b.ngram - b.rnn:+.3f}")
    console.print(far)
    s = c.seconds
    console.print(f"n-gram models counted and scored in {s['ngram']:.1f} s, the model scored in {s['rnn_score']:.1f} s",
                  markup=False, highlight=False)  # fmt: skip
