#!/usr/bin/env python
"""Training throughput of charrnn against a bare PyTorch loop, in one run.

Two measurements:

1. Throughput. For each configuration, charrnn's `train_on()` and a hand-written
   loop over the same fused layers (nn.Embedding -> nn.LSTM -> nn.Linear,
   AdamW, cross-entropy, clip_grad_norm_, carried and detached state, batches
   sliced from a contiguous int64 tensor as B streams read T per step) run
   side by side and are interleaved *step by step*: a reporter passed to
   `train_on()` timestamps every charrnn step and, in its `step` callback, runs
   one bare step and times it. Each charrnn step is thus paired with a bare
   step taken a moment later, so both see the same machine noise; the ratio
   is the median of the per-pair ratios. The first `--warmup` pairs of each
   round are discarded (start-up, allocator warm-up), and no evaluation or
   checkpoint happens inside the timed window (the run is stopped from the
   reporter right after the last timed step, before `train_on()` would
   evaluate and save). Each of `--repeats` rounds builds fresh models.

2. Eval + checkpoint overhead at the default cadence: the default model is
   trained for two evaluation periods and the fraction of wall time spent in
   evaluation and saving is read from metrics.jsonl (eval_s, save_s,
   elapsed_s). A full period (500 steps) is too slow for a small CPU, so
   `--overhead-scale s` shrinks it proportionally: eval_every = 500*s and the
   validation split = val_frac*s, so training per period and evaluation both
   shrink by s. The checkpoint write does not shrink (same model), so the
   measured fraction over-counts saving by 1/s; the full-scale projection
   (eval/s + save) / (train/s + eval/s + save) is reported as well.
   `--overhead-scale 1` runs the real cadence (1000 steps).

Absolute times on a shared machine are noisy; read the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from charrnn.corpus import load_corpus, split_corpus
from charrnn.errors import CharRNNError
from charrnn.device import resolve_device
from charrnn.model import ModelConfig
from charrnn.training import defaults
from charrnn.training.config import TrainConfig
from charrnn.training.launch import train_on
from charrnn.training.memory import keep_freed_memory

DEFAULT_CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tinyshakespeare.txt"
TARGET_RATIO = 0.9
TARGET_OVERHEAD = 0.05


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Setup:
    name: str
    hidden: int
    layers: int
    embedding: int
    seq_len: int
    batch_size: int
    kind: str = "lstm"
    precision: str = "fp32"  # both loops' arithmetic (bf16: autocast)

    def label(self) -> str:
        return f"{self.kind} {self.layers}x{self.hidden} E{self.embedding} T{self.seq_len} B{self.batch_size} {self.precision}"


def gru_setups() -> list[Setup]:
    """The shapes the GRU is measured against the LSTM at: each kind at 2x256 and
    2x512, T=128, B=32, in bf16 and fp32."""
    return [Setup(f"{kind}-{h}-{prec}", h, 2, 64, 128, 32, kind, prec)
            for h in (256, 512) for prec in ("bf16", "fp32") for kind in ("lstm", "gru")]  # fmt: skip


def default_setup(name: str = "default") -> Setup:
    m = ModelConfig("lstm", vocab_size=1)  # the CLI's defaults (cli/train.py: _M, _T)
    t = TrainConfig()
    return Setup(name, m.hidden, m.layers, m.embedding, t.seq_len, t.batch_size)


# --------------------------------------------------------------------------
# The bare loop


class BareLoop:
    """What one would write by hand: same layers, same sizes, same batches."""

    def __init__(self, setup: Setup, vocab_size: int, train_ids, device: torch.device, lr: float, clip: float):
        torch.manual_seed(0)
        self.s, self.V, self.device, self.clip = setup, vocab_size, device, clip
        self.embed = nn.Embedding(vocab_size, setup.embedding).to(device)
        module = {"lstm": nn.LSTM, "gru": nn.GRU}[setup.kind]  # PyTorch's own, as one would write it
        self.rnn = module(setup.embedding, setup.hidden, num_layers=setup.layers, batch_first=True).to(device)
        self.head = nn.Linear(setup.hidden, vocab_size).to(device)
        self.params = [*self.embed.parameters(), *self.rnn.parameters(), *self.head.parameters()]
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=setup.precision == "bf16")
        self.opt = torch.optim.AdamW(self.params, lr=lr, betas=(0.9, 0.99), weight_decay=0.01)
        data = torch.from_numpy(train_ids.astype("int64")).to(device)  # contiguous int64
        B, T = setup.batch_size, setup.seq_len
        L = (len(data) - 1) // B
        self.x, self.y = data[: B * L].view(B, L), data[1 : B * L + 1].view(B, L)
        self.steps_per_epoch = L // T
        self.k = 0
        self.state = None

    def step(self) -> float:
        T = self.s.seq_len
        if self.k == self.steps_per_epoch:
            self.k, self.state = 0, None
        x = self.x[:, self.k * T : (self.k + 1) * T]
        y = self.y[:, self.k * T : (self.k + 1) * T]
        with self.autocast:
            out, state = self.rnn(self.embed(x), self.state)
            loss = F.cross_entropy(self.head(out).reshape(-1, self.V).float(), y.reshape(-1))
        self.state = tuple(s.detach().float() for s in state) if isinstance(state, tuple) else state.detach().float()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, self.clip)
        self.opt.step()
        self.k += 1
        return loss.item()


# --------------------------------------------------------------------------
# Paired measurement through charrnn's Reporter protocol


class _Done(Exception):
    """Raised from the reporter after the last timed step, so train_on() stops
    before it evaluates and saves (nothing of that is measured anyway)."""


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PairingReporter:
    """Times each charrnn step (previous callback's end -> this callback's
    start: exactly train_on()'s loop body) and, in the callback, one bare step."""

    def __init__(self, bare: BareLoop, device: torch.device, total: int):
        self.bare, self.device, self.total = bare, device, total
        self.charrnn_t: list[float] = []
        self.bare_t: list[float] = []
        self.info: dict = {}
        self._mark = None

    def start(self, total_steps, start_step, info):
        self.info = info
        _sync(self.device)
        self._mark = time.perf_counter()  # the first step also times the loop's set-up; it is warm-up

    def step(self, step, loss, chars_per_s):
        _sync(self.device)
        t = time.perf_counter()
        self.charrnn_t.append(t - self._mark)
        self.bare.step()
        _sync(self.device)
        t2 = time.perf_counter()
        self.bare_t.append(t2 - t)
        self._mark = time.perf_counter()
        if step >= self.total:
            raise _Done

    def evaluated(self, record):
        raise AssertionError("an evaluation happened inside the timed window")

    def close(self):
        pass


def measure_throughput(setup: Setup, corpus, device: torch.device, steps: int, warmup: int, repeats: int) -> dict:
    tc = TrainConfig(
        seq_len=setup.seq_len,
        batch_size=setup.batch_size,
        max_steps=warmup + steps + 1,  # never reached: the reporter stops the run first
        eval_every=warmup + steps + 2,
        device=str(device),
        precision=setup.precision,  # the bare loop's arithmetic (on CUDA charrnn's bf16 keeps fused kernels in fp32)
    )
    mc = ModelConfig(setup.kind, corpus.vocab.size, setup.embedding, setup.hidden, setup.layers)
    tc = defaults.val_frac(tc, len(corpus.ids))  # as train_on() settles it
    train_ids = split_corpus(corpus.ids, tc.val_frac, tc.test_frac).train  # the same split train_on() uses
    chars = setup.batch_size * setup.seq_len
    c_all, b_all, rounds = [], [], []
    info = {}
    for r in range(repeats):
        bare = BareLoop(setup, corpus.vocab.size, train_ids, device, tc.for_kind(mc.kind).lr, tc.grad_clip)
        rep = PairingReporter(bare, device, warmup + steps)
        with tempfile.TemporaryDirectory(prefix="charrnn-bench-") as out:
            try:
                train_on(corpus, tc, Path(out), mc, reporter=rep)
            except _Done:
                pass
            else:
                raise AssertionError("train_on() ended before the timed steps were done")
        info = rep.info
        c, b = rep.charrnn_t[warmup:], rep.bare_t[warmup:]
        c_all += c
        b_all += b
        rr = statistics.median(bt / ct for bt, ct in zip(b, c))
        rounds.append(rr)
        log(
            f"  [{setup.name}] round {r + 1}/{repeats}: bare {chars / statistics.median(b):,.0f} chars/s,"
            f" charrnn {chars / statistics.median(c):,.0f} chars/s, ratio {rr:.3f}"
        )
        del bare, rep
    pair_ratios = [bt / ct for bt, ct in zip(b_all, c_all)]
    bare_cps = chars / statistics.median(b_all)
    charrnn_cps = chars / statistics.median(c_all)
    return {
        "name": setup.name,
        "config": setup.label(),
        "parameters": info.get("parameters"),
        "timed_pairs": len(pair_ratios),
        "bare_chars_per_s": round(bare_cps, 1),
        "charrnn_chars_per_s": round(charrnn_cps, 1),
        "bare_step_s_median": round(statistics.median(b_all), 5),
        "charrnn_step_s_median": round(statistics.median(c_all), 5),
        "ratio": round(statistics.median(pair_ratios), 4),  # median of paired bare_t / charrnn_t
        "ratio_of_medians": round(charrnn_cps / bare_cps, 4),
        "ratio_per_round": [round(x, 4) for x in rounds],
        "ratio_pairs_min_max": [round(min(pair_ratios), 4), round(max(pair_ratios), 4)],
    }


# --------------------------------------------------------------------------
# Eval + checkpoint overhead


class _Recorder:
    def __init__(self):
        self.records: list[dict] = []
        self.t_start = self.t_close = None

    def start(self, total_steps, start_step, info):
        self.t_start = time.perf_counter()

    def step(self, step, loss, chars_per_s):
        pass

    def evaluated(self, record):
        self.records.append(record)
        log(
            f"  [overhead] step {record['step']}: eval {record['eval_s']:.2f}s, save {record['save_s']:.2f}s,"
            f" elapsed {record['elapsed_s']:.1f}s"
        )

    def close(self):
        self.t_close = time.perf_counter()


def measure_overhead(setup: Setup, corpus, device: torch.device, scale: float, quick: bool) -> dict:
    base = TrainConfig(precision="fp32")
    # The cadence and split a large corpus gets by default (training/defaults.py), scaled.
    eval_every = max(1, round(defaults.MAX_EVAL_EVERY * scale)) if not quick else 10
    val_frac = defaults.DEFAULT_VAL_FRAC * scale if not quick else 0.01
    tc = replace(
        base,
        seq_len=setup.seq_len,
        batch_size=setup.batch_size,
        eval_every=eval_every,
        max_steps=2 * eval_every,
        val_frac=val_frac,
        device=str(device),
    )
    mc = ModelConfig("lstm", corpus.vocab.size, setup.embedding, setup.hidden, setup.layers)
    rec = _Recorder()
    with tempfile.TemporaryDirectory(prefix="charrnn-bench-") as out:
        train_on(corpus, tc, Path(out), mc, reporter=rec)
        lines = (Path(out) / "metrics.jsonl").read_text().splitlines()
        file_records = [json.loads(x) for x in lines if x.strip()]
    records = file_records or rec.records
    eval_s = sum(r["eval_s"] for r in records)
    save_s = sum(r["save_s"] for r in records)
    last = records[-1]
    # elapsed_s is stamped before the record's own eval + save run
    total = last["elapsed_s"] + last["eval_s"] + last["save_s"]
    train_s = total - eval_s - save_s
    n = len(records)
    # projection to the real cadence: train and eval per period grow by 1/s, the save does not
    s = scale if not quick else 1.0
    full_train, full_eval, full_save = train_s / n / s, eval_s / n / s, save_s / n
    projected = (full_eval + full_save) / (full_train + full_eval + full_save)
    return {
        "config": setup.label(),
        "scale": s,
        "eval_every": eval_every,
        "max_steps": tc.max_steps,
        "val_frac": round(val_frac, 6),
        "val_chars": int(len(corpus.ids) * val_frac),
        "evaluations": n,
        "wall_s": round(total, 3),
        "loop_wall_s_reporter": round(rec.t_close - rec.t_start, 3),
        "eval_s": round(eval_s, 3),
        "save_s": round(save_s, 3),
        "eval_s_per_eval": round(eval_s / n, 3),
        "save_s_per_save": round(save_s / n, 3),
        "train_step_s": round(train_s / tc.max_steps, 4),
        "overhead_frac_measured": round((eval_s + save_s) / total, 5),
        "overhead_frac_projected_full_scale": round(projected, 5),
    }


# --------------------------------------------------------------------------


def print_tables(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console(width=max(Console().width, 130))
    t = Table(title=f"Training throughput: charrnn vs bare PyTorch loop ({result['device']}, "
              f"{result['torch_threads']} threads, paired steps)")
    for col in ("config", "pairs", "bare chars/s", "charrnn chars/s", "ratio", "ratio of medians", "per round"):
        t.add_column(col, justify="left" if col == "config" else "right")
    for r in result["throughput"]:
        ok = r["ratio"] >= TARGET_RATIO
        t.add_row(
            f"{r['name']}: {r['config']}",
            str(r["timed_pairs"]),
            f"{r['bare_chars_per_s']:,.0f}",
            f"{r['charrnn_chars_per_s']:,.0f}",
            f"[{'green' if ok else 'red'}]{r['ratio']:.3f}[/]",
            f"{r['ratio_of_medians']:.3f}",
            " ".join(f"{x:.3f}" for x in r["ratio_per_round"]),
        )
    con.print(t)
    print_kind_ratios(result["throughput"], con)
    o = result.get("overhead")
    if o:
        t2 = Table(title=f"Eval + checkpoint overhead ({o['config']}, scale {o['scale']:g})")
        cols = ("steps", "eval_every", "val chars", "evals", "wall s", "eval s", "save s", "measured", "full-scale")
        for col in cols:
            t2.add_column(col, justify="right")
        ok = o["overhead_frac_projected_full_scale"] < TARGET_OVERHEAD
        t2.add_row(
            str(o["max_steps"]),
            str(o["eval_every"]),
            f"{o['val_chars']:,}",
            str(o["evaluations"]),
            f"{o['wall_s']:.1f}",
            f"{o['eval_s']:.2f}",
            f"{o['save_s']:.2f}",
            f"{100 * o['overhead_frac_measured']:.2f}%",
            f"[{'green' if ok else 'red'}]{100 * o['overhead_frac_projected_full_scale']:.2f}%[/]",
        )
        con.print(t2)
    con.print(f"targets: ratio >= {TARGET_RATIO}, overhead < {100 * TARGET_OVERHEAD:.0f}%;"
              f" benchmark wall {result['wall_s']:.0f}s")


def print_kind_ratios(rows: list[dict], con) -> None:
    """charrnn's GRU against its LSTM at each shape and precision measured
    (target: >= 0.9, as benchmarks/gru_speed.py says). The two kinds' rounds ran one after the
    other in this run, not interleaved: benchmarks/gru_speed.py interleaves
    bare steps of both."""
    from rich.table import Table

    by_name = {r["name"]: r for r in rows}
    pairs = [(r, by_name.get(name.replace("gru-", "lstm-", 1))) for name, r in by_name.items() if name.startswith("gru-")]
    pairs = [(gru, lstm) for gru, lstm in pairs if lstm is not None]
    if not pairs:
        return
    t = Table(title="charrnn's GRU against its LSTM (chars/s, medians; target >= 0.9)")
    for col in ("shape", "LSTM", "GRU", "GRU/LSTM", "bare nn.GRU/nn.LSTM"):
        t.add_column(col, justify="left" if col == "shape" else "right")
    for gru, lstm in pairs:
        ratio = gru["charrnn_chars_per_s"] / lstm["charrnn_chars_per_s"]
        t.add_row(gru["config"].removeprefix("gru "), f"{lstm['charrnn_chars_per_s']:,.0f}",
                  f"{gru['charrnn_chars_per_s']:,.0f}", f"[{'green' if ratio >= 0.9 else 'red'}]{ratio:.2f}[/]",
                  f"{gru['bare_chars_per_s'] / lstm['bare_chars_per_s']:.2f}")  # fmt: skip
    con.print(t)


def main(argv: list[str] | None = None) -> int:
    keep_freed_memory()  # as `charrnn train` does, for both loops (it is process-wide)
    p = argparse.ArgumentParser(
        description="Measure charrnn's training throughput against a bare PyTorch loop (interleaved step by"
        " step), and its eval + checkpoint overhead at the default cadence.",
    )
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="text corpus (default: %(default)s)")
    p.add_argument("--steps", type=int, default=None, help="timed step pairs per round (default 6; quick 5)")
    p.add_argument("--warmup", type=int, default=2, help="untimed step pairs at the start of each round (default 2)")
    p.add_argument(
        "--repeats", type=int, default=None, help="rounds per configuration, fresh models each (default 3; quick 2)"
    )
    p.add_argument("--overhead-scale", type=float, default=0.2,
                   help="fraction of the default eval cadence (and val split) for the overhead run; 1 = the real"
                   " 500-step cadence (default %(default)s)")
    p.add_argument("--no-overhead", action="store_true", help="skip the eval + checkpoint overhead run")
    p.add_argument("--only", choices=["a", "default"], help="measure throughput for one configuration only")
    p.add_argument("--gru", action="store_true",
                   help="instead of a and default: the GRU and the LSTM at 2x256 and 2x512 (T128 B32), bf16 and fp32, with"
                   " GRU/LSTM; the overhead run still runs unless --no-overhead")
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda", "mps"], help="(default %(default)s)")
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test that runs in seconds")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    a = p.parse_args(argv)
    steps = a.steps if a.steps is not None else (5 if a.quick else 6)
    repeats = a.repeats if a.repeats is not None else (2 if a.quick else 3)
    if a.gru and a.only:
        p.error("--gru measures its own configurations: leave out --only")
    if steps < 1 or repeats < 1 or a.warmup < 0 or not 0 < a.overhead_scale <= 1:
        p.error("--steps and --repeats must be >= 1, --warmup >= 0, 0 < --overhead-scale <= 1")

    t0 = time.perf_counter()
    if not a.corpus.is_file():
        print(f"error: corpus not found: {a.corpus} (pass --corpus PATH)", file=sys.stderr)
        return 1
    try:
        device = resolve_device(a.device)
        corpus = load_corpus(a.corpus)
    except CharRNNError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1

    if a.quick:
        setups = [Setup("a", 64, 2, 16, 32, 8), Setup("default", 32, 2, 16, 32, 8)]
    else:
        setups = [Setup("a", 512, 2, 64, 100, 64), default_setup()]
    overhead_setup = setups[-1]
    if a.gru:
        setups = gru_setups()
    if a.only:
        setups = [s for s in setups if s.name == a.only]

    result: dict = {
        "corpus": str(a.corpus),
        "corpus_chars": int(len(corpus.ids)),
        "device": str(device),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "quick": a.quick,
        "steps": steps,
        "warmup": a.warmup,
        "repeats": repeats,
        "throughput": [],
    }
    for s in setups:
        log(f"throughput {s.name}: {s.label()} ({repeats} rounds x ({a.warmup} warm-up + {steps} timed) steps)")
        result["throughput"].append(measure_throughput(s, corpus, device, steps, a.warmup, repeats))
    if not a.no_overhead:
        s = overhead_setup
        log(f"overhead: {s.label()} at scale {a.overhead_scale:g}")
        result["overhead"] = measure_overhead(s, corpus, device, a.overhead_scale, a.quick)
    result["wall_s"] = round(time.perf_counter() - t0, 1)

    if a.json:
        print(json.dumps(result))
    else:
        print_tables(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
