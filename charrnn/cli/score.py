"""`charrnn score`: checkpoint + a text file -> each line's score -> a table, JSON or CSV."""

from __future__ import annotations

import csv
import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table
from rich.text import Text

from ..api import load
from ..corpus import load_corpus
from ..errors import CharRNNError
from ..terminal import safe_for_terminal
from .options import CheckpointArg, DeviceName, DeviceOpt, EncodingOpt, Unknown, console, unknown_opt

UnknownTextOpt = unknown_opt("Characters of the lines")
SHOWN_CHARS = 60  # of each line, in the table


class SortBy(str, Enum):
    file = "file"  # as the lines come
    likely = "likely"  # the lowest mean loss per character first
    surprising = "surprising"  # the highest first


def score(
    checkpoint: CheckpointArg,
    text_file: Annotated[Path, typer.Argument(help="Text to score, one item per line (a name, a log line, a verse).")],
    sort: Annotated[SortBy, typer.Option(
        help="Row order: file (as given), likely (lowest nats/char first) or surprising (highest first).")] = SortBy.file,  # fmt: skip
    top: Annotated[Optional[int], typer.Option(help="Show only the first N rows (after sorting).", min=1)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON list, an object per line.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV with a header row.")] = False,
    device: DeviceOpt = DeviceName.auto,
    encoding: EncodingOpt = "utf-8",
    unknown: UnknownTextOpt = Unknown.error,
) -> None:
    """Score every line of a text: how likely the model finds it, end of line included."""
    if as_json and as_csv:
        raise CharRNNError("give --json or --csv, not both")
    model = load(checkpoint, device.value)
    numbered = read_lines(text_file, encoding, model.config.documents)
    scores = model.score_lines([line for _, line in numbered], unknown.value)
    rows = [{"line": number, "text": line, **s.to_dict()} for (number, line), s in zip(numbered, scores)]
    if sort is not SortBy.file:
        rows.sort(key=lambda r: r["mean_nats"], reverse=sort is SortBy.surprising)
    rows = rows[:top]
    if as_json:
        print(json.dumps(rows, ensure_ascii=False))
    elif as_csv:
        _csv(rows)
    else:
        console.print(_table(rows, console.width))


def read_lines(path: Path, encoding: str, documents: str = "") -> list[tuple[int, str]]:
    """The file's lines, numbered from 1, without their newlines; checked as
    a corpus is (a missing, binary or badly encoded file is refused in one
    line). For a model of lines, its documents as training read them: a
    \\r\\n line end is a line end, and an empty line is no document (its
    number is skipped); for a model of files, the file is one."""
    corpus = load_corpus(path, encoding)
    text = corpus.vocab.decode(corpus.ids)
    if documents == "files":
        return [(1, text)]
    lines = list(enumerate(text.split("\n"), 1))
    if lines and lines[-1][1] == "":  # the newline that ends the last line
        lines.pop()
    if documents == "lines":
        lines = [(i, line.removesuffix("\r")) for i, line in lines if line.removesuffix("\r")]
    if not lines:
        raise CharRNNError(f"{path} has no lines to score")
    return lines


def _csv(rows: list[dict]) -> None:
    sys.stdout.reconfigure(newline="")  # the csv module writes its own line ends
    writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]) if rows else ["line"])
    writer.writeheader()
    writer.writerows(rows)


def _table(rows: list[dict], width: int) -> Table:
    """The figures in full; each line cut to what the terminal has left."""
    table = Table(box=None)
    heads = ("line", "bits/char", "nats/char", "total nats", "chars")
    for name in heads:
        table.add_column(name, justify="right", no_wrap=True)
    room = max(8, min(SHOWN_CHARS, width - sum(len(h) + 2 for h in heads) - 4))
    table.add_column("text", no_wrap=True)
    for r in rows:
        shown = r["text"] if len(r["text"]) <= room else r["text"][: room - 1] + "…"
        table.add_row(str(r["line"]), f"{r['bits_per_char']:.3f}", f"{r['mean_nats']:.3f}", f"{r['total_nats']:.2f}",
                      str(r["chars"]), Text(safe_for_terminal(shown)))  # fmt: skip
    return table
