"""Sampling speed: charrnn's generator against stepping nn.LSTM (or GRU/RNN)
one character at a time, and against the memory-bandwidth bound.

Everything is measured in one run and reported as ratios, because absolute
times on a shared machine are not stable. Each case alternates baseline and
charrnn repeats and takes the median of each, so both see the same noise.

    python benchmarks/sample_speed.py            # about 3 minutes on 2 cores
    python benchmarks/sample_speed.py --quick    # smoke test, seconds
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

from charrnn.corpus import Vocab
from charrnn.model import CharRNN, ModelConfig
from charrnn.sample import SampleConfig, generate

VOCAB = Vocab(tuple(sorted(set("\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"))))  # 65


def baseline_chars_per_s(model: CharRNN, batch: int, length: int, seed: int = 0) -> float:
    """The loop most char-rnn samplers run: the sequence module on a (B, 1)
    input every step, then softmax and a multinomial draw."""
    g = torch.Generator().manual_seed(seed)
    with torch.inference_mode():
        ids = torch.zeros(batch, 1, dtype=torch.long)
        state = model.init_state(batch)
        t0 = time.perf_counter()
        for _ in range(length):
            x = model.embed(ids)
            out, new = model.rnn(x, model.cell.to_module_state(state))
            state = model.cell.from_module_state(new)
            probs = F.softmax(model.head(out[:, -1]), -1)
            ids = torch.multinomial(probs, 1, generator=g)
            ids.tolist()  # the characters are needed on the host, as in sampling
        return batch * length / (time.perf_counter() - t0)


def charrnn_chars_per_s(model: CharRNN, batch: int, length: int, seed: int = 0) -> float:
    config = SampleConfig(length=length, seed=seed, num_samples=batch)
    t0 = time.perf_counter()
    n = sum(1 for _ in generate(model, VOCAB, "\n", config))
    return batch * n / (time.perf_counter() - t0)


def read_bandwidth(nbytes: int, repeats: int = 20) -> float:
    """Bytes per second that summing a float32 buffer of `nbytes` reads, at
    its best over repeats. Sized like the weights a step reads, so it
    measures the memory they actually stream from (a large L3 cache can
    hold a 2x512 model's 12 MB: main-memory bandwidth would understate the
    bound there)."""
    x = torch.ones(max(nbytes // 4, 1024))
    x.sum()  # first touch
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        x.sum().item()
        best = min(best, time.perf_counter() - t0)
    return x.numel() * 4 / best


def bytes_per_step(model: CharRNN) -> int:
    """Weight bytes the fast path reads per character: every recurrent and
    head matrix, but only one row of layer 0's folded input table."""
    c = model.config
    gates = model.cell.blocks
    recurrent = c.hidden if model.cell.recurrent else 0  # W_hh's columns: none for a scanning kind
    per_layer_above = gates * c.hidden * (c.hidden + recurrent)
    layer0 = gates * c.hidden * recurrent
    head = c.hidden * c.vocab_size
    return 4 * (layer0 + (c.layers - 1) * per_layer_above + head + gates * c.hidden)


def measure(kind: str, layers: int, hidden: int, batch: int, length: int, repeats: int) -> dict:
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(kind, VOCAB.size, embedding=64, hidden=hidden, layers=layers)).eval()
    base, ours = [], []
    baseline_chars_per_s(model, batch, 20)  # warm up both paths
    charrnn_chars_per_s(model, batch, 20)
    plain = []  # the same baseline with PyTorch's oneDNN (mkldnn) RNN kernels off
    for r in range(repeats):
        base.append(baseline_chars_per_s(model, batch, length, seed=r))
        ours.append(charrnn_chars_per_s(model, batch, length, seed=r))
        with torch.backends.mkldnn.flags(enabled=False):
            plain.append(baseline_chars_per_s(model, batch, length, seed=r))
    return {
        "model": f"{layers}x{hidden} {kind}",
        "batch": batch,
        "baseline_chars_per_s": statistics.median(base),
        "baseline_no_mkldnn_chars_per_s": statistics.median(plain),
        "charrnn_chars_per_s": statistics.median(ours),
        "bytes_per_step": bytes_per_step(model),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--length", type=int, default=500, help="characters per timed sample (per stream)")
    ap.add_argument("--repeats", type=int, default=5, help="alternating repeats per case (median taken)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes and lengths: a smoke test")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = ap.parse_args()

    cases = [
        ("lstm", 2, 512, 1),
        ("lstm", 2, 128, 1),
        ("lstm", 2, 512, 64),
        ("gru", 2, 512, 1),
        ("rnn", 2, 512, 1),
    ]
    targets = {("lstm", 2, 512, 1): 5.0, ("lstm", 2, 128, 1): 4.0, ("lstm", 2, 512, 64): 1.3}
    length, repeats = (20, 1) if args.quick else (args.length, args.repeats)
    rows = []
    for kind, layers, hidden, batch in cases:
        if args.quick:
            hidden = min(hidden, 32)
        row = measure(kind, layers, hidden, batch, length, repeats)
        row["speedup"] = row["charrnn_chars_per_s"] / row["baseline_chars_per_s"]
        row["target_speedup"] = None if args.quick else targets.get((kind, layers, hidden, batch))
        if batch == 1:
            bandwidth = read_bandwidth(row["bytes_per_step"])
            row["read_bandwidth_gb_s"] = bandwidth / 1e9
            bound = bandwidth / row["bytes_per_step"]
            row["bandwidth_bound_chars_per_s"] = bound
            row["fraction_of_bound"] = row["charrnn_chars_per_s"] / bound
        rows.append(row)
    result = {"threads": torch.get_num_threads(), "cases": rows}
    if args.json:
        print(json.dumps(result))
        return
    table = Table(title=f"sampling speed, chars/s ({torch.get_num_threads()} threads)")
    cols = ("model", "batch", "nn stepped", "(no mkldnn)", "charrnn", "speedup", "target", "GB/s", "bound", "of bound")
    for col in cols:
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            r["model"],
            str(r["batch"]),
            f"{r['baseline_chars_per_s']:,.0f}",
            f"{r['baseline_no_mkldnn_chars_per_s']:,.0f}",
            f"{r['charrnn_chars_per_s']:,.0f}",
            f"{r['speedup']:.2f}x",
            f">= {r['target_speedup']}x" if r["target_speedup"] else "",
            f"{r['read_bandwidth_gb_s']:.0f}" if "read_bandwidth_gb_s" in r else "",
            f"{r['bandwidth_bound_chars_per_s']:,.0f}" if "bandwidth_bound_chars_per_s" in r else "",
            f"{r['fraction_of_bound']:.2f}" if "fraction_of_bound" in r else "",
        )
    Console(width=150).print(table)


if __name__ == "__main__":
    main()
