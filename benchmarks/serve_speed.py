"""`charrnn serve`'s throughput with 1, 8 and 32 clients at once, with
and without batching.

    python benchmarks/serve_speed.py CHECKPOINT [--clients 1 8 32] [--length 500] [--requests 4] [--seeded]

Starts `charrnn serve CHECKPOINT` on a free port, once as it is (batching
concurrent generations) and once with --no-batch, and for each client count
runs that many client threads at once, each sending --requests POST
/generate requests one after another (--length characters each, at
temperature 0.8, unseeded so that they batch; --seeded gives each its own
seed, which the server runs alone). It prints the total characters
generated per second over all clients, the median request time, and the
ratio to one client without batching. Every request must answer 200 with
--length characters. The ratios are what to read (this machine is shared).
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path


def start(checkpoint: Path, length: int, batch: bool) -> tuple[subprocess.Popen, tuple[str, int]]:
    cmd = [sys.executable, "-m", "charrnn", "serve", str(checkpoint), "--port", "0", "--max-length", str(length),
           "--max-requests", "64", "--device", "cpu", "--batch" if batch else "--no-batch"]  # fmt: skip
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    match = re.search(r"http://([\d.]+):(\d+)", proc.stderr.readline())
    if not match:
        proc.kill()
        sys.exit("error: the server did not start")
    return proc, (match.group(1), int(match.group(2)))


def client(address, length: int, seeds: list[int | None], times: list[float]) -> None:
    conn = http.client.HTTPConnection(*address, timeout=600)
    for seed in seeds:
        t0 = time.perf_counter()
        body = {"length": length, "temperature": 0.8} | ({"seed": seed} if seed is not None else {})
        conn.request("POST", "/generate", json.dumps(body), {"Content-Type": "application/json"})
        response = conn.getresponse()
        text = json.loads(response.read())["text"]
        if response.status != 200 or len(text) != length:
            raise SystemExit(f"error: a request answered {response.status} with {len(text)} characters")
        times.append(time.perf_counter() - t0)
    conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--length", type=int, default=500)
    ap.add_argument("--requests", type=int, default=4, help="requests per client, one after another")
    ap.add_argument("--seeded", action="store_true", help="a seed in every request (never batched)")
    args = ap.parse_args()
    print(f"{'batching':>8} {'clients':>7} {'requests':>8} {'chars/s':>9} {'median s':>9} {'vs 1 alone':>10}")
    base = None
    for batch in (False, True):
        proc, address = start(args.checkpoint, args.length, batch)
        try:
            client(address, args.length, [0], [])  # warm: the first request builds what later ones reuse
            for n in args.clients:
                times: list[float] = []
                seeds = [[c * 1000 + r if args.seeded else None for r in range(args.requests)] for c in range(n)]
                threads = [threading.Thread(target=client, args=(address, args.length, seeds[c], times)) for c in range(n)]
                t0 = time.perf_counter()
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                rate = n * args.requests * args.length / (time.perf_counter() - t0)
                base = base or rate
                print(f"{'on' if batch else 'off':>8} {n:7} {len(times):8} {rate:9,.0f} {statistics.median(times):9.2f}"
                      f" {rate / base:10.2f}")  # fmt: skip
        finally:
            proc.terminate()
            proc.wait(timeout=10)


if __name__ == "__main__":
    main()
