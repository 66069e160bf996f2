"""Training across processes with PyTorch's own engine: torch.distributed,
launched by torchrun, with DistributedDataParallel.

The B contiguous streams of a batch are the unit of work: rank r of W
trains streams [r*B/W, (r+1)*B/W), so the truncated-BPTT layout is the
same as one process with the same global batch, and a run can resume
with any number of processes that divides B. Only rank 0 writes files;
evaluation is split across ranks and summed.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta

import torch
import torch.distributed as dist

from ..errors import CharRNNError
from ..parallel import Dist, sum_all  # noqa: F401  (the loop's, through this module)


def is_main_process() -> bool:
    """Rank 0, or a plain run: the process that prints."""
    return int(os.environ.get("RANK", "0")) == 0


def world_size() -> int:
    """The processes torchrun started for the job (1 for a plain run), read before joining them."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def launched() -> bool:
    """Whether this process was started by torchrun with more than one process."""
    return world_size() > 1


_joined = False  # whether this process ever joined a process group


def setup(device: torch.device) -> Dist:
    """Join the process group torchrun set up (gloo on CPU, nccl on CUDA)."""
    if not launched():
        return Dist()
    if not dist.is_available():
        raise CharRNNError("this PyTorch build has no torch.distributed support")
    if device.type == "mps":
        raise CharRNNError("torchrun with --device mps is not supported: use --device cpu, or one process")
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(gpu_for(int(os.environ.get("LOCAL_RANK", "0")), torch.cuda.device_count()))
        backend = "nccl" if device.type == "cuda" else "gloo"
        # A dead peer should end the job within minutes, not the default half hour.
        dist.init_process_group(backend, timeout=timedelta(minutes=5))
    global _joined
    _joined = True
    return Dist(dist.get_rank(), dist.get_world_size())


def gpu_for(local_rank: int, visible: int) -> int:
    """The GPU a process uses: its local rank's, or the only one it sees
    (a scheduler that binds one GPU per process shows each process one,
    whatever its local rank)."""
    if visible == 1:
        return 0
    if local_rank >= visible:
        raise CharRNNError(
            f"process {local_rank} has no GPU: this machine shows {visible}; use --nproc_per_node up to that"
        )
    return local_rank


def joined() -> bool:
    return _joined


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def exit_without_shutdown(code: object) -> None:
    """End a process that took part in a process group, skipping the
    interpreter's shutdown (os._exit), after flushing what it printed.

    gloo's worker threads outlive destroy_process_group, and each drops a
    finished collective's tensors a moment after the caller is woken;
    dropping a tensor takes the GIL. When that moment falls inside
    interpreter shutdown, the thread is killed mid-destructor and the
    process aborts ("terminate called without an active exception",
    exit -6) after it has trained and saved: 15 of 105 two-process runs
    here. Nothing is left to do at that point (checkpoints are fsynced
    when written), so the process ends without the shutdown."""
    if code is None:
        code = 0
    elif not isinstance(code, int):  # sys.exit("message"): Python prints it and exits 1
        print(code, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # a closed or missing stream: nothing more can be said
            pass
    os._exit(code)


def gather_streams(t: torch.Tensor, d: Dist) -> torch.Tensor:
    """(layers, B/W, H) on every rank -> (layers, B, H), streams in rank order."""
    if not d.enabled:
        return t
    parts = [torch.empty_like(t) for _ in range(d.world)]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts, dim=1)


def gather_objects(obj, d: Dist) -> list:
    """Every process's `obj` (small: generator states), in rank order."""
    if not d.enabled:
        return [obj]
    out = [None] * d.world
    dist.all_gather_object(out, obj)
    return out


def check_in_step(model: torch.nn.Module, d: Dist, device: torch.device) -> None:
    """Raise if the processes' weights are not bit-identical (they must
    be: each applies the same averaged gradients). The check is the sum of
    every weight's raw bits as integers: exact, and independent of any
    floating-point summation order. One small all_gather per evaluation."""
    if not d.enabled:
        return
    with torch.no_grad():
        bits = sum(int(p.detach().contiguous().view(torch.int32).to(torch.int64).sum()) for p in model.parameters())
    mine = torch.tensor([bits % (2**61 - 1)], dtype=torch.int64, device=device)
    sums = [torch.empty_like(mine) for _ in range(d.world)]
    dist.all_gather(sums, mine)
    values = [int(t.item()) for t in sums]
    if any(v != values[0] for v in values):
        raise CharRNNError(f"the processes' weights differ (checksums {values}): distributed training went wrong")
