"""Which split should a directory corpus get by default: how well does each
split's val loss track the loss on text drawn from the whole corpus?

    python benchmarks/split_choice.py                       # /tmp/c/ctrain and the Python stdlib, if present
    python benchmarks/split_choice.py --corpus DIR --steps 400
    python benchmarks/split_choice.py --table                 # the log as docs/train.md shows it

For each corpus (a directory of text files already on this machine, never
copied into the repository): a random 10% of its files (seeded) is set
aside as the reference, text from the whole corpus's distribution that no
run trains on. The rest is trained on once a split, identically but for
--split (contiguous: val and test are the last files alphabetically;
blocks: interleaved through the corpus; files: whole files drawn at
random), a small GRU for --steps steps. Each run's
val loss (on its own val split) is compared with the same model's loss on
the reference: the split whose val loss is nearer the reference loss is
the better stand-in for the corpus, and the better guide for `best` and
early stopping. Appends one line per corpus and split to
benchmarks/results/split_choice.jsonl.

A few minutes of CPU in all. Losses are deterministic for a given machine
and seed; the times are not.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from charrnn import checkpoint as ckpt  # noqa: E402
from charrnn import rundir  # noqa: E402
from charrnn.corpus import SPLITS, corpus_files, load_corpus  # noqa: E402
from charrnn.evaluate import score  # noqa: E402
from charrnn.training.launch import train_with  # noqa: E402

LOG = REPO / "benchmarks" / "results" / "split_choice.jsonl"
WORK: str | None = None  # main() sets a temporary directory for everything the runs write, deleted at the end
MODEL = dict(model="gru", layers=1, hidden=128, embedding=32, seq_len=128, batch_size=32, val_frac=0.05,
             test_frac=0.05, device="cpu", precision="fp32")  # fmt: skip


def stdlib_dir(limit_bytes: int = 6_000_000) -> Path | None:
    """The Python standard library's top-level .py files, alphabetically, up to about limit_bytes (a view of symlinks)."""
    for root in sorted(Path("/usr/lib").glob("python3.*")):
        files = sorted(p for p in root.glob("*.py") if p.is_file())
        if files:
            return _linked(files, root, limit_bytes, "stdlib")
    return None


def _linked(files: list[Path], root: Path, limit_bytes: int, name: str) -> Path:
    out = Path(tempfile.mkdtemp(prefix=f"split_choice.{name}.", dir=WORK))
    total = 0
    for p in files:
        if total > limit_bytes:
            break
        (out / p.relative_to(root)).parent.mkdir(parents=True, exist_ok=True)
        (out / p.relative_to(root)).symlink_to(p)
        total += p.stat().st_size
    return out


def held_out(corpus: Path, frac: float, seed: int) -> tuple[Path, Path]:
    """(the files to train on, the reference files): two directories of symlinks."""
    files = corpus_files(corpus)
    rng = random.Random(seed)
    reference = set(rng.sample(range(len(files)), max(1, int(len(files) * frac))))
    root = Path(tempfile.mkdtemp(prefix="split_choice.", dir=WORK))
    for i, p in enumerate(files):
        target = root / ("reference" if i in reference else "train") / p.relative_to(corpus)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(p.resolve())
    return root / "train", root / "reference"


def measure(name: str, corpus: Path, steps: int, seed: int, splits: list[str]) -> None:
    train_dir, reference = held_out(corpus, 0.10, seed)
    ref = load_corpus(reference)
    files = corpus_files(train_dir)
    for split in splits:
        out = Path(tempfile.mkdtemp(prefix=f"split_choice.run.{split}.", dir=WORK))
        t0 = time.perf_counter()
        result = train_with(train_dir, out=out, force=True, split=split, max_steps=steps, eval_every=steps, **MODEL)
        model = ckpt.load_checkpoint(out / rundir.LAST).model
        vocab = ckpt.load_checkpoint(out / rundir.LAST).vocab
        ids, skipped = vocab.translate(ref.ids, ref.vocab, "the reference", skip_unknown=True)
        with torch.no_grad():
            ref_loss = score(model, ids).loss
        val_loss = result.last_entry["val_loss"]
        entry = {
            "corpus": name, "files": len(files), "chars": load_corpus(train_dir).info.n_chars,
            "reference_files": len(corpus_files(reference)), "reference_chars": len(ids), "skipped": skipped,
            "split": split, "steps": steps, "seed": seed, "train_loss": result.last_entry["train_loss"],
            "val_loss": val_loss, "reference_loss": ref_loss, "gap": val_loss - ref_loss,
            "seconds": round(time.perf_counter() - t0, 1),
            "contiguous_val_files": [str(p.relative_to(train_dir)) for p in files[-max(1, len(files) // 10):]][:3],
            "cpu": _cpu(), "command": " ".join(["python", "benchmarks/split_choice.py", *sys.argv[1:]]),
        }  # fmt: skip
        print(json.dumps(entry), flush=True)
        with open(LOG, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")


def table(log: Path = LOG) -> str:
    """Each corpus and split: the mean gap (val loss - reference loss), its
    mean size, and each draw's, from the log."""
    rows = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
    out = ["| corpus | split | mean gap | mean abs. gap | each draw |", "|---|---|---|---|---|"]
    for corpus in dict.fromkeys(r["corpus"] for r in rows):
        for split in SPLITS:
            gaps = [r["gap"] for r in rows if r["corpus"] == corpus and r["split"] == split]
            if gaps:
                mean, size = sum(gaps) / len(gaps), sum(map(abs, gaps)) / len(gaps)
                out.append(f"| {corpus} | {split} | {mean:+.3f} | {size:.3f} | {', '.join(f'{g:+.3f}' for g in gaps)} |")
    machines = sorted({r["cpu"] for r in rows})
    steps = sorted({r["steps"] for r in rows})
    return "\n".join(out) + (f"\n\nA 1x128 GRU, {'/'.join(map(str, steps))} steps, fp32; {', '.join(machines)}."
                             " Measured by `python benchmarks/split_choice.py`.")


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, action="append", help="a directory of text files (repeatable)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, nargs="+", default=[0, 1, 2], help="draws of the reference files (the runs keep seed 1337)")
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS)
    parser.add_argument("--table", action="store_true", help="print the logged results as a table, and exit")
    args = parser.parse_args()
    if args.table:
        print(table())
        return
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    global WORK
    with tempfile.TemporaryDirectory(prefix="split_choice.") as WORK:
        _measure_all(args)


def _measure_all(args: argparse.Namespace) -> None:
    corpora = [(p.name, p) for p in args.corpus or []]
    if not corpora:
        if Path("/tmp/c/ctrain").is_dir():
            corpora.append(("linux-c", Path("/tmp/c/ctrain")))
        if (lib := stdlib_dir()) is not None:
            corpora.append(("python-stdlib", lib))
    for name, path in corpora:
        for seed in args.seed:
            measure(name, path, args.steps, seed, args.splits)


if __name__ == "__main__":
    main()
