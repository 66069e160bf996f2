"""`charrnn eval`: checkpoint + text (or the run's test split) -> score -> a table or JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ..api import load
from ..evaluate import STREAMS, WARMUP
from .options import CheckpointArg, DeviceName, DeviceOpt, EncodingOpt, Unknown, console, unknown_opt

UnknownTextOpt = unknown_opt("Characters of the text")


def evaluate(
    checkpoint: CheckpointArg,
    text_file: Annotated[
        Optional[Path],
        typer.Argument(help="Text to score. Default: the checkpoint's own test split, if its corpus is at hand."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object with full-precision floats.")] = False,
    device: DeviceOpt = DeviceName.auto,
    encoding: EncodingOpt = "utf-8",
    streams: Annotated[int, typer.Option(
        help=f"Read the text as this many parallel streams, each but the first warmed up on the {WARMUP} characters"
        " before its part (faster; within 0.2% of one stream, see the README). 1: one stream, exact.")] = STREAMS,
    unknown: UnknownTextOpt = Unknown.error,
) -> None:
    """Score a model on a text: loss (nats/char), bits per char, perplexity."""
    evaluation = load(checkpoint, device.value).evaluate(text_file, encoding, streams, unknown.value)
    result = evaluation.score
    if as_json:
        print(json.dumps(evaluation.to_dict()))
        return
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for name, value in [
        ("model", str(evaluation.checkpoint)),
        ("text", evaluation.source),
        ("loss", f"{result.loss:.4f} nats/char"),
        ("bits per char", f"{result.bpc:.4f}"),
        ("perplexity", f"{result.perplexity:.4f}"),
        ("characters", f"{result.chars:,}"),
        *([("skipped, never seen", f"{evaluation.skipped:,}")] if evaluation.skipped else []),
    ]:
        table.add_row(name, value)
    console.print(table)
