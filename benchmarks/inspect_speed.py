"""`charrnn inspect`'s time and peak memory, as a user runs it: the
command with its defaults on 100,000 characters (the recording, the
control, the finder and its ablation column, probes, gradient flow, the
printed report), at 2x384 and 2x512.

    python benchmarks/inspect_speed.py [--corpus FILE] [--chars 100000] [--sizes 384 512] [--kinds gru lstm]
    python benchmarks/inspect_speed.py --repo ../old-checkout      # the same command from another checkout

Each model is the architecture at random initialisation (the cost does not
depend on training), saved as a checkpoint; each command runs in its own
process, whose wall time and peak resident memory (the kernel's ru_maxrss
for that child) are printed. Target: under 60 s and under 2 GB on 2 cores.
--repo runs the command from another checkout of charrnn (its own code,
this script's models), for a before and after on one machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from charrnn.checkpoint import save_checkpoint  # noqa: E402
from charrnn.corpus import Vocab  # noqa: E402
from charrnn.model import CharRNN, ModelConfig  # noqa: E402

DEFAULT_CORPUS = REPO.parent / "shared" / "data" / "tinyshakespeare.txt"


def run(repo: Path, args: list[str]) -> tuple[float, float, int]:
    """(seconds, peak MiB, exit status) of `python -m charrnn ARGS` from `repo`."""
    env = {**os.environ, "PYTHONPATH": str(repo)}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "charrnn", *args], cwd=repo, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    if status:
        sys.stderr.write(proc.stderr.read().decode(errors="replace")[-2000:])
    return seconds, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--chars", type=int, default=100_000)
    ap.add_argument("--sizes", type=int, nargs="+", default=[384, 512])
    ap.add_argument("--kinds", nargs="+", default=["gru"])
    ap.add_argument("--repo", type=Path, default=REPO, help="the checkout whose charrnn runs the command")
    args = ap.parse_args()
    if not args.corpus.is_file():
        sys.exit(f"error: corpus not found: {args.corpus}")
    text = args.corpus.read_text(encoding="utf-8")[: args.chars]
    vocab = Vocab.from_chars(text)
    print(f"charrnn inspect CKPT --file TEXT ({len(text):,} characters), from {args.repo.resolve()}; torch"
          f" {torch.__version__}, {torch.get_num_threads()} threads")  # fmt: skip
    print(f"{'model':>10} {'seconds':>8} {'peak MiB':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "text.txt"
        source.write_text(text, encoding="utf-8")
        for kind in args.kinds:
            for hidden in args.sizes:
                torch.manual_seed(0)
                model = CharRNN(ModelConfig(kind, vocab.size, embedding=64, hidden=hidden, layers=2))
                path = Path(tmp) / f"{kind}-{hidden}.safetensors"
                save_checkpoint(path, model, vocab)
                seconds, peak, code = run(args.repo, ["inspect", str(path), "--file", str(source),
                                                      "--max-chars", str(args.chars), "--device", "cpu"])  # fmt: skip
                name = f"2x{hidden} {kind}"
                print(f"{name:>10} {seconds:8.1f} {peak:9,.0f}" + ("" if code == 0 else f"  (exit {code})"), flush=True)


if __name__ == "__main__":
    main()
