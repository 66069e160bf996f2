"""What a bug report needs to know about this installation: the versions,
the machine, the devices PyTorch sees, and the two CPU facts that change
what charrnn runs (bf16 support, which decides --precision auto, and
whether the GRU's optional C step is built)."""

from __future__ import annotations

import platform
from importlib import metadata

import torch

from . import __version__, device
from .cells import gru_cpu


def facts() -> dict:
    """The facts, as plain values (str, int, bool, list, None)."""
    cuda = torch.cuda.is_available()
    return {
        "charrnn": _installed_version(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "machine": platform.machine(),
        "cpu": _cpu_name(),
        "threads": torch.get_num_threads(),
        "cuda": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
        "cuda_version": torch.version.cuda,  # the CUDA torch was built with; None in a CPU-only build
        "mps": torch.backends.mps.is_available(),
        "native_bf16": device.cpu_has_native_bf16(),  # AVX512-BF16 or AMX: --precision auto picks bf16 on the CPU
        "onednn_bf16": device.onednn_has_bf16(),  # natively or emulated: without it, bf16 recurrences run in fp32
        "cpu_precision_auto": device.resolve_precision("auto", torch.device("cpu")),
        "gru_c_step": gru_cpu.c_step_problem() or "built",
    }


def _installed_version() -> str:
    try:
        return metadata.version("charrnn")
    except metadata.PackageNotFoundError:  # run from a source tree that pip never installed
        return f"{__version__} (not installed)"


def _cpu_name() -> str:
    """The CPU's model name where the system says it (Linux), else what
    Python's platform module knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
