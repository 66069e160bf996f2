"""This machine's pace: how many characters a model trains per second here.

A time-limited run's best model depends on how many steps the time buys,
and that varies by more than twice between CPUs that look alike. So where
a recipe is measured for a number of steps (recipes.py), the plan asks
first how fast its model trains here: a few optimizer steps on random
characters, timed after one untimed step, with the run's batch, window,
precision and optimizer. It takes a few seconds, before the run's own
clock starts, and leaves the caller's random generators as they were.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from ..device import AUTOCAST, recurrence_in_fp32
from ..model import CharRNN, ModelConfig
from .config import TrainConfig
from .loop import make_optimizer, own_generators
from .memory import freed_memory_kept

TIMED_STEPS = 3


def chars_per_second(model: ModelConfig, config: TrainConfig, device: torch.device, precision: str,
                     steps: int = TIMED_STEPS) -> float:  # fmt: skip
    """Training characters per second of `model` under `config` on `device`."""
    batch, window = config.batch_size, config.seq_len
    with own_generators(device), freed_memory_kept():
        net = CharRNN(model).to(device).train()
        net.fp32_recurrence = recurrence_in_fp32(precision, device)
        optimizer = make_optimizer(net, config.for_kind(model.kind))
        ids = torch.randint(model.vocab_size, (batch, window + 1), device=device)  # (B, T+1)
        state, started = net.init_state(batch, device), 0.0
        for step in range(steps + 1):
            if step == 1:  # the first step builds caches and allocates: not part of the pace
                _wait_for(device)
                started = time.perf_counter()
            with torch.autocast(device.type, dtype=AUTOCAST[precision], enabled=AUTOCAST[precision] is not None):
                logits, state = net(ids[:, :-1], state)  # (B, T, V)
                loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), ids[:, 1:].reshape(-1))
            state = net.detach_state(state)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip)
            optimizer.step()
        _wait_for(device)
        return batch * window * steps / (time.perf_counter() - started)


def _wait_for(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
