"""The library's front: load a model and use it, or train one.

    import charrnn
    m = charrnn.load("checkpoints/shakespeare-gru")     # a checkpoint, or a run directory's best
    m.sample(prime="ROMEO:", length=200, temperature=0.8, seed=1)
    for ch in m.stream(prime="ROMEO:", temperature=0.8): ...
    m.score("To be, or not to be").bits_per_char
    s = m.feed("ROMEO:"); m.next_probs(s)["\\n"]
    m.record("some text").tensors["l0.h"]
    run = charrnn.train("my.txt", time_limit="2m")     # training/launch.py's train_with

The commands are callers of this: `charrnn sample` streams `Model.columns`,
`charrnn eval` prints `Model.evaluate`, `charrnn inspect` records with
`Model.inspect`. Nothing here prints, exits or changes a process-wide
setting (on CUDA, IEEE fp32 is held for the calls that need it, counted so
that calls from several threads put it back only when the last one ends).
Every refusal is a CharRNNError with the CLI's one-line message. A loaded
model can serve several threads at once: each call keeps its own state.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from . import rundir
from .beam import beam_columns, beam_search
from .checkpoint import Checkpoint, load_checkpoint
from .clamp import parse_clamps
from .compare import MAX_N, Comparison, compare
from .corpus import Vocab
from .corpus.documents import DOC_END
from .documents_sample import DocumentSamples, sample_documents
from .device import resolve_device
from .errors import CharRNNError
from .evaluate import STREAMS, Evaluation, batched_log_probs, evaluate_text, next_char_log_probs
from .inspection.record import Recording, as_model_reads, record, select_layers, select_units
from .inspection.session import Inspection, Selection, inspect_model
from .inspection.source import TextSource
from .model import ModelConfig
from .prime import known_prime, prime_ids, read_prime
from .sample import SampleConfig, generate

UNKNOWN = ("error", "skip")  # what a text's characters that the model has never seen get


@dataclass(frozen=True)
class TextScore:
    """How likely the model finds a text: each character's log-probability
    given the characters before it (the first given the start of a line)."""

    text: str  # the text scored: with unknown="skip", without the characters the model has never seen
    log_probs: np.ndarray  # (len(text),) natural log-probabilities, one per character
    skipped: int = 0  # characters left out (unknown="skip")

    @property
    def chars(self) -> int:
        return len(self.log_probs)

    @property
    def total_nats(self) -> float:
        return -float(self.log_probs.sum(dtype=np.float64))

    @property
    def mean_nats(self) -> float:
        return self.total_nats / self.chars if self.chars else math.nan

    @property
    def bits_per_char(self) -> float:
        return self.mean_nats / math.log(2)

    def to_dict(self) -> dict:
        return {"chars": self.chars, "total_nats": self.total_nats, "mean_nats": self.mean_nats,
                "bits_per_char": self.bits_per_char, "skipped": self.skipped}  # fmt: skip


@dataclass(frozen=True)
class State:
    """Where the model is after reading some text (Model.feed): hold it,
    feed it more, or ask for the next character's distribution. Never
    changed in place, so one state can be continued in several ways."""

    tensors: tuple[torch.Tensor, ...]  # the cell's state, (layers, 1, H) each
    logits: torch.Tensor  # (V,) the next character's logits
    text: str = ""  # what has been read, from the start of a line


class Model:
    """A trained model, ready to sample, score, feed and record. Make one
    with `charrnn.load`."""

    def __init__(self, checkpoint: Checkpoint, device: torch.device):
        self.checkpoint = checkpoint
        self.device = device
        self.net = checkpoint.model.to(device).eval()

    @property
    def path(self) -> Path | None:
        """The checkpoint file it was read from."""
        return self.checkpoint.path

    @property
    def config(self) -> ModelConfig:
        """The architecture: kind, layers, hidden size, embedding, vocabulary size."""
        return self.checkpoint.config

    @property
    def vocab(self) -> Vocab:
        return self.checkpoint.vocab

    @property
    def chars(self) -> str:
        """Every character the model knows, in id order."""
        return "".join(self.vocab.chars)

    # -- generation ----------------------------------------------------------

    def sample(self, prime: str = "", length: int = 500, **controls) -> str:
        """One sample: the `length` characters that follow `prime` (the prime
        itself not included). Controls, as `charrnn sample`'s options:
        temperature (0: argmax), top_k, top_p, seed, stop, beam,
        length_penalty, clamp (units held at a value, e.g. ["l1.h:42=1.0"]), unknown ("error" or "skip" the prime's characters the
        model has never seen)."""
        return self.samples(1, prime, length, **controls)[0]

    def samples(self, n: int, prime: str = "", length: int = 500, **controls) -> list[str]:
        """`n` samples drawn together in one batch (with beam: the n best
        beams); sample i is the same as with any other n."""
        config = sample_config(length=length, num_samples=n, **controls)
        texts = [[] for _ in range(n)]
        for chars in self.columns(prime, config):
            for j, ch in enumerate(chars):
                texts[j].append(ch)
        return ["".join(t) for t in texts]

    def stream(self, prime: str = "", length: int = 500, **controls) -> Iterator[str]:
        """One sample, a character at a time as it is generated (a beam
        search's, once it is found)."""
        for chars in self.columns(prime, sample_config(length=length, **controls)):
            if chars[0]:
                yield chars[0]

    def columns(self, prime: str, config: SampleConfig) -> Iterator[list[str]]:
        """Per generated position, one character of each of the samples
        (config.num_samples of them; "" for one that has stopped). The prime
        is checked before this returns, not once generation has begun."""
        known_prime(self.vocab, prime, config.skip_unknown)
        parse_clamps(config.clamp, self.config)
        if config.beam is not None:
            if self.config.documents:  # a beam ends at a document's end (beam.py), which is not text
                return _unmarked(beam_columns(self.net, self.vocab, prime, config))
            return beam_columns(self.net, self.vocab, prime, config)
        return generate(self.net, self.vocab, prime, config)

    def documents(self, n: int = 1, prime: str = "", length: int = 500, novel: bool = False,
                  **controls) -> DocumentSamples:  # fmt: skip
        """For a model trained with documents: n whole documents, each
        `prime` and what follows up to its end marker (at most `length`
        characters); `novel` drops those the run's corpus holds and draws
        others. Controls as `sample`'s (not beam)."""
        if not self.config.documents:
            raise CharRNNError("this model reads one stream of text, not documents: use sample or samples")
        config = sample_config(length=length, num_samples=n, **controls)
        if config.beam is not None:
            raise CharRNNError("documents are drawn: beam search is beams'")
        known_prime(self.vocab, prime, config.skip_unknown)
        parse_clamps(config.clamp, self.config)
        return sample_documents(self.net, self.checkpoint, prime, config, novel)

    def beams(self, prime: str = "", length: int = 500, **controls) -> list[tuple[str, float]]:
        """Beam search's best continuations with their total log-probabilities."""
        config = sample_config(length=length, **controls)
        if config.beam is None:
            raise CharRNNError("beams needs beam=N")
        known_prime(self.vocab, prime, config.skip_unknown)
        return [(h.text.replace(DOC_END, ""), h.logprob) for h in beam_search(self.net, self.vocab, prime, config)]

    # -- scoring and stepping ------------------------------------------------

    def score(self, text: str, unknown: str = "error") -> TextScore:
        """Each character's log-probability given those before it, the first
        given the start of a line: the exact single-stream figure."""
        ids, skipped = self._known(text, unknown, "scores the rest")
        start = prime_ids(self.vocab, "", False, self.device)  # a newline: as if a line began
        logp = next_char_log_probs(self.net, torch.cat([start, torch.as_tensor(ids, device=self.device)]))
        return TextScore(self.vocab.decode(ids) if skipped else text, logp, skipped)

    def score_lines(self, lines: list[str], unknown: str = "error") -> list[TextScore]:
        """`score` of each line with its end: each read from the start of a
        line and scored through its newline (the line's end is part of what
        the model predicts), many lines at once as parallel streams. The
        scores equal `score(line + "\\n")` within float rounding. A model of
        documents reads each line as a document: from the end marker,
        through the next."""
        self._known("".join(lines), unknown, "scores the rest", "the lines")  # refused at once, naming every one
        end = DOC_END if self.config.documents else "\n"
        encoded = [self._known(line + end, "skip", "") for line in lines]
        start = int(prime_ids(self.vocab, "", False, torch.device("cpu"))[0])
        logps = batched_log_probs(self.net, [ids for ids, _ in encoded], start)
        return [TextScore(self.vocab.decode(ids) if skipped else line + end, logp, skipped)
                for line, (ids, skipped), logp in zip(lines, encoded, logps)]  # fmt: skip

    def evaluate(self, text_file: Path | None = None, encoding: str = "utf-8", streams: int = STREAMS,
                 unknown: str = "error") -> Evaluation:  # fmt: skip
        """`charrnn eval`: the loss on a text file, or on the run's own test
        split; `streams` parallel streams (1: exact)."""
        return evaluate_text(self.checkpoint, self.net, text_file, encoding, streams, _skip(unknown))

    def compare(self, text_file: Path | None = None, max_n: int = MAX_N, max_chars: int | None = None,
                unknown: str = "error") -> Comparison:  # fmt: skip
        """`charrnn compare`: the model beside n-gram models (n = 1..max_n) of
        its run's train split, on a text file or the run's test split, with
        the breakdown of its errors and its loss on long-range closers."""
        return compare(self.checkpoint, self.net, Path(text_file) if text_file else None, max_n, max_chars,
                       _skip(unknown))  # fmt: skip

    @torch.inference_mode()
    def feed(self, text: str, state: State | None = None, unknown: str = "error") -> State:
        """The state after reading `text`, from `state` (None: the start of a line)."""
        ids, _ = self._known(text, unknown, "reads the rest")
        if state is None:
            ids = np.concatenate([prime_ids(self.vocab, "", False, torch.device("cpu")).numpy(), ids])
        if len(ids) == 0:
            return state
        logits, tensors = read_prime(self.net, torch.as_tensor(ids.astype(np.int64), device=self.device),
                                     state=None if state is None else state.tensors)  # fmt: skip
        read = self.vocab.decode(ids[1:] if state is None else ids)
        return State(tensors, logits[0], (state.text if state else "") + read)

    @torch.inference_mode()
    def next_probs(self, state: State | None = None) -> dict[str, float]:
        """The next character's distribution after `state` (None: at the start of a line)."""
        state = state if state is not None else self.feed("")
        probs = torch.softmax(state.logits.float(), -1).cpu().numpy()
        return dict(zip(self.vocab.chars, probs.tolist()))

    # -- recording -----------------------------------------------------------

    def record(self, text: str, layers: str | None = None, units: str | None = None,
               dtype: str = "fp32") -> Recording:  # fmt: skip
        """Every selected unit's activations and gates on every character of
        `text`, in memory (layers like "0,1", units like "0-63,100"; None: all)."""
        # characters it has never seen: refused in one line before recording
        self._known(as_model_reads(text, self.config.documents), "error", "")
        selection = Selection(layers, units, dtype)
        return record(self.net, self.vocab, text, select_layers(layers, self.config.layers),
                      select_units(units, self.config.hidden), selection.storage())  # fmt: skip

    def inspect(self, source: TextSource, selection: Selection = Selection()) -> AbstractContextManager[Inspection]:
        """`charrnn inspect`'s recording of its source text; a large one lives
        in a temporary directory until the block ends."""
        return inspect_model(self.checkpoint, self.net, source, selection)

    def _known(self, text: str, unknown: str, rest: str, where: str = "the text") -> tuple[np.ndarray, int]:
        return self.vocab.encode_known(text, where, _skip(unknown), f"leaves them out and {rest}")


def load(path: str | Path | None = None, device: str = "auto") -> Model:
    """A model from a checkpoint file, a run directory (its best), or None
    (the newest run under checkpoints/), on `device` (auto, cpu, cuda, mps)."""
    checkpoint = load_checkpoint(Path(path) if path is not None else rundir.newest_run())
    return Model(checkpoint, resolve_device(device))


def _unmarked(columns: Iterator[list[str]]) -> Iterator[list[str]]:
    for chars in columns:
        yield [ch.replace(DOC_END, "") for ch in chars]


def sample_config(**controls) -> SampleConfig:
    """A SampleConfig from `charrnn sample`'s option names; unknown="skip"
    drops a prime's characters the model has never seen."""
    skip = _skip(controls.pop("unknown", "error"))
    clamp = controls.get("clamp") or ()
    clamp = (clamp,) if isinstance(clamp, str) else clamp  # one unit may come alone
    if not isinstance(clamp, (list, tuple)) or not all(isinstance(c, str) for c in clamp):
        raise CharRNNError(f"clamp takes strings like 'l1.h:42=1.0', not {clamp!r}")
    clamp = tuple(clamp)
    if "clamp" in controls:
        controls["clamp"] = clamp
    known = {f.name for f in fields(SampleConfig)} - {"skip_unknown"}
    if wrong := sorted(set(controls) - known):
        raise CharRNNError(f"unknown sampling control {wrong[0]!r}: choose from {', '.join(sorted(known))}")
    return SampleConfig(**controls, skip_unknown=skip)


def _skip(unknown: str) -> bool:
    if unknown not in UNKNOWN:
        raise CharRNNError(f"unknown must be one of {', '.join(UNKNOWN)}, not {unknown!r}")
    return unknown == "skip"
