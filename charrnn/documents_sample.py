"""Sampling whole documents from a model of documents: each sample starts
at the end marker and ends at the next one it draws, and, asked for novel
ones, those the corpus already holds are drawn again."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

from .checkpoint import Checkpoint
from .corpus import load_corpus
from .corpus.documents import DOC_END
from .errors import CharRNNError
from .model import CharRNN
from .sample import SampleConfig, generate

MAX_ROUNDS = 20  # draws of the missing documents before giving up on novelty


@dataclass(frozen=True)
class DocumentSamples:
    texts: list[str]  # each document, its prime included
    dropped: int = 0  # drawn, but the corpus holds them (novel only)
    unfinished: int = 0  # reached the length limit before their end marker


def sample_documents(net: CharRNN, checkpoint: Checkpoint, prime: str, config: SampleConfig,
                     novel: bool = False) -> DocumentSamples:  # fmt: skip
    """config.num_samples documents, each `prime` and what follows it up to
    the end marker (at most config.length characters). With `novel`, a
    document the run's corpus holds is dropped and another drawn in its
    place, for up to MAX_ROUNDS rounds; sample i of the first round is
    `charrnn sample`'s sample i with the same seed."""
    seen = corpus_documents(checkpoint) if novel else set()
    kept: list[str] = []
    dropped = unfinished = 0
    for r in range(MAX_ROUNDS if novel else 1):
        need = config.num_samples - len(kept)
        if need == 0:
            break
        texts = _draw(net, checkpoint, prime, replace(config, num_samples=need, seed=_round_seed(config.seed, r)))
        for text in texts:
            unfinished += len(text) == config.length
            if prime + text in seen:
                dropped += 1
            else:
                kept.append(prime + text)
    return DocumentSamples(kept, dropped, unfinished)


def _draw(net: CharRNN, checkpoint: Checkpoint, prime: str, config: SampleConfig) -> list[str]:
    texts = [[] for _ in range(config.num_samples)]
    for chars in generate(net, checkpoint.vocab, prime, config):
        for j, ch in enumerate(chars):
            texts[j].append(ch)
    return ["".join(t) for t in texts]


def _round_seed(seed: int | None, r: int) -> int | None:
    if seed is None or r == 0:
        return seed
    return int.from_bytes(hashlib.sha256(f"{seed}:round {r}".encode()).digest()[:8], "little") >> 1


def corpus_documents(checkpoint: Checkpoint) -> set[str]:
    """Every document of the run's corpus, as text; refused in one line
    where the model is not one of documents or the corpus is not at hand."""
    mode, run = checkpoint.config.documents, checkpoint.run
    if not mode:
        raise CharRNNError("--novel keeps documents the corpus does not hold: the model must be trained with --documents")
    if run is None or not Path(run.corpus.path).exists():
        where = f" ({run.corpus.path} is not at hand)" if run is not None else ""
        raise CharRNNError(f"--novel needs the run's corpus to know what it holds{where}")
    data = load_corpus(run.corpus.path, run.corpus.encoding, documents=mode)
    if data.info.sha256 != run.corpus.sha256:
        raise CharRNNError(f"--novel needs the run's corpus as trained on, and {run.corpus.path} has changed since")
    return set(data.vocab.decode(data.ids).split(DOC_END)) - {""}
