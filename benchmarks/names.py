"""Names, one a line: charrnn's documents mode against makemore and against
the same names read as plain text, in the same wall-clock on one machine.

    python benchmarks/names.py --makemore DIR [--minutes 3] [--python PY] [--log]

DIR holds karpathy/makemore's makemore.py and names.txt (32,033 names;
not part of charrnn: fetch the repository). PY is a Python that can run
makemore (it needs tensorboard); default: this one. The 1,000 test names
are makemore's own (its seed 3407 and its randperm), and the other 31,033
are what every run trains on:

1. makemore, as a new user runs it (`makemore.py -i names.txt`, its
   default transformer, 4 data workers), stopped after MINUTES; its figure is
   the best test loss it printed (it evaluates every 500 steps, on the
   test names, per character with the end token).
2. `charrnn train train.txt --documents lines --time-limit MINUTES
   --test-frac 0`, then `charrnn eval RUN test.txt`: each test name from
   a fresh state, through its end marker.
3. The same with no --documents: the names as one text, the state carried
   from each into the next; `charrnn eval RUN test.txt --streams 1` scores
   the test names the same way, a newline ending each.

Prints and (with --log) appends to benchmarks/results/names.jsonl each
run's test loss (nats per character, the end included), its steps, and 20
samples. CPU-bound: run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
LOG = ROOT / "benchmarks" / "results" / "names.jsonl"
MAKEMORE_SEED = 3407


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def makemore_split(names_file: Path) -> tuple[list[str], list[str]]:
    """makemore's create_datasets: the same seed, the same permutation."""
    words = [w.strip() for w in names_file.read_text(encoding="utf-8").splitlines()]
    words = [w for w in words if w]
    torch.manual_seed(MAKEMORE_SEED)
    test_size = min(1000, int(len(words) * 0.1))
    order = torch.randperm(len(words)).tolist()
    return [words[i] for i in order[:-test_size]], [words[i] for i in order[-test_size:]]


def run_makemore(python: str, makemore: Path, work: Path, seconds: float) -> dict:
    out = work / "makemore"
    cmd = [python, str(makemore / "makemore.py"), "-i", str(makemore / "names.txt"), "-o", str(out)]
    started = time.monotonic()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds, cwd=work)
        text = done.stdout
    except subprocess.TimeoutExpired as stopped:
        text = stopped.stdout.decode() if isinstance(stopped.stdout, bytes) else (stopped.stdout or "")
    elapsed = time.monotonic() - started
    tests = [(int(s), float(t)) for s, t in re.findall(r"step (\d+) train loss: \S+ test loss: (\S+)", text)]
    steps = max([int(s) for s in re.findall(r"^step (\d+) \|", text, re.M)] or [0])
    samples = subprocess.run([*cmd, "--sample-only"], capture_output=True, text=True, cwd=work, timeout=300).stdout
    drawn = [w for w in samples.split("-" * 80)[1].splitlines() if w and not w.endswith(":")] if "-" * 80 in samples else []
    best = min(tests, key=lambda st: st[1]) if tests else (None, None)
    return {"run": "makemore transformer (its defaults)", "test_loss": best[1], "at_step": best[0], "steps": steps,
            "seconds": round(elapsed, 1), "samples": drawn[:20]}  # fmt: skip


def run_charrnn(train: Path, test: Path, work: Path, minutes: float, documents: bool) -> dict:
    out = work / ("documents" if documents else "plain")
    extra = ["--documents", "lines"] if documents else []
    cmd = [sys.executable, "-m", "charrnn", "train", str(train), "--out", str(out), "--time-limit", f"{minutes}m",
           "--test-frac", "0", *extra]  # fmt: skip
    started = time.monotonic()
    subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
    elapsed = time.monotonic() - started
    streams = [] if documents else ["--streams", "1"]  # exact: one state through the test names
    ev = subprocess.run([sys.executable, "-m", "charrnn", "eval", str(out), str(test), "--json", *streams],
                        check=True, capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    sample = [sys.executable, "-m", "charrnn", "sample", str(out), "--seed", "1"]
    sample += ["--num-samples", "20"] if documents else ["--length", "300"]
    drawn = subprocess.run(sample, check=True, capture_output=True, text=True, cwd=ROOT).stdout.split("\n")
    plan = json.loads(subprocess.run([*cmd, "--plan", "--json", "--force"], check=True, capture_output=True, text=True,
                                     cwd=ROOT).stdout)  # fmt: skip
    model = plan["model"]
    return {"run": f"charrnn {'--documents lines' if documents else 'plain text'}", "test_loss": json.loads(ev.stdout)["loss"],
            "steps": metrics[-1]["step"], "seconds": round(elapsed, 1),
            "model": f"{model['layers']}x{model['hidden']} {model['kind']}",
            "samples": [line for line in drawn if line][:20]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--makemore", type=Path, required=True, help="a directory with makemore.py and names.txt")
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--python", default=sys.executable, help="the Python that runs makemore")
    parser.add_argument("--only", choices=("makemore", "documents", "plain"), action="append")
    parser.add_argument("--log", action="store_true")
    args = parser.parse_args()
    train_words, test_words = makemore_split(args.makemore / "names.txt")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        train, test = work / "train.txt", work / "test.txt"
        train.write_text("\n".join(train_words) + "\n", encoding="utf-8")
        test.write_text("\n".join(test_words) + "\n", encoding="utf-8")
        for which in args.only or ("makemore", "documents", "plain"):
            if which == "makemore":
                row = run_makemore(args.python, args.makemore, work, args.minutes * 60)
            else:
                row = run_charrnn(train, test, work, args.minutes, which == "documents")
            row |= {"minutes": args.minutes, "train_names": len(train_words), "test_names": len(test_words)}
            print(json.dumps(row), flush=True)
            if args.log:
                with LOG.open("a") as f:
                    f.write(json.dumps({"date": time.strftime("%Y-%m-%d"), "cpu": cpu_name(), **row}) + "\n")


if __name__ == "__main__":
    main()
