"""Reading a prime: the text a model reads before it generates, turned
into the state and logits that sampling and beam search start from."""

from __future__ import annotations

import numpy as np
import torch

from .corpus import Vocab
from .corpus.documents import DOC_END, chunks
from .device import ieee_fp32
from .model import CharRNN


def known_prime(vocab: Vocab, prime: str, skip_unknown: bool) -> np.ndarray:
    """The prime's ids, without the characters the model has never seen
    (skip_unknown) or refused in one line naming them."""
    return vocab.encode_known(prime, "the prime", skip_unknown, "drops them")[0]


def prime_ids(vocab: Vocab, prime: str, skip_unknown: bool, device: torch.device) -> torch.Tensor:
    """The prime's ids (P,); with no prime (or none left once unknown
    characters are skipped), a newline, as if a new line began. A model of
    documents reads the end marker first: a prime is a document's start."""
    ids = known_prime(vocab, prime, skip_unknown)
    if DOC_END in vocab.chars:
        ids = np.concatenate([vocab.encode(DOC_END), ids])
    elif len(ids) == 0:
        ids = vocab.encode("\n" if "\n" in vocab.chars else vocab.chars[0])
    return torch.as_tensor(ids.astype("int64"), device=device)


def read_prime(model: CharRNN, ids: torch.Tensor, chunk: int = 4096, state: tuple | None = None) -> tuple[torch.Tensor, tuple]:
    """Run the prime (P,) through the fused layers once, at batch 1, a chunk
    at a time with the state carried (from `state`; None: a fresh one), so a
    long --prime-file costs bounded memory. Returns the last position's
    logits (1, V) and the state."""
    state = model.init_state(1, ids.device) if state is None else state
    with ieee_fp32(ids.device):
        for start in range(0, len(ids), chunk):
            logits, state = model(ids[start : start + chunk][None], state)
    return logits[:, -1], state


def states_before(model: CharRNN, ids: torch.Tensor, positions, chunk: int = 4096) -> tuple[torch.Tensor, ...]:
    """The model's state after reading ids[:p] from a fresh state, for each
    of the (ascending) positions p: one fused pass, read a chunk at a time;
    (layers, len(positions), H) per state part. The caller holds ieee_fp32
    around it, as around the rest of its reading."""
    state, done, found = model.init_state(1, ids.device), 0, []
    for p in (int(p) for p in positions):
        for start, stop, fresh in chunks(ids[done:p], chunk, bool(model.config.documents)):
            if fresh:  # a model of documents reads each from the zero state
                state = model.init_state(1, ids.device)
            _, state = model(ids[done + start : done + stop][None], state)
        done = max(done, p)
        found.append(state)
    return tuple(torch.cat(parts, 1) for parts in zip(*found))
