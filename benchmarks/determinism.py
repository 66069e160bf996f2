"""Is training bit-for-bit repeatable here? A soak: the same small training
run many times, in fp32 and bf16, with 1 and 2 threads, alone and beside a
CPU hog, counting the runs whose final weights are bit-identical.

    python benchmarks/determinism.py                 # 50 runs per setting
    python benchmarks/determinism.py --runs 10       # quicker
    python benchmarks/determinism.py --cost          # what --deterministic costs

The run is one that diverged once in about 17 times on an AMX Xeon
(bf16): a 2x48 LSTM, dropout 0.2, T=24, B=8, seed 11, 40 steps, on the
first 80 kB of the shipped corpus. Runs go in batches of --per-process in
fresh processes, so process-level state (allocator, oneDNN's kernel cache,
thread pools) varies as it does between separate `charrnn train` calls.
Prints one row per setting: runs, bit-identical to the most common result,
distinct results, and the spread of the final train loss.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def one_run(precision: str, corpus_path: Path, deterministic: bool = False) -> dict:
    import torch

    from charrnn.checkpoint import load_checkpoint
    from charrnn.corpus import load_corpus
    from charrnn.model import ModelConfig
    from charrnn.training.config import TrainConfig
    from charrnn.training.launch import train_on
    from charrnn.training.loop import SilentReporter

    corpus = load_corpus(corpus_path)
    config = TrainConfig(seq_len=24, batch_size=8, max_steps=40, eval_every=40, val_frac=0.05, seed=11,
                         precision=precision, device="cpu", deterministic=deterministic)  # fmt: skip
    shape = ModelConfig("lstm", corpus.vocab.size, embedding=16, hidden=48, layers=2, dropout=0.2)
    losses: list[float] = []

    class Losses(SilentReporter):
        def step(self, step, loss, chars_per_s):
            losses.append(loss)

    with tempfile.TemporaryDirectory() as d:
        result = train_on(corpus, config, Path(d), shape, reporter=Losses())
        model = load_checkpoint(Path(d), prefer="last.safetensors").model
    digest = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        digest.update(name.encode() + t.contiguous().view(torch.uint8).numpy().tobytes())
    return {"weights": digest.hexdigest()[:16], "train_loss": result.last_entry["train_loss"], "losses": losses,
            "threads": torch.get_num_threads(), "pid": os.getpid()}


def cost(corpus_path: Path, rounds: int = 3, steps: int = 40) -> None:
    """chars/s of the default model with and without --deterministic,
    alternated in one process (the ratio is what to read)."""
    from charrnn.corpus import load_corpus
    from charrnn.model import ModelConfig
    from charrnn.training.config import TrainConfig
    from charrnn.training.launch import train_on

    corpus = load_corpus(corpus_path)
    speeds: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(rounds):
        for deterministic in (False, True):
            config = TrainConfig(max_steps=steps, eval_every=10**6, device="cpu", deterministic=deterministic)
            with tempfile.TemporaryDirectory() as d:
                result = train_on(corpus, config, Path(d), ModelConfig("lstm", corpus.vocab.size))
            speeds[deterministic].append(result.last_entry["chars_per_s"])
    best = {k: max(v) for k, v in speeds.items()}
    print(f"default model, {steps} steps, best of {rounds}: {best[False]:,.0f} chars/s, with --deterministic"
          f" {best[True]:,.0f} chars/s: {best[True] / best[False]:.3f}x")


def worker(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    for _ in range(args.per_process):
        print(json.dumps(one_run(args.precision, args.corpus, args.deterministic)), flush=True)


# A busy loop takes one core; a torch hog runs 2-thread matmuls, so its
# OpenMP threads contend with the run's own as the test suite's do.
HOGS = {
    "loop": "while True: pass",
    "torch": "import torch\ntorch.set_num_threads(2)\na = torch.randn(512, 512)\nwhile True: a @ a",
}


def setting(precision: str, threads: int, hogs: int, runs: int, per_process: int, corpus: Path,
            extra: list[str], env: dict[str, str], hog_kind: str = "loop") -> list[dict]:  # fmt: skip
    """`runs` runs in fresh processes of `per_process` each, beside `hogs` busy processes."""
    busy = [subprocess.Popen([sys.executable, "-c", HOGS[hog_kind]]) for _ in range(hogs)]
    run_env = {**os.environ, "OMP_NUM_THREADS": str(threads), **env}
    results: list[dict] = []
    try:
        while len(results) < runs:
            n = min(per_process, runs - len(results))
            cmd = [sys.executable, __file__, "--worker", "--precision", precision, "--threads", str(threads),
                   "--per-process", str(n), "--corpus", str(corpus), *extra]  # fmt: skip
            done = subprocess.run(cmd, capture_output=True, text=True, env=run_env, check=True)
            results += [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    finally:
        for h in busy:
            h.kill()
    return results


def report(precision: str, threads: int, hog: bool, results: list[dict], seconds: float) -> None:
    """One row; then, for each run whose weights differ from the most common
    result, its process, thread count and first step whose loss differs."""
    counts = collections.Counter(r["weights"] for r in results)
    usual_weights, identical = counts.most_common(1)[0]
    losses = [r["train_loss"] for r in results]
    print(f"{precision:9} {threads:7} {'yes' if hog else 'no':5} {len(results):4} {identical:9} {len(counts):8}"
          f" {max(losses) - min(losses):11.3g} {seconds:7.0f}", flush=True)  # fmt: skip
    usual = next(r for r in results if r["weights"] == usual_weights)
    for r in results:
        if r["weights"] != usual_weights:
            first = next((i for i, (a, b) in enumerate(zip(r["losses"], usual["losses"])) if a != b), None)
            where = "-" if first is None else f"step {first} ({r['losses'][first]} vs {usual['losses'][first]})"
            print(f"    differs: process {r['pid']} ({r['threads']} threads), first at {where}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=50, help="runs per setting")
    ap.add_argument("--per-process", type=int, default=5, help="runs in one process before a fresh one")
    ap.add_argument("--cost", action="store_true", help="measure what --deterministic costs, then stop")
    ap.add_argument("--deterministic", action="store_true", help="train with --deterministic")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="set in every run's environment")
    ap.add_argument("--hogs", type=int, default=1, help="busy processes in the hog settings (default 1)")
    ap.add_argument("--hog-kind", choices=sorted(HOGS), default="loop",
                    help="loop: a Python busy loop (one core); torch: 2-thread matmuls (default loop)")
    ap.add_argument("--only", default=None, metavar="PRECISION:THREADS:HOG", help="one setting, e.g. fp32:2:hog")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--precision", default="bf16", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--corpus", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    with tempfile.TemporaryDirectory() as d:
        corpus = Path(d) / "play.txt"
        corpus.write_text((REPO / "corpora" / "shakespeare.txt").read_text(encoding="utf-8")[:80_000], encoding="utf-8")
        import torch

        from charrnn.device import cpu_has_native_bf16

        print(f"torch {torch.__version__}, native bf16: {cpu_has_native_bf16()}, {os.cpu_count()} CPUs")
        if args.cost:
            return cost(corpus)
        env = dict(item.split("=", 1) for item in args.env)
        print(f"--deterministic: {args.deterministic}; environment: {env or 'as is'}; hog: {args.hogs} {args.hog_kind}")
        print("precision threads hog   runs identical distinct loss-spread seconds")
        settings = [(p, t, h) for p in ("fp32", "bf16") for t in (1, 2) for h in (False, True)]
        if args.only:
            p, t, h = args.only.split(":")
            settings = [(p, int(t), h == "hog")]
        extra = ["--deterministic"] if args.deterministic else []
        for precision, threads, hog in settings:
            t0 = time.monotonic()
            results = setting(precision, threads, args.hogs if hog else 0, args.runs, args.per_process, corpus, extra,
                              env, args.hog_kind)  # fmt: skip
            report(precision, threads, hog, results, time.monotonic() - t0)


if __name__ == "__main__":
    main()
