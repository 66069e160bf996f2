"""Scoring a model on text: loss in nats per character, bits per character.

    checkpoint + (a text file, or the run's own test split) -> ids in the
    model's vocab -> score -> Score
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .checkpoint import Checkpoint, load_checkpoint
from .data import describe_chars, eval_chunks, load_corpus, split_corpus
from .device import ieee_fp32, resolve_device
from .errors import CharRNNError
from .model import CharRNN
from .training.distributed import Dist, sum_all


@dataclass(frozen=True)
class Score:
    loss: float  # mean nats per predicted character
    chars: int  # characters predicted

    @property
    def bpc(self) -> float:
        return self.loss / math.log(2)

    @property
    def perplexity(self) -> float:
        return math.exp(self.loss) if self.loss < 700 else math.inf

    def to_dict(self) -> dict:
        return {"loss": self.loss, "bpc": self.bpc, "perplexity": self.perplexity, "chars": self.chars}


@torch.inference_mode()
def score(model: CharRNN, ids: np.ndarray, batch_size: int = 1, seq_len: int = 256, d: Dist = Dist()) -> Score:
    """Mean loss of predicting ids[1:] from what precedes, the hidden state
    carried across the whole text. batch_size > 1 cuts the text into that
    many streams (faster; each stream starts from a zero state). Under
    torch.distributed the streams are shared out and the sums added up."""
    was_training = model.training
    model.eval()
    device = model.head.weight.device
    total, count, state = 0.0, 0, None  # summed in Python floats: MPS has no float64
    with ieee_fp32(device):
        for x, y in eval_chunks(ids, batch_size, seq_len, d.rank, d.world):
            logits, state = model(x.to(device), state)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.to(device).reshape(-1), reduction="sum")
            total += loss.item()
            count += y.numel()
    total, count = sum_all([total, count], d, device)
    count = int(count)
    model.train(was_training)
    return Score(total / count if count else float("nan"), count)


@dataclass(frozen=True)
class Evaluation:
    checkpoint: Path  # the checkpoint file scored
    source: str  # what text it was scored on
    score: Score


def evaluate_checkpoint(path: Path, text_file: Path | None = None, encoding: str = "utf-8",
                        device: str = "auto") -> Evaluation:  # fmt: skip
    """Score a checkpoint (or a run directory's best) on `text_file`, or on
    its run's own test split."""
    checkpoint = load_checkpoint(path)
    text = eval_text(checkpoint, text_file, encoding)
    result = score(checkpoint.model.to(resolve_device(device)), text.ids)
    if result.chars == 0:
        raise CharRNNError(f"{text.source} is too short to score: it needs at least 2 characters")
    return Evaluation(checkpoint.path, text.source, result)


@dataclass(frozen=True)
class EvalText:
    ids: np.ndarray  # in the model's vocab
    source: str  # what the text is, for the user: a path, or "the test split of PATH"


def eval_text(checkpoint: Checkpoint, text_file: Path | None = None, encoding: str = "utf-8") -> EvalText:
    """The text to score: `text_file` (every character must be in the
    model's vocab), or else the run's own test split, rebuilt from its
    corpus if that is still at hand and unchanged."""
    if text_file is not None:
        data = load_corpus(text_file, encoding)
        vocab = checkpoint.vocab
        unknown = sorted(set(data.vocab.chars) - set(vocab.chars))
        if unknown:
            raise CharRNNError(f"{text_file} holds characters the model has never seen: {describe_chars(unknown)}")
        # Re-map the file's own ids to the model's vocab.
        index = {c: i for i, c in enumerate(vocab.chars)}
        lut = np.asarray([index[c] for c in data.vocab.chars], dtype=vocab.dtype)
        return EvalText(lut[data.ids], str(text_file))
    run = checkpoint.run
    if run is None:
        raise CharRNNError("this checkpoint records no corpus: give a text file to score")
    corpus_path = Path(run.corpus.path)
    if not corpus_path.exists():
        raise CharRNNError(f"the run's corpus {corpus_path} is not at hand: give a text file to score")
    data = load_corpus(corpus_path, run.corpus.encoding)
    if data.info.sha256 != run.corpus.sha256:
        raise CharRNNError(f"{corpus_path} has changed since training: give a text file to score")
    splits = split_corpus(data.ids, run.train_config.val_frac, run.train_config.test_frac)
    if len(splits.test) < 2:
        raise CharRNNError("the run has no test split (--test-frac 0): give a text file to score")
    return EvalText(splits.test, f"the test split of {corpus_path}")
