"""charrnn.memory: with glibc keeping freed memory, a loop that allocates
and frees the same big buffer stops page-faulting it back in each time."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Faults taken while a 64 MB buffer is allocated, written and freed 10 times,
# before and after keep_freed_memory(); in a child, as the setting is process-wide.
CHILD = """
import resource, torch
from charrnn.training.memory import keep_freed_memory

def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        torch.empty(16 * 2**20).fill_(1.0)  # 64 MB, freed at once
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

plain = faults()
kept = keep_freed_memory()
faults()  # the first allocation after the change still faults its pages in once
# The fewest of three rounds: on CI one round once faulted 3 of its 10 buffers
# in afresh (the heap grew where a small allocation had split it), which the
# next rounds reuse. Without the setting every round faults all ten.
print(plain, kept, min(faults() for _ in range(3)))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a glibc setting")
def test_freed_memory_is_reused_not_faulted_back_in() -> None:
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True).stdout.split()
    plain, kept, after = int(out[0]), out[1] == "True", int(out[2])
    if not kept:
        pytest.skip("this C library is not glibc")
    assert plain >= 10  # each round faults its buffer in afresh (16k pages, fewer if huge)
    assert after < plain / 20


CHILD_BLOCK = CHILD.replace("from charrnn.training.memory import keep_freed_memory",
                            "from charrnn.training.memory import freed_memory_kept").split("plain = faults()")[0] + """
with freed_memory_kept() as kept:
    faults()
    inside = min(faults() for _ in range(3))
print(kept, inside, faults())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a glibc setting")
def test_the_setting_is_put_back_after_the_block() -> None:
    out = subprocess.run([sys.executable, "-c", CHILD_BLOCK], capture_output=True, text=True, check=True).stdout.split()
    kept, inside, after = out[0] == "True", int(out[1]), int(out[2])
    if not kept:
        pytest.skip("this C library is not glibc")
    assert after >= 10 and inside < after / 20  # glibc maps and unmaps big buffers again
