"""charrnn: train, sample and inspect character-level RNN language models.

    import charrnn
    m = charrnn.load("checkpoints/shakespeare-gru")
    print(m.sample(prime="ROMEO:", length=200, temperature=0.8, seed=1))

The library's front is charrnn/api.py (docs/api.md). `import charrnn` stays
light: torch is imported on first use of a name below.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"
__all__ = ["CharRNNError", "Model", "State", "TextScore", "load", "train"]

if TYPE_CHECKING:
    from .api import Model, State, TextScore, load
    from .errors import CharRNNError
    from .training.launch import train_with as train

# name -> (module, attribute): a program that only reads models never loads the trainer.
_LAZY = {"CharRNNError": (".errors", "CharRNNError"), "train": (".training.launch", "train_with"),
         **{name: (".api", name) for name in ("Model", "State", "TextScore", "load")}}  # fmt: skip


def __getattr__(name: str):
    if name in _LAZY:
        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(module, __name__), attribute)
    raise AttributeError(f"module 'charrnn' has no attribute {name!r}")
