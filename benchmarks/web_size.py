"""What a page's or a module's weight format costs: the file's size, and
how far the model it holds strays from the fp16 page's.

    python benchmarks/web_size.py CHECKPOINT [--chars 10000] [--log]
    python benchmarks/web_size.py --table

For each of fp32, bf16, fp16 and int8: the page's and the module's bytes,
and, on the first --chars characters of the run's test split read as one
stream (exact fp32 arithmetic on the weights as the JavaScript decodes
them, charrnn.web.as_page_sees; tests/test_web.py holds the browser to
those within 1e-3 in each logit), the loss in nats/char and the share of
positions whose most likely next character is the fp16 model's. Nothing is
timed, so the figures do not depend on the machine. --log appends the rows
to benchmarks/results/web_size.jsonl, which docs/export.md shows.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from charrnn.checkpoint import load_checkpoint  # noqa: E402
from charrnn.evaluate import eval_text  # noqa: E402
from charrnn.web import as_page_sees, render, render_module  # noqa: E402

LOG = REPO / "benchmarks" / "results" / "web_size.jsonl"
DTYPES = ("fp32", "bf16", "fp16", "int8")


@torch.inference_mode()
def logits_on(checkpoint, dtype: str, ids: torch.Tensor) -> torch.Tensor:
    """(T, V) logits of the model with the weights a page in `dtype` holds."""
    model = checkpoint.model.float().eval()
    original = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(as_page_sees(original, dtype))
    try:
        return model(ids[None])[0][0].double()
    finally:
        model.load_state_dict(original)


def measure(path: Path, chars: int, label: str) -> list[dict]:
    checkpoint = load_checkpoint(path)
    text = eval_text(checkpoint)
    ids = torch.as_tensor(text.ids[: chars + 1].astype(np.int64))
    x, y = ids[:-1], ids[1:]
    runs = {dtype: logits_on(checkpoint, dtype, x) for dtype in DTYPES}
    rows = []
    for dtype, logits in runs.items():
        loss = -torch.log_softmax(logits, -1).gather(1, y[:, None]).mean().item()
        agree = (logits.argmax(-1) == runs["fp16"].argmax(-1)).double().mean().item()
        rows.append({
            "checkpoint": label, "model": f"{checkpoint.config.layers}x{checkpoint.config.hidden} {checkpoint.config.kind}",
            "checkpoint_bytes": checkpoint.path.stat().st_size, "dtype": dtype,
            "page_bytes": len(render(checkpoint, dtype).encode("utf-8")),
            "module_bytes": len(render_module(checkpoint, dtype).encode("utf-8")),
            "text": text.source.replace(str(REPO) + "/", ""), "chars": len(y), "loss": round(loss, 5), "argmax_agrees_with_fp16": round(agree, 5),
            "torch": torch.__version__,
        })  # fmt: skip
    return rows


def table(rows: list[dict]) -> str:
    if not rows:
        return "(no rows logged yet: `python benchmarks/web_size.py CHECKPOINT --log`)"
    first = rows[0]
    fp16 = next(r for r in rows if r["dtype"] == "fp16")
    lines = [
        f"{first['checkpoint']}: a {first['model']}, its checkpoint {first['checkpoint_bytes']:,} bytes; on the"
        f" first {first['chars']:,} characters of {first['text']}:",
        "",
        "| weights | page bytes | of the fp16 page | module bytes | loss (nats/char) | next character as fp16's |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['dtype']} | {r['page_bytes']:,} | {r['page_bytes'] / fp16['page_bytes']:.0%} |"
                     f" {r['module_bytes']:,} | {r['loss']:.4f} | {r['argmax_agrees_with_fp16']:.2%} |")  # fmt: skip
    return "\n".join(lines)


def logged() -> list[dict]:
    """The last logged measurement (its four rows)."""
    if not LOG.exists():
        return []
    rows = [json.loads(line) for line in LOG.read_text(encoding="utf-8").splitlines() if line.strip()]
    return rows[-len(DTYPES):]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path, nargs="?")
    ap.add_argument("--chars", type=int, default=10_000)
    ap.add_argument("--label", help="what the checkpoint is, for the table (default: its path)")
    ap.add_argument("--log", action="store_true", help=f"append the rows to {LOG.relative_to(REPO)}")
    ap.add_argument("--table", action="store_true", help="print the logged table and stop")
    args = ap.parse_args()
    if args.table or args.checkpoint is None:
        print(table(logged()))
        return
    rows = measure(args.checkpoint, args.chars, args.label or f"`{args.checkpoint}`")
    if args.log:
        with LOG.open("a", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    print(table(rows))


if __name__ == "__main__":
    main()
