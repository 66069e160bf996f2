"""How often a finished 2-process run dies on its way out: run a tiny
torchrun job many times and count the runs whose exit code is not 0.

    python benchmarks/ddp_exit.py --runs 40
    python benchmarks/ddp_exit.py --runs 40 --with-shutdown   # the old exit path

--with-shutdown ends each process through the interpreter's shutdown, as
charrnn did before distributed.exit_without_shutdown: gloo's worker threads
could then abort it (exit -6 after training and saving).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

# The CLI's entry point, optionally without the os._exit ending.
CHILD = """
import sys
from charrnn.cli import entry
from charrnn.training import distributed
if sys.argv.pop(1) == "with-shutdown":
    distributed.joined = lambda: False
sys.argv[0] = "charrnn"
entry.main()
"""
ARGS = "--hidden 12 --embedding 4 --layers 2 --seq-len 16 --device cpu --batch-size 8 --max-steps 12 --eval-every 6"


def one_run(tmp: Path, mode: str) -> int | str:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd += [str(tmp / "child.py"), mode, "train", str(tmp / "corpus.txt"), *ARGS.split()]
    cmd += ["--out", str(tmp / "run"), "--force"]
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    try:
        return subprocess.run(cmd, env=env, capture_output=True, timeout=300, check=False).returncode
    except subprocess.TimeoutExpired:
        return "timeout"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--with-shutdown", action="store_true")
    a = ap.parse_args()
    mode = "with-shutdown" if a.with_shutdown else "default"
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        lines = [f"ROMEO: line {i}, with 'quotes' and more words to read.\n" for i in range(600)]
        (tmp / "corpus.txt").write_text("".join(lines))
        (tmp / "child.py").write_text(CHILD)
        codes = collections.Counter(one_run(tmp, mode) for _ in range(a.runs))
    failed = a.runs - codes[0]
    print(json.dumps({"mode": mode, "runs": a.runs, "failed": failed, "exit_codes": dict(codes)}))


if __name__ == "__main__":
    main()
