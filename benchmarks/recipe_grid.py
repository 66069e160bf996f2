"""The measurement behind `--size auto`'s recipes on corpora other than
tinyshakespeare: for each corpus slice and budget, train what a user who
gives only the corpus (and the budget) gets, beside the model the plan
chose before the recipes (the corpus-size rule's LSTM, `--model lstm`),
and check that the choice is within 0.03 nats/char of the best of them.

    python benchmarks/recipe_grid.py --prose kjv.txt                 # run (resumes from --log)
    python benchmarks/recipe_grid.py --budgets 2m --sizes 1m         # a part of it
    python benchmarks/recipe_grid.py --table                         # the docs' table, from --log

Corpora and slices are size_rule.py's (verse: the shipped corpus; code:
this Python's standard library; prose: the King James Bible, if given).
Budgets: `2m` is `--time-limit 2m`, `10m` is `--time-limit 10m`, and
`default` is no budget at all (the default number of steps). Every other
option is left to the plan: the fitted validation split, cadence and
patience. A result is the best checkpoint's val loss. Time-limited runs
need the CPU to themselves: between runs the grid waits while the file
given by --pause exists, so other work can use the machine. Each result is
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
sys.path.insert(0, str(Path(__file__).resolve().parent))

from charrnn import checkpoint as ckpt  # noqa: E402
from charrnn import rundir  # noqa: E402

from quality import provenance  # noqa: E402
from size_rule import SIZES, logged, read_text  # noqa: E402

BUDGETS = {"2m": ["--time-limit", "2m"], "10m": ["--time-limit", "10m"], "default": []}
CHOICES = {"auto": [], "lstm": ["--model", "lstm"]}  # the plan's choice; the size rule's model before the recipes
LOG = REPO / "benchmarks" / "results" / "recipe_grid.jsonl"
TOLERANCE = 0.03


def train(slice_path: Path, options: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        # --eval-chars 0: every evaluation scores the whole val split, as when the logged cells were run,
        # so that a best val loss compares with theirs (a 5 MB slice's split would now be sampled)
        cmd = [sys.executable, "-m", "charrnn", "train", str(slice_path), "--out", str(out), "--eval-chars", "0", *options]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, check=False, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"error: training failed: {' '.join(cmd)}\n{done.stderr[-2000:]}")
        best = ckpt.load_checkpoint(out)
        last = ckpt.load_checkpoint(out, prefer=rundir.LAST).run
        m = best.model.config
        return {"val_loss": best.run.best_val_loss, "best_step": best.run.step, "steps": last.step,
                "seconds": round(time.perf_counter() - t0, 1), "model": f"{m.layers}x{m.hidden} {m.kind.upper()}",
                "parameters": best.model.num_parameters(), "chose": _chosen(done.stderr)}  # fmt: skip


def _chosen(stderr: str) -> str:
    """The start-up line that says what --size auto chose, and why."""
    return next((line.strip() for line in stderr.splitlines() if "--size auto" in line or "size rule" in line), "")


def key(row: dict) -> tuple:
    return row["corpus"], row["chars"], row["budget"], row["choice"]


def wait_while(pause: Path | None) -> None:
    while pause is not None and pause.exists():
        time.sleep(5)


def run_grid(corpora: dict[str, Path], sizes: list[str], budgets: list[str], log: Path, pause: Path | None) -> None:
    done = {key(r) for r in logged(log)}
    with tempfile.TemporaryDirectory() as tmp:
        for budget in budgets:
            for size in sizes:
                for name, path in corpora.items():
                    text = read_text(path, SIZES[size])
                    slice_path = Path(tmp) / f"{name}-{size}.txt"
                    slice_path.write_text(text, encoding="utf-8")
                    for choice, options in CHOICES.items():
                        if (name, len(text), budget, choice) in done:
                            continue
                        wait_while(pause)
                        result = train(slice_path, BUDGETS[budget] + options)
                        row = {"corpus": name, "size": size, "chars": len(text), "budget": budget, "choice": choice,
                               "options": BUDGETS[budget] + options, **result, **provenance()}  # fmt: skip
                        with log.open("a") as f:
                            f.write(json.dumps(row) + "\n")
                        print(f"{name} {size} {budget} {choice} ({result['model']}): val {result['val_loss']:.4f} "
                              f"(step {result['best_step']}/{result['steps']}, {result['seconds']:.0f} s)", flush=True)  # fmt: skip


def table(log: Path) -> tuple[str, bool]:
    """One row per corpus, slice and budget: each choice's model and val
    loss, and the gap from the plan's choice to the best; and whether every
    gap is within TOLERANCE."""
    cells: dict[tuple, dict] = {}
    for r in logged(log):
        cells.setdefault((r["corpus"], r["size"], r["budget"], r["chars"]), {})[r["choice"]] = r
    lines = ["| corpus | chars | budget | charrnn's choice | val loss | before the recipes | val loss | gap to best |",
             "| --- | ---: | --- | --- | ---: | --- | ---: | ---: |"]  # fmt: skip
    ok = True
    order = {b: i for i, b in enumerate(BUDGETS)}
    for (name, size, budget, chars), runs in sorted(cells.items(), key=lambda kv: (order[kv[0][2]], kv[0][0], kv[0][3])):
        if "auto" not in runs:
            continue
        best = min(r["val_loss"] for r in runs.values())
        gap = runs["auto"]["val_loss"] - best
        ok &= gap <= TOLERANCE
        other = runs.get("lstm")
        lines.append(f"| {name} | {chars:,} | {budget} | {runs['auto']['model']} | {runs['auto']['val_loss']:.3f} | "
                     + (f"{other['model']} | {other['val_loss']:.3f}" if other else "not run | ")
                     + f" | {gap:+.3f} |")  # fmt: skip
    return "\n".join(lines), ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--verse", type=Path, default=REPO / "corpora" / "shakespeare.txt")
    ap.add_argument("--code", type=Path, default=Path(sysconfig.get_paths()["stdlib"]))
    ap.add_argument("--prose", type=Path, default=None, help="the King James Bible as text (size_rule.py says how)")
    ap.add_argument("--corpora", default="verse,code,prose", help="a comma-separated subset of verse,code,prose")
    ap.add_argument("--sizes", default="1m,5m", help=f"a comma-separated subset of {','.join(SIZES)}")
    ap.add_argument("--budgets", default="2m,default", help=f"a comma-separated subset of {','.join(BUDGETS)}")
    ap.add_argument("--log", type=Path, default=LOG)
    ap.add_argument("--pause", type=Path, default=None, help="wait between runs while this file exists")
    ap.add_argument("--table", action="store_true", help="print the table from --log and check the choices; train nothing")
    args = ap.parse_args()
    if args.table:
        text, ok = table(args.log)
        print(text)
        print(f"charrnn's choice within {TOLERANCE} of the best everywhere: {'yes' if ok else 'NO'}")
        return 0 if ok else 1
    sizes, budgets = args.sizes.split(","), args.budgets.split(",")
    if unknown := (set(sizes) - set(SIZES)) | (set(budgets) - set(BUDGETS)):
        sys.exit(f"error: unknown sizes or budgets {sorted(unknown)}")
    corpora = {"verse": args.verse, "code": args.code, **({"prose": args.prose} if args.prose else {})}
    corpora = {name: path for name, path in corpora.items() if name in args.corpora.split(",")}
    run_grid(corpora, sizes, budgets, args.log, args.pause)
    return 0


if __name__ == "__main__":
    sys.exit(main())
