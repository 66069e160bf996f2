"""The minimal cells' scan (charrnn/cells/scan.py): how fast and how exact
each way of running h(t) = a(t) h(t-1) + b(t) is, and what it buys a
training step against the other kinds.

    python benchmarks/scan_speed.py                  # both tables, H=384
    python benchmarks/scan_speed.py --hidden 512 --skip-kinds
    python benchmarks/scan_speed.py --device cuda    # where one is lent

1. minGRU's recurrence alone, from its pre-activations (its gate maths
   included), forward and backward, at B=32, T=128: charrnn's `sequential`
   (T fused steps each way) and `parallel` (Hillis-Steele doubling), and
   the log-space scan of Feng et al. 2024 (Heinsen 2023: log A +
   logcumsumexp(log b - log A)) for comparison; and each one's max
   relative error against the recurrence in float64, at pre-activations
   of spread 1, 5 and 20 (20: gates pinned near 0 and 1).
2. A bare training step (CharRNN forward, cross-entropy, backward, AdamW)
   of every built-in kind at 2xH, E64, T128, B32, interleaved kind by kind
   so all see the same machine noise; the median of --steps timed steps.

Read ratios: absolute times move with the machine's load.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from charrnn import cells
from charrnn.cells import scan
from charrnn.device import recurrence_in_fp32
from charrnn.model import CharRNN, ModelConfig

B, T, E, V = 32, 128, 64, 65


def linear(algorithm):
    """charrnn's way: minGRU's a = sigmoid(-k) and b = sigmoid(k) g(n), then the scan."""

    def run(k: torch.Tensor, n: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
        return algorithm((-k).sigmoid(), k.sigmoid() * scan.g(n), h0)

    return run


def log_space(k: torch.Tensor, n: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """The paper's way, for comparison only (charrnn does not use it): log a
    and log b straight from the pre-activations, then
    log h = log A + logcumsumexp(log b - log A)."""
    log_g = torch.where(n >= 0, (n.relu() + 0.5).log(), -F.softplus(-n))
    log_a, log_b = -F.softplus(k), -F.softplus(-k) + log_g
    log_A = log_a.cumsum(1)
    return (log_A + torch.logcumsumexp(log_b - log_A, 1)).exp() + log_A.exp() * h0[:, None]


ALGORITHMS = {"sequential": linear(scan.sequential), "parallel": linear(scan.parallel), "log-space (paper)": log_space}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def preactivations(spread: float, hidden: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """minGRU's z and n before their activations."""
    return tuple(torch.randn(B, T, hidden, device=device) * spread for _ in range(2))


def scan_table(hidden: int, device: torch.device, repeats: int) -> None:
    print(f"scan alone, B={B} T={T} H={hidden}, forward + backward (median of {repeats})")
    print(f"{'algorithm':18} {'ms':>7} {'err s=1':>9} {'err s=5':>9} {'err s=20':>9}")
    h0 = torch.rand(B, hidden, device=device)
    errors = {name: [] for name in ALGORITHMS}
    for spread in (1.0, 5.0, 20.0):
        torch.manual_seed(0)
        k, n = preactivations(spread, hidden, device)
        k64 = k.double()
        want = _recurrence((-k64).sigmoid(), k64.sigmoid() * scan.g(n.double()), h0.double())
        for name, fn in ALGORITHMS.items():  # relative, where h is not lost in float32's underflow
            errors[name].append(((fn(k, n, h0).double() - want).abs() / want.abs().clamp_min(1e-30)).max().item())
    for name, fn in ALGORITHMS.items():
        times = []
        for _ in range(repeats + 1):
            k, n = (x.requires_grad_() for x in preactivations(1.0, hidden, device))
            _sync(device)
            t0 = time.perf_counter()
            fn(k, n, h0).sum().backward()
            _sync(device)
            times.append(time.perf_counter() - t0)
        ms = 1000 * statistics.median(times[1:])
        print(f"{name:18} {ms:7.1f} " + " ".join(f"{e:9.1e}" for e in errors[name]))


def _recurrence(a, b, h0):
    h, out = h0, []
    for t in range(a.shape[1]):
        h = a[:, t] * h + b[:, t]
        out.append(h)
    return torch.stack(out, 1)


def make_step(kind: str, hidden: int, precision: str, device: torch.device):
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(kind, V, E, hidden, 2)).to(device).train()
    model.fp32_recurrence = recurrence_in_fp32(precision, device)  # as the trainer sets it
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = torch.randint(0, V, (B, T), device=device), torch.randint(0, V, (B, T), device=device)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            logits, _ = model(x)
            loss = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def kinds_table(hidden: int, precisions: list[str], device: torch.device, steps: int) -> None:
    kinds = [k for k in ("lstm", "gru", "rnn", "mingru", "minlstm") if k in cells.names()]
    print(f"\ntraining step, 2x{hidden} E{E} T{T} B{B}: chars/s (and / LSTM), median of {steps}")
    print(f"{'precision':9} " + " ".join(f"{k:>16}" for k in kinds))
    for precision in precisions:
        fns = {kind: make_step(kind, hidden, precision, device) for kind in kinds}
        times: dict[str, list[float]] = {kind: [] for kind in kinds}
        for i in range(steps + 2):
            for kind, fn in fns.items():
                _sync(device)
                t0 = time.perf_counter()
                fn()
                _sync(device)
                if i >= 2:  # two untimed: allocator and kernel warm-up
                    times[kind].append(time.perf_counter() - t0)
        rate = {kind: B * T / statistics.median(t) for kind, t in times.items()}
        cells_ = [f"{rate[k]:9,.0f} ({rate[k] / rate['lstm']:.2f})" for k in kinds]
        print(f"{precision:9} " + " ".join(f"{c:>16}" for c in cells_))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", nargs="+", default=["bf16", "fp32"], choices=["bf16", "fp32"])
    ap.add_argument("--repeats", type=int, default=7, help="timed scans per algorithm")
    ap.add_argument("--steps", type=int, default=6, help="timed training steps per kind")
    ap.add_argument("--skip-kinds", action="store_true", help="only the scan table")
    args = ap.parse_args()
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {device}")
    scan_table(args.hidden, device, args.repeats)
    if not args.skip_kinds:
        kinds_table(args.hidden, args.precision, device, args.steps)


if __name__ == "__main__":
    main()
