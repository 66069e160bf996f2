"""Where a command runs and in what arithmetic: the one place that knows
the device and precision names, what `auto` means for each, and what
each device can do."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import torch

from .errors import CharRNNError

DEVICES = ("auto", "cpu", "cuda", "mps")
# Training arithmetic: the autocast dtype of each precision (None: plain fp32).
AUTOCAST = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
PRECISIONS = ("auto", *AUTOCAST)
STORAGE = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}  # what exported weights may be
CUBLAS_WORKSPACE = "CUBLAS_WORKSPACE_CONFIG"  # cuBLAS's deterministic mode needs it set


def resolve_device(name: str) -> torch.device:
    """'auto' is cuda, then mps, then cpu; a named device must be there."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise CharRNNError("--device cuda: no CUDA GPU is available (use --device cpu or auto)")
    if name == "mps" and not torch.backends.mps.is_available():
        raise CharRNNError("--device mps: Apple MPS is not available (use --device cpu or auto)")
    try:
        return torch.device(name)  # the library takes any torch device name: cuda:1, ...
    except RuntimeError:
        raise CharRNNError(f"unknown device {name!r}: use {', '.join(DEVICES)}") from None


def check_precision(name: str) -> None:
    if name not in PRECISIONS:
        raise CharRNNError(f"--precision must be one of {', '.join(PRECISIONS)}, not {name!r}")


def resolve_precision(name: str, device: torch.device) -> str:
    """`auto` is bf16 autocast on a CPU with native bf16 dot products
    (AVX512-BF16 or AMX), where it trains markedly faster than fp32 (see
    benchmarks/quality.py); fp32 everywhere else, including GPUs, where it
    has not been measured yet."""
    check_precision(name)
    if name == "fp16" and device.type != "cuda":
        raise CharRNNError("--precision fp16 needs a CUDA GPU (PyTorch's CPU LSTM has no fp16 kernel): use bf16")
    if name != "auto":
        return name
    return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"


def describe_precision(precision: str, device: torch.device) -> str:
    """What runs, for the start-up line: 'bf16 (recurrence in fp32)' on CUDA."""
    if recurrence_in_fp32(precision, device):
        return f"{precision} (recurrence in fp32)"
    if precision == "fp32" and device.type == "cuda":
        return "fp32 (TF32 off)"
    return precision


def recurrence_in_fp32(precision: str, device: torch.device) -> bool:
    """Whether the recurrent layers run outside autocast, in fp32, while the
    embedding and head run in bf16 (a fused recurrence: CharRNN.forward; a
    scanning kind's recurrence is fp32 on every device, cells/scan.py).
    On CUDA, autocast hands cuDNN's RNN kernels fp16 whatever dtype was
    asked for, and bf16 has no gradient scaler: `--precision bf16` would
    train the recurrence in unscaled fp16. On a CPU where oneDNN has no
    bf16 (x86 without AVX-512), its bf16 LSTM cannot even be built."""
    if precision != "bf16":
        return False
    return device.type == "cuda" or device.type == "cpu" and not onednn_has_bf16()


@contextmanager
def exact_fp32(precision: str, device: torch.device) -> Iterator[None]:
    """With --precision fp32 on CUDA, fp32 means IEEE fp32 for as long as
    the block runs: cuDNN's RNNs and matmuls default to TF32 on Ampere and
    newer, where the fused and step paths then differ beyond 1e-5. The
    process's previous settings come back afterwards."""
    if precision != "fp32" or device.type != "cuda":
        yield
        return
    with _IEEE.lock:  # blocks in several threads: the first sets it, the last puts it back
        if _IEEE.holders == 0:
            _IEEE.before = [k.fp32_precision for k in _ieee_knobs()]
            for k in _ieee_knobs():
                k.fp32_precision = "ieee"
        _IEEE.holders += 1
    try:
        yield
    finally:
        with _IEEE.lock:
            _IEEE.holders -= 1
            if _IEEE.holders == 0:
                for k, value in zip(_ieee_knobs(), _IEEE.before):
                    k.fp32_precision = value


class _Held:
    """A process-wide setting held by blocks that may overlap (threads)."""

    def __init__(self):
        self.lock, self.holders, self.before = threading.Lock(), 0, []


_IEEE = _Held()


def _ieee_knobs() -> tuple:
    return torch.backends.cudnn.rnn, torch.backends.cuda.matmul


@contextmanager
def deterministic_kernels(enabled: bool, device: torch.device) -> Iterator[None]:
    """--deterministic, for as long as the block runs: one CPU thread for
    PyTorch's own kernels (the one setting under which no run differed in
    benchmarks/determinism.py; with two threads, some runs beside other
    work did), PyTorch's deterministic algorithms (an error, not a silent
    difference, where an op has none), oneDNN's deterministic mode, and on
    CUDA cuDNN's deterministic kernels and the cuBLAS workspace setting
    that deterministic mode requires. Previous settings come back after,
    the environment's included."""
    if not enabled:
        yield
        return
    workspace = os.environ.get(CUBLAS_WORKSPACE)
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
              torch.backends.mkldnn.deterministic, torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
              torch.get_num_threads())  # fmt: skip
    try:
        if device.type == "cuda":  # read by cuBLAS when its handle is made: before the first matmul
            os.environ.setdefault(CUBLAS_WORKSPACE, ":4096:8")
        torch.set_num_threads(1)
        torch.use_deterministic_algorithms(True)
        torch.backends.mkldnn.deterministic = True
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.mkldnn.deterministic = before[2]
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[3], before[4]
        torch.set_num_threads(before[5])
        if workspace is None:
            os.environ.pop(CUBLAS_WORKSPACE, None)
        else:
            os.environ[CUBLAS_WORKSPACE] = workspace


def ieee_fp32(device: torch.device) -> AbstractContextManager[None]:
    """IEEE fp32 for a block of inference on an fp32 model (eval, inspect,
    a sample's prime): on CUDA cuDNN's RNNs default to TF32, which would put
    the fused kernel's h ~1e-3 (relative) away from the gates recomputed
    beside it, and the figures away from the CPU's."""
    return exact_fp32("fp32", device)


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor on `device`. Non-blocking only on CUDA: on MPS a
    non-blocking copy from an unpinned temporary can read it after it is
    freed (pytorch#189690)."""
    return t.to(device, non_blocking=device.type == "cuda")


def onednn_has_bf16() -> bool:
    """Whether oneDNN runs bf16 on this CPU, natively or emulated (AVX-512
    or AVX2-VNNI-2 on x86, bf16 on Arm). Without it, PyTorch's bf16 LSTM
    fails to create its primitive."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(check is not None and torch.backends.mkldnn.is_available() and check())


def cpu_has_native_bf16() -> bool:
    # torch.cpu's probes are private (used by inductor): absent ones mean no.
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, p, lambda: False)() for p in probes)


def rng_states(device: torch.device) -> dict[str, torch.Tensor]:
    """The generators a run draws from (CPU, and the device's own)."""
    states = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    elif device.type == "mps":
        states["mps"] = torch.mps.get_rng_state()
    return states


def set_rng_states(states: dict[str, torch.Tensor], device: torch.device) -> None:
    torch.set_rng_state(states["cpu"])
    if device.type == "cuda" and "cuda" in states:
        torch.cuda.set_rng_state(states["cuda"], device)
    elif device.type == "mps" and "mps" in states:
        torch.mps.set_rng_state(states["mps"])
