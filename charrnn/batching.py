"""Concurrent generations stepped as one batch, for a server.

A generation at batch 1 costs mostly the fixed price of each PyTorch call,
not arithmetic, so many clients stepped one by one share the processor and
each goes slower. The Batcher's one thread instead steps every generation
in flight together: per temperature, one FastStepper whose rows are the
generations, one step per character for all of them, and one batched draw.
A generation joins at its next step and leaves when it ends, stops or is
abandoned; the batch is rebuilt (a millisecond) only when its rows change.

Each row draws from its own generator, exactly as `charrnn sample` would at
batch 1, but a batched matrix product may round differently from a
single-row one, so a batched text can part from `charrnn sample`'s at a
near-tie. The server therefore batches only the generations that asked
for no particular text (no seed, temperature above 0), and runs the others
alone (serve.py).
"""

from __future__ import annotations

import queue
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field

import torch

from .corpus import Vocab
from .errors import CharRNNError
from .model import CharRNN
from .prime import prime_ids, read_prime
from .corpus.documents import DOC_END
from .sample import Draws, SampleConfig, StopString
from .stepper import FastStepper

_END = object()  # a row's queue: no more characters
HANDOFF_SECONDS = 0.01  # a row's characters go to its reader at most this often (or 32 at a time):
HANDOFF_CHARS = 32  # waking the reader's thread for each one would cost more than the step


@dataclass(eq=False)
class _Row:
    """One generation: how it draws, where it is, and where its characters go."""

    config: SampleConfig
    draws: Draws
    stops: StopString
    state: tuple[torch.Tensor, ...]  # (layers, 1, H) per part: kept here while the row is between batches
    logits: torch.Tensor  # (1, V), tempered: what the next character is drawn from
    left: int
    out: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)  # strings of characters, then _END
    abandoned: threading.Event = field(default_factory=threading.Event)
    ended: bool = False
    pending: list[str] = field(default_factory=list)
    handed: float = field(default_factory=time.monotonic)  # when characters last went to the reader

    @property
    def scale(self) -> float:
        return 1.0 / self.config.temperature

    @property
    def plain(self) -> bool:
        """Drawn from the whole tempered distribution: no top-k or top-p cut."""
        return self.config.top_k is None and self.config.top_p is None

    def emit(self, ch: str) -> None:
        if ch == DOC_END:  # a model of documents ends one at its end marker, which is not text
            self.end()
            return
        self.pending.append(self.stops.filter([ch])[0])
        self.left -= 1
        if self.left == 0 or self.stops.all_done:
            self.end()
        elif len(self.pending) >= HANDOFF_CHARS or time.monotonic() - self.handed >= HANDOFF_SECONDS:
            self._hand_over()

    def end(self, item: object = _END) -> None:
        if not self.ended:
            self.ended = True
            self._hand_over()
            self.out.put(item)

    def _hand_over(self) -> None:
        if self.pending:
            self.out.put(self.pending)
            self.pending = []
        self.handed = time.monotonic()


class Generation:
    """A batched generation's characters, as `Model.columns` yields them
    (one list of one character per step); close() abandons it."""

    def __init__(self, row: _Row):
        self._row = row
        self._chars: list[str] = []  # handed over, not yet yielded (reversed)

    def __iter__(self) -> Generation:
        return self

    def __next__(self) -> list[str]:
        if not self._chars:
            item = self._row.out.get()
            if item is _END:
                self._row.out.put(_END)  # a later call ends too
                raise StopIteration
            if isinstance(item, BaseException):
                raise item
            self._chars = item[::-1]
        return [self._chars.pop()]

    def close(self) -> None:
        self._row.abandoned.set()


class _Group:
    """The rows in flight at one temperature, and the stepper that holds them."""

    def __init__(self, model: CharRNN, scale: float, device: torch.device):
        self.model, self.scale, self.device = model, scale, device
        self.rows: list[_Row] = []
        self.stepper: FastStepper | None = None
        self.logits: torch.Tensor | None = None  # (B, V), row j's next draw

    def regroup(self, joining: list[_Row]) -> None:
        """Drop the rows that ended or were abandoned, add `joining`, and
        rebuild the stepper if the rows changed."""
        staying = [r for r in self.rows if not r.ended and not r.abandoned.is_set()]
        if len(staying) == len(self.rows) and not joining:
            return
        if self.stepper is not None:  # each staying row takes its state and logits out of the old batch
            state = self.stepper.state()
            for j, row in enumerate(self.rows):
                row.state = tuple(part[:, j : j + 1].clone() for part in state)
                row.logits = self.logits[j : j + 1].clone()
        self.rows = [r for r in self.rows if r in staying] + joining
        self.stepper = self.logits = None
        if self.rows:
            self.stepper = FastStepper(self.model, len(self.rows), self.device, logit_scale=self.scale)
            self.stepper.load_state(tuple(torch.cat(parts, 1) for parts in zip(*(r.state for r in self.rows))))
            self.logits = torch.cat([r.logits for r in self.rows])

    def step(self, vocab: Vocab) -> None:
        """Draw every row's next character, hand it over, and step them all."""
        nxt = _draw(self.rows, self.logits)
        for row, i in zip(self.rows, nxt.tolist()):
            row.emit(vocab.chars[i])
        self.logits = self.stepper.step(nxt)


def _draw(rows: list[_Row], logits: torch.Tensor) -> torch.Tensor:
    """Each row's next id, (B,), as its own Draws would pick it; the rows
    that sample the whole distribution in one add and one argmax."""
    if len(rows) == 1:
        return rows[0].draws(logits)
    plain = [j for j, r in enumerate(rows) if r.plain]
    if len(plain) == len(rows):
        return (logits + torch.cat([r.draws.next_noise() for r in rows])).argmax(-1)
    return torch.cat([row.draws(logits[j : j + 1]) for j, row in enumerate(rows)])


class Batcher:
    """One thread that steps every submitted generation together."""

    def __init__(self, model: CharRNN, vocab: Vocab):
        self.model, self.vocab = model.eval(), vocab
        self.device = model.head.weight.device
        self._joining: queue.SimpleQueue = queue.SimpleQueue()
        self._groups: dict[float, _Group] = {}
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="charrnn-batcher", daemon=True)
        self._thread.start()

    @property
    def in_flight(self) -> int:
        return sum(len(g.rows) for g in list(self._groups.values()))

    @torch.inference_mode()
    def submit(self, prime: str, config: SampleConfig) -> Generation:
        """Read the prime here, in the caller's thread (a long prime does not
        hold up the batch), then queue the generation to join the batch."""
        if config.temperature <= 0 or config.num_samples != 1 or config.beam is not None:
            raise ValueError("the batcher draws one sample at a temperature above 0")
        if self._closed.is_set():
            raise CharRNNError("the server is shutting down")
        logits, state = read_prime(self.model, prime_ids(self.vocab, prime, config.skip_unknown, self.device))
        row = _Row(config, Draws(config, 1, self.vocab.size, self.device), StopString(config.stop, 1),
                   state, logits * (1.0 / config.temperature), config.length)  # fmt: skip
        if row.left == 0:
            row.end()
        else:
            self._joining.put(row)
            if self._closed.is_set():  # closed while it was queued: the thread may have gone already
                row.end(CharRNNError("the server is shutting down"))
        return Generation(row)

    def close(self) -> None:
        """Stop the thread; the generations in flight, and any that were
        about to join, end with an error rather than wait for ever."""
        self._closed.set()
        self._joining.put(None)

    def _run(self) -> None:
        while True:
            joining = self._take(wait=not any(g.rows for g in self._groups.values()))
            if joining is None:
                self._end_all(CharRNNError("the server is shutting down"))
                return
            try:
                with torch.inference_mode():
                    self._step_all(joining)
            except Exception as e:  # a fault of ours: the generations in flight fail, the batcher goes on  # noqa: BLE001
                traceback.print_exc(file=sys.stderr)
                self._end_all(RuntimeError(f"the batched generation failed: {e}"), joining)

    def _end_all(self, error: Exception, joining: list[_Row] = ()) -> None:
        """End every generation in flight, or waiting to join, with `error`."""
        waiting = []
        while True:
            try:
                item = self._joining.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                waiting.append(item)
        for row in [r for g in self._groups.values() for r in g.rows] + list(joining) + waiting:
            row.end(error)
        self._groups.clear()

    def _take(self, wait: bool) -> list[_Row] | None:
        """The rows waiting to join (blocking for one when nothing is in flight); None: closed."""
        rows = []
        try:
            item = self._joining.get(block=wait)
            while True:
                if item is None:
                    for row in rows:  # they will not join now
                        row.end(CharRNNError("the server is shutting down"))
                    return None
                rows.append(item)
                item = self._joining.get_nowait()
        except queue.Empty:
            return rows

    def _step_all(self, joining: list[_Row]) -> None:
        by_scale: dict[float, list[_Row]] = {}
        for row in joining:
            by_scale.setdefault(row.scale, []).append(row)
        for scale in set(self._groups) | set(by_scale):
            group = self._groups.setdefault(scale, _Group(self.model, scale, self.device))
            group.regroup(by_scale.get(scale, []))
            if group.rows:
                group.step(self.vocab)
            else:
                del self._groups[scale]
