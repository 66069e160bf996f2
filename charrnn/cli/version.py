"""`charrnn --version`: what a bug report needs (charrnn/about.py), in a
few short lines on stdout."""

from __future__ import annotations

from collections import Counter

import typer

from ..about import facts


def show(value: bool) -> None:
    """The eager --version option's callback: print, then exit 0."""
    if value:
        typer.echo(render(facts()))
        raise typer.Exit()


def render(f: dict) -> str:
    return "\n".join([
        f"charrnn {f['charrnn']}, torch {f['torch']}, Python {f['python']}",
        f"{f['platform']}, {f['machine']}: {f['cpu']}, {f['threads']} threads",
        f"devices: cpu; cuda: {_cuda(f)}; mps: {'yes' if f['mps'] else 'no'}",
        f"bf16 on this CPU: {_bf16(f)}; --precision auto there: {f['cpu_precision_auto']}",
        f"GRU C step: {f['gru_c_step']}",
    ])  # fmt: skip


def _cuda(f: dict) -> str:
    if not f["cuda"]:
        return "none" if f["cuda_version"] is None else f"none (torch built with CUDA {f['cuda_version']})"
    gpus = ", ".join(f"{n} x {name}" for name, n in Counter(f["cuda"]).items())
    return f"{gpus} (CUDA {f['cuda_version']})"


def _bf16(f: dict) -> str:
    if f["native_bf16"]:
        return "native"
    return "emulated by oneDNN, not native" if f["onednn_bf16"] else "none (bf16 recurrences run in fp32)"
