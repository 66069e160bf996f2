"""Prove that a refactor of `charrnn/` changes no behaviour.

Runs one fixed scenario with two versions of the package, the OLD one (the `charrnn/` tree at a git ref) and the
NEW one (the working tree, another ref, or a directory holding `charrnn/`), and compares every output byte for
byte, except wall-clock timing fields and the temporary directories' paths:

- for each cell kind (rnn, gru, lstm): train 30 steps in fp32, resume to 40, sample three ways, eval on the run's
  test split and on a held-out text, and inspect four ways (npz + JSON report + HTML page, a generated text, one
  unit coloured on the terminal, the default analysis tables);
- one short lstm run at the default precision (auto: bf16 on a CPU with native bf16), reported on its own row;
- cross-version loading: the NEW version samples, evals and inspects the OLD version's run directories, and resumes
  a copy of the OLD version's step-30 checkpoints; all of it must equal what the OLD version produced itself.

Compared: every checkpoint's tensors (bitwise; the file format is read directly, so bf16 tensors compare too) and
its metadata JSON without its timing fields, the `torch` version and the `sha256` (which covers the timings);
`metrics.jsonl` record by record without timing fields; the stdout and exit code (which must be 0) of every
command; the inspect outputs (`.npz` arrays bitwise, JSON reports and HTML pages as text). Each version runs as
`python -m charrnn` in a subprocess with PYTHONPATH set to its tree (checked: the editable install must not shadow
it), on the CPU, one thread per process, rich forced to a 120-column truecolor terminal so that its output,
colours included, is deterministic.

Usage (from the repository root, with the project's virtual environment active):

    python benchmarks/same_behaviour.py                     # OLD = 9b0da54, NEW = the working tree
    python benchmarks/same_behaviour.py --new 9b0da54       # self-check: everything must be the same
    python benchmarks/same_behaviour.py --new 9b0da54 --self-test   # corrupts two NEW outputs: must exit 1
    python benchmarks/same_behaviour.py --ref REF --new PATH_OR_REF [--jobs 2] [--keep]

Prints one table (item, what was compared, same or DIFFERENT with the first difference) and exits 1 if anything
differs, 0 if all is the same. Takes about 3 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from rich.text import Text

REPO = Path(__file__).resolve().parent.parent
KINDS = ("rnn", "gru", "lstm")  # the kinds both versions know: the default OLD ref predates mingru and minlstm
RUN_FILES = ("best.safetensors", "last.safetensors", "metrics.jsonl")
TIMING_FIELDS = ("elapsed_s", "chars_per_s", "eval_s", "save_s")  # wall-clock, differ on every run
WORK, RUN = "<WORK>", "<RUN>"  # placeholders for the work directories' paths and a step's run directory name
COMMAND_TIMEOUT_S = 600

MODEL_ARGS = ("--layers", "2", "--hidden", "32", "--embedding", "8", "--dropout", "0.1")
OPTIM_ARGS = ("--seq-len", "16", "--batch-size", "4", "--eval-every", "10", "--sample-every", "10", "--seed", "3")


# --------------------------------------------------------------------------
# The scenario


@dataclass(frozen=True)
class Step:
    """One `python -m charrnn` command and the files it writes that are compared."""

    id: str  # unique within a version; names the step's results directory
    label: str  # what the table shows
    args: tuple[str, ...]
    files: tuple[str, ...] = ()  # outputs, relative to the work dir, compared in this order
    run: str = ""  # the run directory's name, replaced by RUN in stdout
    json_stdout: bool = False  # stdout is one JSON document, compared parsed
    reference: str = ""  # cross-version steps: the OLD version's step whose outputs these must equal
    flag: str = ""  # a note for the table


def train_step(kind: str) -> Step:
    run = f"run-{kind}"
    args = ("train", "corpus.txt", "--out", run, "--model", kind, *MODEL_ARGS, *OPTIM_ARGS)
    args += ("--max-steps", "30", "--precision", "fp32", "--device", "cpu")
    return Step(f"{kind}.train", "train 30 steps", args, run_files(run), run)


def resume_step(kind: str, run: str, id_: str, reference: str = "") -> Step:
    args = ("train", "--resume", run, "--max-steps", "40", "--precision", "fp32", "--device", "cpu")
    return Step(id_, "resume to step 40", args, run_files(run), run, reference=reference)


def bf16_step() -> Step:
    run = "auto-lstm"
    args = ("train", "corpus.txt", "--out", run, "--model", "lstm", *MODEL_ARGS, *OPTIM_ARGS)
    args += ("--max-steps", "20", "--device", "cpu")
    note = "default --precision auto (bf16 here): may be less deterministic"
    return Step("lstm.train-auto", "train 20 steps", args, run_files(run), run, flag=note)


def run_files(run: str) -> tuple[str, ...]:
    return tuple(f"{run}/{name}" for name in RUN_FILES)


def use_steps(kind: str, run: str, prefix: str = "") -> list[Step]:
    """Sample, eval and inspect the run directory `run`; `prefix` names the files written."""
    cpu = ("--device", "cpu")
    acts, report, page, gen = (f"{prefix}{name}-{kind}.{ext}" for name, ext in
                               (("acts", "npz"), ("report", "json"), ("page", "html"), ("gen", "json")))
    steps = [
        ("sample-topk", "sample --top-k, 3 samples", ("sample", run, "--seed", "1", "--length", "200",
         "--num-samples", "3", "--temperature", "0.8", "--top-k", "10", "--prime", "ALICE:", *cpu), ()),
        ("sample-topp", "sample --top-p --stop", ("sample", run, "--seed", "2", "--length", "100", "--top-p", "0.9",
         "--stop", ".", *cpu), ()),
        ("sample-argmax", "sample --temperature 0", ("sample", run, "--temperature", "0", "--length", "80", *cpu), ()),
        ("eval-test", "eval (test split) --json", ("eval", run, "--json", *cpu), ()),
        ("eval-heldout", "eval heldout.txt --json", ("eval", run, "heldout.txt", "--json", *cpu), ()),
        ("inspect-files", "inspect --out --report --html", ("inspect", run, "--file", "heldout.txt", "--max-chars",
         "3000", "--out", acts, "--report", report, "--html", page, *cpu), (acts, report, page)),
        ("inspect-generate", "inspect --generate --report", ("inspect", run, "--generate", "300", "--seed", "2",
         "--report", gen, *cpu), (gen,)),
        ("inspect-unit", "inspect --unit l0.h:3", ("inspect", run, "--file", "heldout.txt", "--max-chars", "400",
         "--unit", "l0.h:3", *cpu), ()),
        ("inspect-tables", "inspect (analysis tables)", ("inspect", run, "--file", "heldout.txt", "--max-chars",
         "3000", *cpu), ()),
    ]
    return [Step(f"{kind}.{name}", label, args, files, run, json_stdout=name.startswith("eval"))
            for name, label, args, files in steps]


def own_steps(kind: str) -> list[Step]:
    run = f"run-{kind}"
    return [train_step(kind), resume_step(kind, run, f"{kind}.resume"), *use_steps(kind, run)]


def cross_steps(kind: str) -> list[Step]:
    """The NEW version on the OLD version's runs (copied in by `copy_old_runs`)."""
    resume = resume_step(kind, f"old-run-{kind}-at30", f"cross.{kind}.resume", reference=f"{kind}.resume")
    uses = [Step(f"cross.{s.id}", s.label, s.args, s.files, s.run, s.json_stdout, reference=s.id)
            for s in use_steps(kind, f"old-run-{kind}", prefix="old-")]
    return [resume, *uses]


def copy_old_runs(kind: str, old_work: Path, new_work: Path) -> None:
    """OLD's run directory as it ended (step 40), and its step-30 checkpoints (kept by the train step) to resume."""
    shutil.copytree(old_work / f"run-{kind}", new_work / f"old-run-{kind}")
    at30 = new_work / f"old-run-{kind}-at30"
    at30.mkdir()
    for name in RUN_FILES:
        shutil.copy2(results_dir(old_work, f"{kind}.train") / "files" / name, at30 / name)


# --------------------------------------------------------------------------
# The corpus

WORDS = (
    "the of and to a in that is was he for it with as his on be at by this had not are but from or have an they "
    "which one you were her all she there would their we him been has when who will more no if out so said what up "
    "its about into than them can only other new some could time these two may then do first any my now such like "
    "our over man me even most made after also did many before must through back years where much your way well "
    "down should because each just those people how too little state good very make world still own see men work "
    "long get here between both life being under never day same another know while last might us great old year "
    "off come since against go came right used take three"
).split()


def play(seed: int, size: int) -> str:
    """A play-like text: speakers, sentences of random words, quotes, brackets and numbers."""
    rng, lines, n = random.Random(seed), [], 0
    while n < size:
        words = [rng.choice(WORDS) for _ in range(rng.randint(4, 16))]
        if rng.random() < 0.3:
            i = rng.randrange(len(words))
            j = min(len(words), i + rng.randint(1, 4)) - 1
            words[i], words[j] = '"' + words[i], words[j] + '"'
        if rng.random() < 0.2:
            i = rng.randrange(len(words))
            words[i], words[-1] = "(" + words[i], words[-1] + ")"
        if rng.random() < 0.2:
            words.insert(rng.randrange(len(words)), str(rng.randint(0, 1999)))
        line = f"{rng.choice(['ALICE:', 'BOB:'])}\n{' '.join(words).capitalize()}{rng.choice('..?!')}\n\n"
        lines.append(line)
        n += len(line)
    return "".join(lines)


def write_texts(work: Path) -> None:
    corpus, heldout = play(0, 60_000), play(1, 8_000)
    unseen = set(heldout) - set(corpus)
    assert not unseen, f"the held-out text has characters the corpus lacks: {sorted(unseen)}"
    (work / "corpus.txt").write_text(corpus, encoding="utf-8")
    (work / "heldout.txt").write_text(heldout, encoding="utf-8")


# --------------------------------------------------------------------------
# Running a version


@dataclass(frozen=True)
class Version:
    name: str  # "old" or "new"
    description: str
    tree: Path  # the directory holding the `charrnn/` package
    work: Path  # the commands' working directory

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "TORCH", "CUDA", "OMP", "MKL"))}
        for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "NO_COLOR", "TTY_COMPATIBLE",
                     "TTY_INTERACTIVE", "JUPYTER_COLUMNS", "JUPYTER_LINES"):
            env.pop(name, None)
        env.update(
            PYTHONPATH=str(self.tree),
            PYTHONDONTWRITEBYTECODE="1",  # write nothing into the trees (one may be the working tree)
            CUDA_VISIBLE_DEVICES="",
            OMP_NUM_THREADS="1",  # the same arithmetic for both versions, and no oversubscription with --jobs
            MKL_NUM_THREADS="1",
            FORCE_COLOR="1",  # rich: a 120-column truecolor terminal, so that colours are compared too
            TERM="xterm-256color",
            COLORTERM="truecolor",
            COLUMNS="120",
            LINES="40",
        )
        return env

    def check_import(self) -> None:
        """The package must come from this version's tree, not from the editable install."""
        code = "import charrnn; print(charrnn.__file__)"
        proc = subprocess.run([sys.executable, "-c", code], cwd=self.work, env=self.env(), capture_output=True,
                              text=True, timeout=COMMAND_TIMEOUT_S)
        found = Path(proc.stdout.strip()).resolve() if proc.returncode == 0 else None
        expected = (self.tree / "charrnn").resolve()
        if found is None or not found.is_relative_to(expected):
            raise SystemExit(f"error: the {self.name} version imports charrnn from {found or proc.stderr.strip()},"
                             f" not from {expected}")

    def run(self, step: Step) -> None:
        """Run a step; keep its exit code, stdout, stderr and a copy of its files under results/<id>."""
        out = results_dir(self.work, step.id)
        (out / "files").mkdir(parents=True)
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "charrnn", *step.args], cwd=self.work, env=self.env(),
                              capture_output=True, timeout=COMMAND_TIMEOUT_S)
        (out / "rc").write_text(str(proc.returncode))
        (out / "stdout").write_bytes(proc.stdout)
        (out / "stderr").write_bytes(proc.stderr)
        for name in step.files:
            if (self.work / name).is_file():
                shutil.copy2(self.work / name, out / "files" / Path(name).name)
        status = "ok" if proc.returncode == 0 else f"exit code {proc.returncode}"
        print(f"{self.name}: {step.id} ({time.monotonic() - t0:.1f} s, {status})", file=sys.stderr, flush=True)

    def run_all(self, steps: list[Step]) -> None:
        for step in steps:
            self.run(step)


def results_dir(work: Path, step_id: str) -> Path:
    return work / "results" / step_id


def extract(ref: str, into: Path) -> Path:
    """The `charrnn/` tree at a git ref, extracted into `into` (which is returned)."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "charrnn"], capture_output=True)
    if archive.returncode != 0:
        raise SystemExit(f"error: git archive {ref} failed: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def new_tree(spec: str | None, into: Path) -> tuple[Path, str]:
    """--new: a directory holding charrnn/ (default: the repository root), or a git ref."""
    if spec is None:
        return REPO, f"working tree {REPO}"
    if (Path(spec) / "charrnn").is_dir():
        return Path(spec).resolve(), f"directory {Path(spec).resolve()}"
    return extract(spec, into), f"git ref {spec}"


# --------------------------------------------------------------------------
# Comparing


@dataclass
class Outcome:
    item: str
    compared: str
    difference: str | None  # None: the same
    flag: str = ""


@dataclass
class Scrubber:
    """Replaces the work directories' paths (and a step's run directory name) with placeholders."""

    work_dirs: list[str] = field(default_factory=list)

    def text(self, s: str, run: str = "") -> str:
        for path in sorted(self.work_dirs, key=len, reverse=True):
            s = s.replace(path, WORK)
        return s.replace(run, RUN) if run else s

    def json(self, obj):
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, list):
            return [self.json(x) for x in obj]
        if isinstance(obj, dict):
            return {k: self.json(v) for k, v in obj.items()}
        return obj


def compare_step(old: Path, new: Path, step: Step, ref_step: Step, scrub: Scrubber) -> str | None:
    """The first difference between a step's results (`old`: ref_step's, `new`: step's), or None."""
    rcs = (old / "rc").read_text(), (new / "rc").read_text()
    if rcs != ("0", "0"):
        failed = new if rcs[1] != "0" else old
        last = (failed / "stderr").read_text(errors="replace").strip().splitlines()[-1:] or [""]
        return f"exit code {rcs[0]} (old) / {rcs[1]} (new): {last[0][:200]}"
    a = scrub.text((old / "stdout").read_text(encoding="utf-8", errors="backslashreplace"), ref_step.run)
    b = scrub.text((new / "stdout").read_text(encoding="utf-8", errors="backslashreplace"), step.run)
    diff = json_difference(json.loads(a), json.loads(b)) if step.json_stdout else text_difference(a, b)
    if diff:
        return f"stdout: {diff}"
    for ref_name, name in zip(ref_step.files, step.files):
        fa, fb = old / "files" / Path(ref_name).name, new / "files" / Path(name).name
        missing = [v for v, f in (("old", fa), ("new", fb)) if not f.is_file()]
        diff = f"missing in {' and '.join(missing)}" if missing else compare_file(fa, fb, scrub)
        if diff:
            return f"{Path(name).name}: {diff}"
    return None


def compare_file(a: Path, b: Path, scrub: Scrubber) -> str | None:
    if a.suffix == ".safetensors":
        return safetensors_difference(a, b, scrub)
    if a.suffix == ".jsonl":
        return jsonl_difference(a, b, scrub)
    if a.suffix == ".npz":
        return npz_difference(a, b)
    return text_difference(scrub.text(a.read_text(encoding="utf-8")), scrub.text(b.read_text(encoding="utf-8")))


def read_safetensors(path: Path) -> tuple[dict[str, str], dict[str, tuple[str, list[int], bytes]]]:
    """(metadata, {name: (dtype, shape, raw bytes)}), read from the documented format: an 8-byte little-endian
    header size, a JSON header, then the tensors' bytes."""
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    metadata = header.pop("__metadata__", {})
    body = data[8 + size :]
    tensors = {name: (h["dtype"], h["shape"], body[h["data_offsets"][0] : h["data_offsets"][1]])
               for name, h in header.items()}
    return metadata, tensors


def safetensors_difference(a: Path, b: Path, scrub: Scrubber) -> str | None:
    (meta_a, tensors_a), (meta_b, tensors_b) = read_safetensors(a), read_safetensors(b)
    if diff := names_difference(tensors_a, tensors_b, "tensors"):
        return diff
    for name in sorted(tensors_a):
        (dtype_a, shape_a, bytes_a), (dtype_b, shape_b, bytes_b) = tensors_a[name], tensors_b[name]
        if (dtype_a, shape_a) != (dtype_b, shape_b):
            return f"tensor {name}: {dtype_a}{shape_a} vs {dtype_b}{shape_b}"
        if bytes_a != bytes_b:
            first = next(i for i, (x, y) in enumerate(zip(bytes_a, bytes_b)) if x != y)
            return f"tensor {name}: bytes differ from byte {first} of {len(bytes_a)}"
    keys_a, keys_b = set(meta_a) - {"sha256"}, set(meta_b) - {"sha256"}  # the digest covers the timing fields
    if diff := names_difference(keys_a, keys_b, "metadata keys"):
        return diff
    for key in sorted(keys_a):
        if key == "meta":
            diff = json_difference(*(scrub.json(untimed_meta(json.loads(m["meta"]))) for m in (meta_a, meta_b)))
        else:
            diff = text_difference(meta_a[key], meta_b[key])
        if diff:
            return f"metadata {key}: {diff}"
    return None


def untimed_meta(meta: dict) -> dict:
    meta.pop("torch", None)
    run = meta.get("run") or {}
    run.pop("elapsed_s", None)
    # The run plan is saved beside the state it settles (its train config,
    # compared); a version that saves none is compared on the rest.
    run.pop("plan", None)
    run["metrics"] = [untimed(record) for record in run.get("metrics", [])]
    return meta


def untimed(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in TIMING_FIELDS}


def jsonl_difference(a: Path, b: Path, scrub: Scrubber) -> str | None:
    records_a, records_b = ([scrub.json(untimed(json.loads(line))) for line in p.read_text().splitlines()]
                            for p in (a, b))
    return json_difference(records_a, records_b, "records")


def npz_difference(a: Path, b: Path) -> str | None:
    with np.load(a, allow_pickle=False) as za, np.load(b, allow_pickle=False) as zb:
        if diff := names_difference(za.files, zb.files, "arrays"):
            return diff
        for name in za.files:
            x, y = za[name], zb[name]
            if (x.dtype, x.shape) != (y.dtype, y.shape):
                return f"array {name}: {x.dtype}{x.shape} vs {y.dtype}{y.shape}"
            if x.tobytes() != y.tobytes():
                return f"array {name}: values differ"
    return None


def names_difference(a, b, what: str) -> str | None:
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    if not (only_a or only_b):
        return None
    return f"{what} only in old: {', '.join(only_a) or '-'}; only in new: {', '.join(only_b) or '-'}"


def json_difference(a, b, path: str = "$") -> str | None:
    """The first place where two parsed JSON values differ (types too: 1 is not 1.0), or None."""
    if type(a) is not type(b):
        return f"{path}: {short(a)} vs {short(b)}"
    if isinstance(a, dict):
        if diff := names_difference(a, b, f"{path} keys"):
            return diff
        return next((d for k in a if (d := json_difference(a[k], b[k], f"{path}.{k}"))), None)
    if isinstance(a, list):
        if diff := next((d for i, (x, y) in enumerate(zip(a, b)) if (d := json_difference(x, y, f"{path}[{i}]"))),
                        None):
            return diff
        return None if len(a) == len(b) else f"{path}: {len(a)} items vs {len(b)}"
    if isinstance(a, float) and math.isnan(a) and math.isnan(b):
        return None
    return None if a == b else f"{path}: {short(a)} vs {short(b)}"


def text_difference(a: str, b: str) -> str | None:
    if a == b:
        return None
    i = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    line = a.count("\n", 0, i) + 1
    return f"line {line}, char {i}: {short(a[max(0, i - 10) : i + 30])} vs {short(b[max(0, i - 10) : i + 30])}"


def short(value, limit: int = 60) -> str:
    s = repr(value)
    return s if len(s) <= limit else s[: limit - 3] + "..."


# --------------------------------------------------------------------------
# The whole run


def run_versions(old: Version, new: Version, jobs: int) -> list[tuple[str, Step, Step]]:
    """Run the scenario with both versions; return (item label, step, reference step) to compare."""
    own = {kind: own_steps(kind) for kind in KINDS}
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        old_done: dict[str, Future] = {kind: pool.submit(old.run_all, own[kind]) for kind in KINDS}
        waits = [pool.submit(new.run_all, own[kind]) for kind in KINDS]
        waits += [pool.submit(v.run_all, [bf16_step()]) for v in (old, new)]
        for kind in KINDS:
            old_done[kind].result()
            copy_old_runs(kind, old.work, new.work)
            waits.append(pool.submit(new.run_all, cross_steps(kind)))
        for future in waits:
            future.result()
    pairs = [(f"{kind} {s.label}", s, s) for kind in KINDS for s in own[kind]]
    pairs.append(("lstm train 20 steps, default precision", bf16_step(), bf16_step()))
    by_id = {s.id: s for steps in own.values() for s in steps}
    pairs += [(f"{kind} new on old run: {s.label}", s, by_id[s.reference]) for kind in KINDS for s in cross_steps(kind)]
    return pairs


def compare_all(old: Version, new: Version, pairs: list[tuple[str, Step, Step]]) -> list[Outcome]:
    scrub = Scrubber([str(old.work), str(new.work)])
    outcomes = []
    for item, step, ref in pairs:
        compared = ", ".join(["stdout", *(Path(f).name for f in ref.files)])
        diff = compare_step(results_dir(old.work, ref.id), results_dir(new.work, step.id), step, ref, scrub)
        outcomes.append(Outcome(item, compared, diff, step.flag))
    return outcomes


def self_test(new: Version) -> None:
    """Corrupt one byte of a NEW checkpoint's tensors and one character of a NEW sample, after the runs."""
    last = results_dir(new.work, "lstm.resume") / "files" / "last.safetensors"
    data = bytearray(last.read_bytes())
    data[-1] ^= 1  # the last tensor's last byte
    last.write_bytes(bytes(data))
    stdout = results_dir(new.work, "rnn.sample-argmax") / "stdout"
    text = stdout.read_bytes()
    stdout.write_bytes(text[:5] + (b"X" if text[5:6] != b"X" else b"Y") + text[6:])


def print_table(outcomes: list[Outcome], title: str) -> None:
    table = Table(title=title, title_justify="left")
    table.add_column("item")
    table.add_column("compared", overflow="fold")
    table.add_column("result", overflow="fold")
    for o in outcomes:
        item = Text(o.item) + (Text(f"\n({o.flag})", style="yellow") if o.flag else Text())
        result = Text("same", style="green") if o.difference is None else Text(f"DIFFERENT: {o.difference}", "red")
        table.add_row(item, Text(o.compared), result)
    Console(highlight=False, width=max(Console().width, 140)).print(table)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ref", default="9b0da54", metavar="REF", help="git ref of the OLD version (default: 9b0da54)")
    parser.add_argument("--new", metavar="PATH_OR_REF",
                        help="the NEW version: a directory holding charrnn/, or a git ref (default: the working tree)")
    parser.add_argument("--jobs", type=int, default=2, help="commands run at once (default: 2)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory and print its path")
    parser.add_argument("--self-test", action="store_true",
                        help="corrupt one byte of a NEW checkpoint and of a NEW sample after the runs, to show that"
                             " differences are caught: exits 1")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="same-behaviour-")).resolve()
    try:
        old = Version("old", f"git ref {args.ref}", extract(args.ref, root / "old" / "tree"), root / "old" / "work")
        tree, description = new_tree(args.new, root / "new" / "tree")
        new = Version("new", description, tree, root / "new" / "work")
        for version in (old, new):
            version.work.mkdir(parents=True)
            write_texts(version.work)
            version.check_import()
        pairs = run_versions(old, new, args.jobs)
        if args.self_test:
            self_test(new)
        outcomes = compare_all(old, new, pairs)
    finally:
        if args.keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    different = sum(o.difference is not None for o in outcomes)
    title = (f"old: {old.description}; new: {new.description}: {len(outcomes) - different} of {len(outcomes)} the same"
             f" ({time.monotonic() - started:.0f} s)")
    print_table(outcomes, title)
    return 1 if different else 0


if __name__ == "__main__":
    sys.exit(main())
