"""A job's processes, as far as code outside training/ needs them: which
share of the streams is this process's, and sums over every process.
torch.distributed does the work; training/distributed.py joins the group
(under torchrun) and holds what only training needs."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist

from .errors import CharRNNError


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def rows(self, n: int, what: str = "--batch-size") -> slice:
        """This rank's share of n streams."""
        if n % self.world:
            raise CharRNNError(
                f"{what} {n} cannot be split evenly across {self.world} processes: use a multiple of {self.world}"
            )
        share = n // self.world
        return slice(self.rank * share, (self.rank + 1) * share)


def sum_all(values: list[float], d: Dist, device: torch.device) -> list[float]:
    """Element-wise sum of a few numbers over all ranks (float64)."""
    if not d.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()
