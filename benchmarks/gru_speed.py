"""GRU against LSTM training speed at the same shape, and where the GRU's
time goes. Target: the GRU at 0.9x the LSTM's chars/s or more.

    python benchmarks/gru_speed.py                        # 2x256 and 2x512, bf16 and fp32
    python benchmarks/gru_speed.py --hidden 256 --precision bf16 --profile

A bare training step (embedding, nn.LSTM, charrnn's GRU (cells/gru_cpu.py)
or PyTorch's nn.GRU, linear head, cross-entropy, backward, AdamW) at T=128,
B=32, with charrnn's allocator setting; the three modules' steps are
interleaved, so both see the same machine noise, and the median of --steps
timed steps counts. --profile prints each kind's top operators by self CPU
time. Read the ratio: absolute chars/s move with the machine's load.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from charrnn.cells.gru_cpu import FastGRU
from charrnn.training.memory import keep_freed_memory

B, T, E, V = 32, 128, 64, 65
# charrnn's GRU is FastGRU (cells/gru_cpu.py); "nn.GRU" is PyTorch's own, for reference
MODULES = {"LSTM": nn.LSTM, "GRU": FastGRU, "nn.GRU": nn.GRU}


def make_step(kind: str, hidden: int, precision: str):
    torch.manual_seed(0)
    emb, rnn, head = nn.Embedding(V, E), MODULES[kind](E, hidden, 2, batch_first=True), nn.Linear(hidden, V)
    params = [*emb.parameters(), *rnn.parameters(), *head.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-3)
    x, y = torch.randint(0, V, (B, T)), torch.randint(0, V, (B, T))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            out, _ = rnn(emb(x))
            loss = F.cross_entropy(head(out).flatten(0, 1).float(), y.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hidden", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--precision", nargs="+", default=["bf16", "fp32"], choices=["bf16", "fp32"])
    ap.add_argument("--steps", type=int, default=10, help="timed steps per kind (after 2 untimed)")
    ap.add_argument("--profile", action="store_true", help="print each kind's top operators")
    args = ap.parse_args()
    keep_freed_memory()  # as `charrnn train` does: the allocator's behaviour changes the ratios
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; B={B} T={T}")
    print(f"{'shape':8} {'precision':9} {'LSTM chars/s':>13} {'GRU chars/s':>12} {'GRU/LSTM':>9}"
          f" {'nn.GRU chars/s':>15} {'nn.GRU/LSTM':>12}")  # fmt: skip
    for hidden in args.hidden:
        for precision in args.precision:
            steps = {kind: make_step(kind, hidden, precision) for kind in MODULES}
            times: dict[str, list[float]] = {kind: [] for kind in steps}
            for i in range(args.steps + 2):
                for kind, step in steps.items():
                    t0 = time.perf_counter()
                    step()
                    if i >= 2:
                        times[kind].append(time.perf_counter() - t0)
            speed = {kind: B * T / statistics.median(ts) for kind, ts in times.items()}
            print(f"2x{hidden:<6} {precision:9} {speed['LSTM']:13,.0f} {speed['GRU']:12,.0f}"
                  f" {speed['GRU'] / speed['LSTM']:9.2f} {speed['nn.GRU']:15,.0f}"
                  f" {speed['nn.GRU'] / speed['LSTM']:12.2f}", flush=True)  # fmt: skip
            if args.profile:
                profile(steps)


def profile(steps: dict) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    for kind, step in steps.items():
        with torch_profile(activities=[ProfilerActivity.CPU]) as p:
            step()
        print(kind)
        print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=10, max_name_column_width=40))


if __name__ == "__main__":
    main()
