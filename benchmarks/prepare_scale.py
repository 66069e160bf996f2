"""Prepared corpora at scale: `charrnn prepare`'s throughput, `charrnn
train`'s start-up on a prepared directory against the raw text, and the
resident memory of each process of a 2-process run (torchrun, gloo, CPU).

    python benchmarks/prepare_scale.py                 # a 4 GB corpus, every measurement
    python benchmarks/prepare_scale.py --gb 0.2 --skip-raw   # a quick look
    python benchmarks/prepare_scale.py --only-prepare --workers 1 2
    python benchmarks/prepare_scale.py --table          # the log as docs/prepare.md shows it

The corpus is generated here (never committed) into a temporary directory
on --tmp's disk, and deleted at the end: one UTF-8 file of play-like lines
(words from a fixed list, 1 in 50 lines with non-ASCII characters), --gb
gigabytes (10^9 bytes). Each finished measurement is appended to
benchmarks/results/prepare_scale.jsonl with the CPU's name.

Measured:
- prepare: wall time and MB/s of source bytes with 1 worker process and
  with one a CPU, and the largest peak RSS of any of its processes (the
  main one or a worker: wait4 reports the maximum over those reaped);
- start-up: `charrnn train --plan` (reads the corpus, plans, trains
  nothing) on the prepared directory and on the raw text, wall time and
  peak RSS;
- a 2-process run (`--max-steps`, a 2x256 GRU, val 40k characters) on the
  prepared directory: each worker's peak RSS (VmHWM) and its largest
  anonymous (RssAnon) and file-backed (RssFile: pages of the map, shared
  through the page cache) parts, sampled every 0.1 s; against the same run
  on a 1 MB prepared corpus, which shows what the 4 GB costs beyond the
  model and the runtime.

Timings are wall-clock on a machine other work shares: approximate.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOG = REPO / "benchmarks" / "results" / "prepare_scale.jsonl"
ENV = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", PYTHONPATH=str(REPO))
WORDS = ("the of and to in a is that for it as was with be by on not he this are or his from at which but have an they"
         " you were her she there been one all we their has would when if so no will more out up into do any your"
         " what time about than can only other new some could these two may first then such like our over").split()  # fmt: skip
ODD = "éèàçüöñ—“”’…€"
MODEL = ["--model", "gru", "--layers", "2", "--hidden", "256", "--embedding", "64", "--seq-len", "128",
         "--batch-size", "32", "--val-frac", "0.00001", "--test-frac", "0", "--device", "cpu", "--precision", "fp32"]  # fmt: skip


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def log(entry: dict) -> None:
    entry = {"cpu": cpu_name(), "cores": os.cpu_count(), "time": time.strftime("%Y-%m-%dT%H:%M:%S"), **entry}
    print(json.dumps(entry), flush=True)
    with open(LOG, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")


def generate(path: Path, n_bytes: int, seed: int = 0) -> int:
    """A play-like text of n_bytes or a little more: a 16 MB block of
    random lines, then the block again with its lines reshuffled, until
    the size is reached (fast to write; not one repeated string)."""
    rng = random.Random(seed)
    lines = []
    for i in range(400_000):
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12)))
        lines.append(f"{rng.choice(['ALICE', 'BOB', 'CAROL', 'DAVE'])}: {words}"
                     f"{rng.choice(ODD) if i % 50 == 0 else ''}.\n")  # fmt: skip
    written = 0
    with open(path, "wb") as f:
        while written < n_bytes:
            block = "".join(lines).encode("utf-8")
            f.write(block)
            written += len(block)
            rng.shuffle(lines)
    return written


CPU_S = {}  # the last timed command's CPU seconds, user + system, its workers included


def timed(cmd: list[str], **kw) -> tuple[float, int, str]:
    """(wall seconds, peak RSS in MB, output) of a command."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    CPU_S["last"] = round(usage.ru_utime + usage.ru_stime, 1)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{out[-2000:]}")
    return seconds, usage.ru_maxrss // 1024, out


def charrnn(*args) -> list[str]:
    return [sys.executable, "-m", "charrnn", *map(str, args)]


def _status(pid: int) -> dict[str, int]:
    fields = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmHWM", "RssAnon", "RssFile", "VmRSS"):
                fields[name] = int(value.split()[0]) // 1024  # MB
    except OSError:
        pass
    return fields


def _workers(root: int) -> list[int]:
    """The charrnn train processes under `root` (torchrun's workers)."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().split(b"\0")
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if b"charrnn" in cmd and b"train" in cmd and int(d.name) != root and ppid != 1 and _descends(int(d.name), root):
            found.append(int(d.name))
    return found


def _descends(pid: int, root: int) -> bool:
    while pid > 1:
        if pid == root:
            return True
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
    return False


def two_processes(corpus: Path, out: Path, steps: int) -> dict:
    """Each worker's peak memory over a 2-process run of `steps` steps."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "charrnn",
           "train", str(corpus), "--out", str(out), "--force", *MODEL, "--max-steps", str(steps)]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak: dict[int, dict[str, int]] = {}
    while proc.poll() is None:
        for pid in _workers(proc.pid):
            now = _status(pid)
            mine = peak.setdefault(pid, {})
            for k, v in now.items():
                mine[k] = max(mine.get(k, 0), v)
        time.sleep(0.1)
    out_text = proc.stdout.read()
    if proc.returncode != 0:
        raise SystemExit(f"torchrun failed:\n{out_text[-3000:]}")
    workers = sorted(peak.values(), key=lambda d: -d.get("VmHWM", 0))[:2]
    return {"wall_s": round(time.perf_counter() - t0, 1), "workers": workers}


def model_mb() -> float:
    """Weights, gradients and AdamW's two moments of the benchmark's model, in MB (fp32)."""
    sys.path.insert(0, str(REPO))
    import torch

    from charrnn.model import CharRNN, ModelConfig

    with torch.device("meta"):
        n = CharRNN(ModelConfig("gru", vocab_size=80, embedding=64, hidden=256, layers=2)).num_parameters()
    return round(4 * n * 4 / 1e6, 1)


def table(log: Path = LOG) -> str:
    """The last logged figure of each kind, as docs/prepare.md shows them."""
    rows = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
    last = {}
    for r in rows:
        how = r.get("workers", 1) if r["what"] == "prepare" else r.get("form")  # before --workers: one
        key = (r["what"], how, round(r["corpus_bytes"] / 1e9))
        last[key] = r
    out = ["| measured | corpus | figure |", "|---|---|---|"]
    order = {"prepare": 0, "start-up": 1}
    for (what, how, _), r in sorted(last.items(), key=lambda kv: (order.get(kv[0][0], 2), -kv[0][2], str(kv[0][1]))):
        gb = f"{r['corpus_bytes'] / 1e9:.2f} GB"
        if what == "prepare":
            cpu = f", {r['cpu_s']:.1f} s of CPU" if "cpu_s" in r else ""
            out.append(f"| `charrnn prepare`, {how} worker{'s' if how > 1 else ''} | {gb} | {r['mb_per_s']:.0f} MB/s"
                       f" ({r['wall_s']:.0f} s{cpu}), peak RSS {r['peak_rss_mb']:,} MB |")  # fmt: skip
        elif what == "start-up":
            out.append(f"| start-up (`train --plan`), {how} | {gb} | {r['wall_s']:.1f} s, peak RSS {r['peak_rss_mb']:,} MB |")
        else:
            big, small = r["prepared"]["workers"], r["reference_1mb_prepared"]["workers"]
            out.append(f"| 2-process torchrun, {r['steps']} steps, prepared | {gb} | peak RSS a process"
                       f" {_each(big, 'VmHWM')} MB (anonymous {_each(big, 'RssAnon')}) |")  # fmt: skip
            out.append(f"| the same run, prepared | 1 MB | peak RSS a process {_each(small, 'VmHWM')} MB (anonymous"
                       f" {_each(small, 'RssAnon')}); the model's weights, gradients and AdamW state:"
                       f" {r['model_state_mb']} MB |")  # fmt: skip
    machines = ", ".join(sorted({f"{r['cpu']} ({r['cores']} cores)" for r in rows}))
    return "\n".join(out) + f"\n\nOn {machines}, shared with other work: the times are approximate."


def _each(workers: list[dict], key: str) -> str:
    return " and ".join(f"{w[key]:,}" for w in workers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gb", type=float, default=4.0, help="corpus size in 10^9 bytes")
    parser.add_argument("--tmp", default=tempfile.gettempdir(), help="where the corpus is generated")
    parser.add_argument("--steps", type=int, default=30, help="steps of the 2-process run")
    parser.add_argument("--skip-raw", action="store_true", help="no start-up on the raw text (4 GB of memory)")
    parser.add_argument("--keep", action="store_true", help="keep the generated corpus")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, os.cpu_count() or 1],
                        help="prepare with each of these numbers of worker processes")
    parser.add_argument("--only-prepare", action="store_true", help="measure prepare only")
    parser.add_argument("--table", action="store_true", help="print the logged results as a table, and exit")
    args = parser.parse_args()
    if args.table:
        print(table())
        return
    work = Path(tempfile.mkdtemp(dir=args.tmp, prefix="prepare_scale."))
    try:
        text = work / "big.txt"
        t0 = time.perf_counter()
        n_bytes = generate(text, int(args.gb * 1e9))
        print(f"generated {n_bytes / 1e9:.2f} GB in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        common = {"corpus_bytes": n_bytes}

        for workers in args.workers:
            seconds, rss, out = timed(charrnn("prepare", text, "--out", work / "prep", "--force", "--workers", workers))
            log({"what": "prepare", **common, "workers": workers, "wall_s": round(seconds, 1),
                 "mb_per_s": round(n_bytes / 1e6 / seconds, 1), "cpu_s": CPU_S["last"], "peak_rss_mb": rss,
                 "load_average": round(os.getloadavg()[0], 1),
                 "command": " ".join(["python", "benchmarks/prepare_scale.py", *sys.argv[1:]])})  # fmt: skip
        if args.only_prepare:
            return

        plan = ["train", "--plan", "--out", work / "run-plan", *MODEL]
        seconds, rss, _ = timed(charrnn(*plan[:1], work / "prep", *plan[1:]))
        log({"what": "start-up", "form": "prepared", **common, "wall_s": round(seconds, 1), "peak_rss_mb": rss})
        if not args.skip_raw:
            seconds, rss, _ = timed(charrnn(*plan[:1], text, *plan[1:]))
            log({"what": "start-up", "form": "raw", **common, "wall_s": round(seconds, 1), "peak_rss_mb": rss})

        small = work / "small.txt"
        generate(small, 1_000_000, seed=1)
        timed(charrnn("prepare", small, "--out", work / "small-prep"))
        reference = two_processes(work / "small-prep", work / "run-small", args.steps)
        big = two_processes(work / "prep", work / "run-big", args.steps)
        log({"what": "2-process run", **common, "steps": args.steps, "model_state_mb": model_mb(),
             "prepared": big, "reference_1mb_prepared": reference,
             "model": " ".join(MODEL)})  # fmt: skip
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
