"""The measurement behind `--size auto`: train a small grid of model sizes on
slices of several corpora at the default budget, and check that the rule's
choice is within 0.03 nats/char of the grid's best at every slice.

    python benchmarks/size_rule.py --prose kjv.txt            # run (resumes from --log)
    python benchmarks/size_rule.py --table                    # the README's table, from --log

Corpora (each slice is the first N characters):
- verse: the shipped corpus (corpora/shakespeare.txt, 5.05M characters);
- code: this Python's standard library (.py files in sorted order);
- prose: the King James Bible, if given; Debian's `bible-kjv` package
  prints it: `bible -f gen1:1-rev22:21 | sed 's/^[^ ]* //' > kjv.txt`
  (4.1M characters once the verse numbers are stripped, so its "5m"
  slice is the whole text).

Every run is `charrnn train SLICE` with the default budget (3000 steps) and
every other option at its default (the fitted validation split, cadence and
patience included), varying only --layers, --hidden and --dropout. The grid
stops at the default model's size: larger models would not fit the default
budget's time. Dropout 0.4 is tried on the smallest slice only, where
dropout 0.2 beats none by most. A result is the best checkpoint's val loss. Each result is
appended to --log as it comes, and a rerun skips what is logged.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from charrnn import checkpoint as ckpt  # noqa: E402
from charrnn import rundir  # noqa: E402
from charrnn.corpus import corpus_files  # noqa: E402
from charrnn.device import resolve_device  # noqa: E402
from charrnn.training.config import DEFAULT_MAX_STEPS  # noqa: E402

from quality import provenance  # noqa: E402

GRID = [(1, 128, 0.0), (2, 128, 0.2), (2, 256, 0.2), (2, 384, 0.2), (2, 384, 0.0)]
# More dropout, tried only where dropout 0.2 wins by most (a corpus seen for hundreds of epochs).
EXTRA = {"50k": [(2, 384, 0.4)]}
SIZES = {"50k": 50_000, "300k": 300_000, "1m": 1_000_000, "5m": 5_000_000}
LOG = REPO / "benchmarks" / "results" / "size_rule.jsonl"
TOLERANCE = 0.03


def read_text(path: Path, limit: int) -> str:
    """The first `limit` characters of a corpus file, or of a directory's .py
    files in charrnn's order (the code corpus: no data files among them)."""
    parts, n = [], 0
    for f in corpus_files(path) if path.is_file() else [f for f in corpus_files(path) if f.suffix == ".py"]:
        text = f.read_text(encoding="utf-8")
        parts.append(text)
        n += len(text)
        if n >= limit:
            break
    return "".join(parts)[:limit]


def train(slice_path: Path, layers: int, hidden: int, dropout: float, steps: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        # --eval-chars 0: the whole val split, as when the logged rows were run (a large split would be sampled)
        cmd = [sys.executable, "-m", "charrnn", "train", str(slice_path), "--out", str(out), "--max-steps", str(steps),
               "--layers", str(layers), "--hidden", str(hidden), "--dropout", str(dropout),
               "--eval-chars", "0"]  # fmt: skip
        t0 = time.perf_counter()
        done = subprocess.run(cmd, check=False, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"error: training failed: {' '.join(cmd)}\n{done.stderr[-2000:]}")
        best = ckpt.load_checkpoint(out)
        last = ckpt.load_checkpoint(out, prefer=rundir.LAST).run.metrics[-1]
        return {"val_loss": best.run.best_val_loss, "best_step": best.run.step, "steps": last["step"],
                "seconds": round(time.perf_counter() - t0, 1), "parameters": best.model.num_parameters()}  # fmt: skip


def logged(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []


def key(row: dict) -> tuple:
    """What makes two logged runs the same: the slice (by name and length, so
    another text under the same name is run anew) and the model."""
    return row["corpus"], row["chars"], row["layers"], row["hidden"], row["dropout"]


def parse_models(text: str) -> list[tuple[int, int, float]]:
    """'2x384:0.2,2x256:0' -> [(2, 384, 0.2), (2, 256, 0.0)]."""
    models = []
    for item in text.split(","):
        shape, _, dropout = item.partition(":")
        layers, _, hidden = shape.partition("x")
        models.append((int(layers), int(hidden), float(dropout or 0)))
    return models


def run_grid(corpora: dict[str, Path], sizes: list[str], log: Path, steps: int, only: list | None = None) -> None:
    done = {key(r) for r in logged(log) if r["steps_budget"] == steps}
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:  # every corpus's small slices first: their results come soonest
            for name, path in corpora.items():
                text = read_text(path, SIZES[size])
                slice_path = Path(tmp) / f"{name}-{size}.txt"
                slice_path.write_text(text, encoding="utf-8")
                for layers, hidden, dropout in only or GRID + EXTRA.get(size, []):
                    if (name, len(text), layers, hidden, dropout) in done:
                        continue
                    result = train(slice_path, layers, hidden, dropout, steps)
                    row = {"corpus": name, "size": size, "chars": len(text), "layers": layers, "hidden": hidden,
                           "dropout": dropout, "steps_budget": steps, **result, **provenance(),
                           "device": resolve_device("auto").type}  # fmt: skip
                    with log.open("a") as f:
                        f.write(json.dumps(row) + "\n")
                    print(f"{name} {size} {layers}x{hidden} d{dropout}: val {result['val_loss']:.3f} "
                          f"(step {result['best_step']}/{result['steps']}, {result['seconds']:.0f} s)", flush=True)  # fmt: skip


def table(log: Path, steps: int) -> tuple[str, bool]:
    """The README's table (one row per corpus and slice, from the runs of a
    `steps` budget) and whether the rule's choice is within TOLERANCE of the
    grid's best everywhere."""
    from charrnn.training.size import auto_size

    cells: dict[tuple[str, str], dict] = {}
    for r in (r for r in logged(log) if r["steps_budget"] == steps):
        cells.setdefault((r["corpus"], r["size"]), {"chars": r["chars"], "runs": {}})
        cells[(r["corpus"], r["size"])]["runs"][(r["layers"], r["hidden"], r["dropout"])] = r["val_loss"]
    grid = GRID + sorted({g for extra in EXTRA.values() for g in extra})
    heads = [f"{layers}x{hidden} d{dropout:g}" for layers, hidden, dropout in grid]
    lines = ["| corpus | chars | " + " | ".join(heads) + " | rule's choice | gap to best |",
             "| --- | ---: | " + " | ".join("---:" for _ in heads) + " | --- | ---: |"]  # fmt: skip
    ok = True
    order = {s: i for i, s in enumerate(SIZES)}
    for (name, size), cell in sorted(cells.items(), key=lambda kv: (kv[0][0], order[kv[0][1]])):
        runs, best = cell["runs"], min(cell["runs"].values())
        choice = auto_size(cell["chars"])
        key = (choice.layers, choice.hidden, choice.dropout)
        gap = runs[key] - best if key in runs else float("nan")
        ok &= key in runs and gap <= TOLERANCE
        marks = [("**" + f"{runs[g]:.3f}" + "**" if runs.get(g) == best else f"{runs[g]:.3f}") if g in runs else ""
                 for g in grid]  # fmt: skip
        shown = f"{gap:+.3f}" if key in runs else "not run"
        lines.append(f"| {name} | {cell['chars']:,} | " + " | ".join(marks) +
                     f" | {choice.layers}x{choice.hidden} d{choice.dropout:g} | {shown} |")  # fmt: skip
    return "\n".join(lines), ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--verse", type=Path, default=REPO / "corpora" / "shakespeare.txt")
    ap.add_argument("--code", type=Path, default=Path(sysconfig.get_paths()["stdlib"]))
    ap.add_argument("--prose", type=Path, default=None, help="the King James Bible as text (see above); skipped if not given")
    ap.add_argument("--sizes", default=",".join(SIZES), help=f"a comma-separated subset of {','.join(SIZES)}")
    ap.add_argument("--steps", type=int, default=DEFAULT_MAX_STEPS, help="the budget of every run (the default budget)")
    ap.add_argument("--log", type=Path, default=LOG)
    ap.add_argument("--only", default=None, help="run just these models, e.g. 2x384:0.2,2x384:0 (the table shows the rest blank)")
    ap.add_argument("--table", action="store_true", help="print the table from --log and check the rule; train nothing")
    args = ap.parse_args()
    if args.table:
        text, ok = table(args.log, args.steps)
        print(text)
        print(f"rule within {TOLERANCE} of the best everywhere: {'yes' if ok else 'NO'}")
        return 0 if ok else 1
    sizes = args.sizes.split(",")
    if unknown := set(sizes) - set(SIZES):
        sys.exit(f"error: unknown sizes {sorted(unknown)}; choose from {','.join(SIZES)}")
    corpora = {"verse": args.verse, "code": args.code, **({"prose": args.prose} if args.prose else {})}
    run_grid(corpora, sizes, args.log, args.steps, parse_models(args.only) if args.only else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
