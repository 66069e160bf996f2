"""Quality per minute: train charrnn on tinyshakespeare for a wall-clock
budget, with nanoGPT's shakespeare_char split (first 90% train, last 10%
val), and report val loss, bits per char, chars/s and parameters.

    python benchmarks/quality.py --minutes 3.5                       # the default model
    python benchmarks/quality.py --minutes 10 -- --model gru --hidden 384
    python benchmarks/quality.py --minutes 3.5 --json
    python benchmarks/quality.py --minutes 2 --auto                  # charrnn's own choice for 2 minutes
    python benchmarks/quality.py --minutes 10 --log benchmarks/results/quality.jsonl
    python benchmarks/quality.py --table benchmarks/results/quality.jsonl
    python benchmarks/quality.py --table benchmarks/results/quality.jsonl --best

Everything after `--` goes to `charrnn train` as is. A model not sized there
is the fixed default (`--size fixed`), so a row is the model its options
name; with `--auto`, the plan chooses (`--size auto`: the size rule and the
recipes for the budget), as for a user who gives only the corpus, the
split and the time. The learning rate decays to its floor exactly when the time runs out
(--time-limit).
`--log` appends each result (with the machine, torch version and commit)
to a JSON-lines file; `--table` renders such a file as the README's
markdown table: one row per configuration, one column per budget; with
`--best`, one row per cell kind and size, holding its best configuration's
result in each budget. A logged row with an `experiment` field ran code that
is not in the repository (a trial, its note says which); it stays in the
log as a record but out of both tables, since its options cannot repeat it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from charrnn import checkpoint as ckpt
from charrnn import rundir
from charrnn import cells as cell_kinds
from charrnn.cli.options import format_lr

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO.parent / "shared" / "data" / "tinyshakespeare.txt"
LN2 = 0.6931471805599453


def run(corpus: Path, minutes: float, extra: list[str], auto: bool = False) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        size = [] if auto else ["--size", "fixed"]
        cmd = [sys.executable, "-m", "charrnn", "train", str(corpus), "--out", str(out),
               "--val-frac", "0.1", "--test-frac", "0", "--time-limit", f"{minutes * 60:.0f}s",
               *size, *extra]  # fmt: skip
        done = subprocess.run(cmd, check=False, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"error: training failed:\n{done.stderr[-2000:]}")
        best = ckpt.load_checkpoint(out)  # the lowest val loss: later steps may overfit
        last = ckpt.load_checkpoint(out, prefer=rundir.LAST).run.metrics[-1]
        return {
            "args": extra,
            **({"auto": True} if auto else {}),
            "minutes": minutes,
            "val_loss": best.run.best_val_loss,
            "val_bpc": best.run.best_val_loss / LN2,
            "best_step": best.run.step,
            "steps": last["step"],
            "chars_per_s": last["chars_seen"] / last["elapsed_s"],
            "parameters": best.model.num_parameters(),
            "model": best.config.to_dict(),
            "train": best.run.train_config,
        }


def provenance() -> dict:
    """Where a figure was measured, so a logged result can be compared fairly."""
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        check=False,
        capture_output=True,
        text=True,
    )
    return {
        "date": datetime.date.today().isoformat(),
        "commit": commit.stdout.strip() or None,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
    }


def label(result: dict) -> str:
    m = result["model"]
    if result.get("auto"):  # what the plan chose, with no option but the corpus, the split and the time
        return f"charrnn's defaults: {m['kind'].upper()} {m['layers']}x{m['hidden']}"
    return f"{m['kind'].upper()} {m['layers']}x{m['hidden']}" + _options(result)


def _drop_size_flags(args: list[str]) -> str:
    """The train options other than the cell kind and size, which the label already names."""
    kept, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a in ("--model", "--layers", "--hidden"):
            skip = True
        else:
            kept.append(a)
    return " ".join(kept)


def reproducible(results) -> list[dict]:
    """The logged results that the repository's code and their options
    repeat: not the `experiment` rows (trials of code never committed)."""
    return [r for r in results if "experiment" not in r]


def markdown_table(results: list[dict]) -> str:
    """Rows: configurations (in first-seen order); columns: budgets; cells:
    val loss in nats/char (the last logged result wins where one repeats)."""
    budgets = sorted({r["minutes"] for r in results})
    rows: dict[str, dict] = {}
    for r in results:
        row = rows.setdefault(label(r), {"parameters": r["parameters"], "cells": {}})
        row["cells"][r["minutes"]] = r
    lines = _header(["model", "parameters", *(f"{b:g} min" for b in budgets), "chars/s"])
    for name, row in rows.items():
        cells = [_cell(row["cells"][b]) if b in row["cells"] else "" for b in budgets]
        speed = max(c["chars_per_s"] for c in row["cells"].values())
        lines.append(f"| {name} | {row['parameters'] / 1e6:.2f}M | " + " | ".join(cells) + f" | {speed / 1000:.0f}k |")
    return "\n".join(lines)


def best_table(results: list[dict]) -> str:
    """Rows: cell kind and size (LSTM, GRU, RNN, minGRU, minLSTM; small to large); cells: the
    lowest val loss any logged configuration of that size reached in that
    budget, with the options that reached it."""
    budgets = sorted({r["minutes"] for r in results})
    order = {"lstm": 0, "gru": 1, "rnn": 2, "mingru": 3, "minlstm": 4}
    sizes: dict[tuple, dict[float, dict]] = {}
    for r in results:
        m = r["model"]
        cells = sizes.setdefault((order.get(m["kind"], len(order)), m["layers"], m["hidden"], m["kind"]), {})
        if r["minutes"] not in cells or r["val_loss"] < cells[r["minutes"]]["val_loss"]:
            cells[r["minutes"]] = r
    lines = _header(["model", "parameters", *(f"{b:g} min" for b in budgets)])
    for (_, layers, hidden, kind), cells in sorted(sizes.items()):
        params = next(iter(cells.values()))["parameters"]
        texts = [_cell(cells[b]) + _options(cells[b]) if b in cells else "" for b in budgets]
        lines.append(f"| {kind.upper()} {layers}x{hidden} | {params / 1e6:.2f}M | " + " | ".join(texts) + " |")
    return "\n".join(lines)


def _header(columns: list[str]) -> list[str]:
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]


def _options(result: dict) -> str:
    """The train options other than kind and size, in brackets (or nothing).
    A learning rate that was the default when the run was logged but is not
    the kind's default now is named, so old and new runs stay apart."""
    extra = _drop_size_flags(result["args"])
    lr, kind = result.get("train", {}).get("lr"), result["model"]["kind"]
    given = any(a == "--lr" or a.startswith("--lr=") for a in result["args"])
    if not given and lr is not None and lr != cell_kinds.get(kind).default_lr:
        extra = f"{extra} --lr {format_lr(lr)}".strip()
    return f" ({extra})" if extra else ""


def _cell(result: dict) -> str:
    """The best val loss, marked with † where it came before the run's end
    (val loss rose afterwards: the model overfit)."""
    early = result.get("steps") is None or result.get("best_step", result["steps"]) < result["steps"]
    return f"{result['val_loss']:.3f}" + ("†" if early else "")


def print_result(result: dict, minutes: float) -> None:
    table = Table(title=f"tinyshakespeare, 90/10 split, {minutes} minutes")
    for col in (
        "model",
        "parameters",
        "steps",
        "chars/s",
        "val loss (nats/char)",
        "val bpc",
    ):
        table.add_column(col, justify="right")
    table.add_row(
        label(result), f"{result['parameters']:,}", f"{result['steps']} ({result['best_step']})", f"{result['chars_per_s']:,.0f}",
        f"{result['val_loss']:.4f}", f"{result['val_bpc']:.4f}",
    )  # fmt: skip
    Console(width=140).print(table)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--minutes", type=float, default=3.5, help="wall-clock training budget")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    ap.add_argument("--log", type=Path, help="append the result as one JSON line to this file")
    ap.add_argument(
        "--table",
        type=Path,
        metavar="LOG",
        help="print a --log file as a markdown table and exit",
    )
    ap.add_argument(
        "--best", action="store_true", help="with --table: one row per cell kind and size, its best result per budget"
    )
    ap.add_argument("--auto", action="store_true",
                    help="leave the model and its training to charrnn's defaults (--size auto), as a user would")
    ap.add_argument("train_args", nargs="*", help="after --: options for charrnn train")
    args = ap.parse_args()
    if args.table:
        if not args.table.is_file():
            sys.exit(f"error: no such log: {args.table}")
        results = reproducible(json.loads(line) for line in args.table.read_text().splitlines() if line.strip())
        print((best_table if args.best else markdown_table)(results))
        return
    if not args.corpus.is_file():
        sys.exit(f"error: corpus not found: {args.corpus}")
    result = run(args.corpus, args.minutes, args.train_args, args.auto) | provenance()
    if args.log:
        with args.log.open("a") as f:
            f.write(json.dumps(result) + "\n")
    if args.json:
        print(json.dumps(result))
    else:
        print_result(result, args.minutes)


if __name__ == "__main__":
    main()
