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

from .checkpoint import Checkpoint
from .corpus import IGNORE, Splits, documents, eval_streams, load_corpus, stream_count
from .corpus.documents import END_ID, DocumentBatches, split_text
from .device import AUTOCAST, ieee_fp32, resolve_precision
from .errors import CharRNNError
from .model import CharRNN
from .parallel import Dist, sum_all


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


STREAMS = 32  # parallel streams for scoring: batched matmuls instead of one character at a time
WARMUP = 256  # characters each stream (but the first) reads before it scores: see README, eval


def score(model: CharRNN, ids: np.ndarray, streams: int = STREAMS, seq_len: int = 256, warmup: int = WARMUP,
          d: Dist = Dist(), precision: str = "fp32", sample: int | None = None) -> Score:  # fmt: skip
    """Mean loss of predicting ids[1:] from what precedes, each character
    scored once. The text is read as `streams` contiguous streams at once
    (data.eval_streams), each warmed up on the `warmup` characters before
    its part; streams=1 carries one state across the whole text (exact and
    slow). Under torch.distributed the streams are shared out and the sums
    added up. `precision` is fp32 or an autocast precision (bf16, fp16).
    `sample`: score only about that many characters, in blocks spread
    evenly over the text (the same ones every time); None: all. A model
    of documents scores each from the zero state (score_documents)."""
    if model.config.documents:
        return score_documents(model, ids, streams, seq_len, d, precision, sample)
    windows = ((x, y, False) for x, y in eval_streams(ids, streams, seq_len, warmup, d.rank, d.world, sample))
    return _summed(model, windows, d, precision)


def score_documents(model: CharRNN, ids: np.ndarray, rows: int = STREAMS, seq_len: int = 256, d: Dist = Dist(),
                    precision: str = "fp32", sample: int | None = None) -> Score:  # fmt: skip
    """Mean loss over the documents of `ids` (joined by their end marker,
    corpus/documents.py), each read from the zero state, its end marker
    predicted; many at once, as a batch's rows. `sample`: only documents
    spread evenly through the text, about that many characters of them."""
    batches = DocumentBatches(ids, END_ID, rows, seq_len, d.rank, d.world, seed=None,
                              docs=_sampled_documents(ids, sample))  # fmt: skip
    return _summed(model, ((*batches.batch(k), batches.fresh(k)) for k in range(len(batches))), d, precision)


@torch.inference_mode()
def _summed(model: CharRNN, windows, d: Dist, precision: str) -> Score:
    """The mean loss over every target of `windows`, (x, y, fresh) each
    ((B, T) inputs, targets with IGNORE where not scored, whether to start
    from the zero state; the state is carried otherwise), summed over the
    processes of `d`."""
    was_training = model.training
    model.eval()
    device = model.head.weight.device
    total, count, state = 0.0, 0, None  # summed in Python floats: MPS has no float64
    dtype = AUTOCAST[precision]
    with ieee_fp32(device), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        for x, y, fresh in windows:
            logits, state = model(x.to(device), None if fresh else state)  # None: the zero state
            y = y.to(device).reshape(-1)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y, ignore_index=IGNORE, reduction="sum")
            total += loss.item()
            count += int((y != IGNORE).sum())
    total, count = sum_all([total, count], d, device)
    count = int(count)
    model.train(was_training)
    return Score(total / count if count else float("nan"), count)


def _sampled_documents(ids: np.ndarray, sample: int | None) -> np.ndarray | None:
    """Which documents a sample of about `sample` characters scores: spread
    evenly through the text; None: all of them."""
    if not sample:
        return None
    starts, ends = documents.spans(ids, END_ID)
    k = min(len(starts), -(-sample * len(starts) // int((ends - starts).sum())))
    return None if k == len(starts) else documents.spread(len(starts), k)


@dataclass(frozen=True)
class Evaluation:
    checkpoint: Path  # the checkpoint file scored
    source: str  # what text it was scored on
    score: Score
    skipped: int = 0  # characters of the text left out, never seen by the model (--unknown skip)

    def to_dict(self) -> dict:
        return {**self.score.to_dict(), "skipped": self.skipped}


def evaluate_text(checkpoint: Checkpoint, model: CharRNN, text_file: Path | None = None, encoding: str = "utf-8",
                  streams: int = STREAMS, skip_unknown: bool = False) -> Evaluation:  # fmt: skip
    """Score a checkpoint's model (on the device to score on) on `text_file`,
    or on its run's own test split, read as `streams` parallel streams (1:
    the exact single-stream figure)."""
    if streams < 1:
        raise CharRNNError(f"--streams must be at least 1, not {streams}")
    text = eval_text(checkpoint, text_file, encoding, skip_unknown)
    on = model.head.weight.device
    # One stream is the exact figure: fp32. Several are an estimate already,
    # and read in bf16 where the CPU has it (faster; README: eval).
    # Documents are scored exactly at any --streams (each from its start): fp32 too.
    exact = stream_count(len(text.ids), streams, WARMUP) == 1 or bool(model.config.documents)
    precision = "fp32" if exact else resolve_precision("auto", on)
    result = score(model, text.ids, streams=streams, precision=precision)
    if result.chars == 0:
        raise CharRNNError(f"{text.source} is too short to score: it needs at least 2 characters")
    return Evaluation(checkpoint.path, text.source, result, text.skipped)


def next_char_log_probs(model: CharRNN, ids: torch.Tensor, chunk: int = 4096) -> np.ndarray:
    """log p(ids[i] | ids[:i]) for i >= 1, (len(ids) - 1,): one stream from a
    fresh state, in IEEE fp32, a chunk at a time with the state carried."""
    return next_char_scores(model, ids, chunk)[0]


@torch.inference_mode()
def next_char_scores(model: CharRNN, ids: torch.Tensor, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """next_char_log_probs, and beside it whether each next character was
    the model's most likely (len(ids) - 1,) bool. A model of documents reads
    each from the zero state, as training does."""
    logps, tops, state = [], [], model.init_state(1, ids.device)
    with ieee_fp32(ids.device):
        for start, stop, fresh in documents.chunks(ids, chunk, bool(model.config.documents)):
            x, y = ids[start:stop], ids[start + 1 : stop + 1]
            if len(y) == 0:
                break
            if fresh:
                state = model.init_state(1, ids.device)
            logits, state = model(x[None], state)  # (1, T, V)
            logp = torch.log_softmax(logits[0, : len(y)].float(), -1)
            logps.append(logp.gather(1, y[:, None])[:, 0].cpu().numpy())
            tops.append((logp.argmax(-1) == y).cpu().numpy())
    if not logps:
        return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=bool)
    return np.concatenate(logps), np.concatenate(tops)


@dataclass(frozen=True)
class EvalText:
    ids: np.ndarray  # in the model's vocab
    source: str  # what the text is, for the user: a path, or "the test split of PATH"
    skipped: int = 0  # characters left out: the model has never seen them (--unknown skip)


def eval_text(checkpoint: Checkpoint, text_file: Path | None = None, encoding: str = "utf-8",
              skip_unknown: bool = False) -> EvalText:  # fmt: skip
    """The text to score: `text_file`, or else the run's own test split,
    rebuilt from its corpus if that is still at hand and unchanged. A file
    holding characters the model has never seen is refused, naming them and
    how often each occurs, or with `skip_unknown` scored without them."""
    if text_file is not None:
        data = load_corpus(text_file, encoding, documents=checkpoint.config.documents)
        ids, skipped = checkpoint.vocab.translate(data.ids, data.vocab, str(text_file), skip_unknown,
                                                  "leaves them out and scores the rest")  # fmt: skip
        return EvalText(ids, str(text_file), skipped)
    splits, corpus_path = run_splits(checkpoint, "give a text file to score")
    if len(splits.test) < 2:
        raise CharRNNError("the run has no test split (--test-frac 0): give a text file to score")
    # A view of the corpus for a contiguous split; a blocks split's pieces, joined in memory.
    return EvalText(np.asarray(splits.test), f"the test split of {corpus_path}")


def run_splits(checkpoint: Checkpoint, instead: str) -> tuple[Splits, Path]:
    """The run's train, val and test splits, rebuilt from its corpus if that
    is still at hand and unchanged, and the corpus's path; else a refusal
    ending with what to do `instead`."""
    run = checkpoint.run
    if run is None:
        raise CharRNNError(f"this checkpoint records no corpus: {instead}")
    corpus_path = Path(run.corpus.path)
    if not corpus_path.exists():
        raise CharRNNError(f"the run's corpus {corpus_path} is not at hand: {instead}")
    documents_mode = checkpoint.config.documents
    data = load_corpus(corpus_path, run.corpus.encoding, documents=documents_mode)
    if data.info.sha256 != run.corpus.sha256:
        raise CharRNNError(f"{corpus_path} has changed since training: {instead}")
    config = run.train_config
    splits = split_text(data.ids, config["val_frac"], config["test_frac"], documents_mode,
                        config.get("split", "contiguous"), data.file_starts, config["seed"])  # fmt: skip
    return splits, corpus_path


LINE_BATCH_CHARS = 1 << 16  # characters scored at once when lines are batched: padded (B, T) <= this
LINE_BATCH_ROWS = 128  # lines at once at most: past this, wider batches ran slower (benchmarks/score_speed.py)


@torch.inference_mode()
def batched_log_probs(model: CharRNN, texts: list[np.ndarray], start: int, chunk: int = 4096) -> list[np.ndarray]:
    """next_char_log_probs of each text read after `start` (an id), many
    texts at once: sorted by length, batched as parallel streams padded at
    the end (a padded position is read after the text's last, so it changes
    nothing before it), each from a fresh state. Returns one array per text,
    in the order given, len(text) each."""
    device = model.head.weight.device
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out: list[np.ndarray] = [np.zeros(0, dtype=np.float32)] * len(texts)
    i = 0
    with ieee_fp32(device):
        while i < len(order):
            end = i + 1  # lines are sorted by length, so the batch's last is its longest
            while end < len(order) and end - i < LINE_BATCH_ROWS and (end + 1 - i) * len(texts[order[end]]) <= LINE_BATCH_CHARS:
                end += 1
            batch = order[i:end]
            longest = max(len(texts[batch[-1]]), 1)
            for j, logp in zip(batch, _batch_log_probs(model, [texts[j] for j in batch], start, longest, chunk)):
                out[j] = logp
            i = end
    return out


def _batch_log_probs(model: CharRNN, texts: list[np.ndarray], start: int, width: int, chunk: int) -> list[np.ndarray]:
    device = model.head.weight.device
    y = np.zeros((len(texts), width), dtype=np.int64)  # (B, T): each text, padded with id 0
    for row, ids in enumerate(texts):
        y[row, : len(ids)] = ids
    x = np.concatenate([np.full((len(texts), 1), start, dtype=np.int64), y[:, :-1]], 1)  # read start, then the text
    x_t, y_t = torch.as_tensor(x, device=device), torch.as_tensor(y, device=device)
    logp, state = np.empty((len(texts), width), dtype=np.float32), model.init_state(len(texts), device)
    for t in range(0, width, chunk):
        logits, state = model(x_t[:, t : t + chunk], state)  # (B, T, V)
        part = torch.log_softmax(logits.float(), -1).gather(2, y_t[:, t : t + chunk, None])[..., 0]
        logp[:, t : t + chunk] = part.cpu().numpy()
    return [logp[row, : len(ids)] for row, ids in enumerate(texts)]
