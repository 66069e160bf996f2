"""Fine-tuning: a new run that starts from a trained model's weights
(`charrnn train CORPUS --init-from CKPT`, char-rnn's init_from).

The new run's vocabulary is the union of the parent's and the corpus's.
Every weight of the parent is kept: the recurrent layers as they are, and
the embedding and head rows of each old character moved to that
character's id in the union; a new character's rows keep the fresh
initialisation of the seeded new model. The run records its parent.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from .. import checkpoint as ckpt
from ..corpus import Vocab
from ..errors import CharRNNError
from ..model import REGULARISERS, CharRNN, ModelConfig
from .config import TrainConfig, flag

# Fine-tuning starts near a minimum: the learning rate that trains from
# scratch fastest knocks it out again. The default is the kind's lr times
# this (benchmarks/finetune.py measured it; README, "Fine-tuning").
LR_SCALE = 0.5
SHAPE = ("kind", "embedding", "hidden", "layers", "documents")  # what fine-tuning keeps
# What it may change: the model's regularisers (model.REGULARISERS).


@dataclass(frozen=True)
class Parent:
    """What a fine-tuned run remembers of the model it started from."""

    path: str
    sha256: str  # the parent checkpoint's own checksum
    step: int | None  # its run's step; None for a weights-only export
    vocab_size: int


def child_model(parent: ckpt.Checkpoint, given: dict) -> ModelConfig:
    """The parent's shape, with `given` options (ModelConfig field -> value,
    only those the user gave) checked against it: only the regularisers
    (dropout, weight drop, embedding dropout) may change."""
    base = parent.config
    for name in SHAPE:
        if name in given and given[name] != getattr(base, name):
            raise CharRNNError(
                f"{flag(name)} {given[name]} does not fit {parent.path}"
                f" ({base.layers}x{base.hidden} {base.kind}, embedding {base.embedding}):"
                " fine-tuning keeps the parent's shape; leave it out"
            )
    return replace(base, **{name: given[name] for name in REGULARISERS if name in given})


def child_config(config: TrainConfig, kind: str) -> TrainConfig:
    """The run's config, its learning rate defaulting to the fine-tuning one."""
    if config.lr is not None:
        return config
    return replace(config, lr=config.for_kind(kind).lr * LR_SCALE)


@torch.no_grad()
def inherit(model: CharRNN, vocab: Vocab, parent: ckpt.Checkpoint) -> None:
    """Copy the parent's weights into `model` (freshly initialised, over
    `vocab`, a superset of the parent's), character rows by character."""
    rows = torch.as_tensor(vocab.encode("".join(parent.vocab.chars)).astype("int64"))  # parent id -> new id
    theirs = parent.model.state_dict()
    for name, mine in model.state_dict().items():
        if name in ("embed.weight", "head.weight", "head.bias"):
            mine[rows] = theirs[name].to(mine)
        else:
            mine.copy_(theirs[name])


def parent_record(parent: ckpt.Checkpoint) -> Parent:
    return Parent(str(parent.path.resolve()), parent.sha256, parent.run.step if parent.run else None, parent.vocab.size)
