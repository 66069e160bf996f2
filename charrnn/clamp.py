"""Holding a unit at a value while the model runs: a correlation says a
unit tracks something; holding it says what it does.

A unit is named as inspect names it, `l{layer}.{part}:{index}`, where the
part is one of the cell kind's state parts (`h`; an LSTM's `c` too). A
Clamp sets it to its value after every step of its layer, before the layer
above, the head or the next step reads it, so the model runs as if the
unit had that value all along. Gates are computed afresh from the state at
each step, so holding one would not be held: only state parts can be.

`charrnn sample --clamp l1.c:42=1.0` samples with clamps (FastStepper
applies them), and `charrnn inspect --ablate` runs the text with units held
at 0 or at their mean (inspection/ablation.py).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from .errors import CharRNNError
from .model import ModelConfig

_UNIT = re.compile(r"l(\d+)\.([a-z_]+):(\d+)")


@dataclass(frozen=True)
class Unit:
    """One unit of one state part of one layer."""

    layer: int
    part: str  # a state part's name: "h", or e.g. "c" for an LSTM
    index: int

    @property
    def name(self) -> str:
        return f"l{self.layer}.{self.part}:{self.index}"


@dataclass(frozen=True)
class Clamp:
    """Hold `unit` at `value` (on batch row `row` only; None: every row)."""

    unit: Unit
    value: float
    row: int | None = None

    @property
    def name(self) -> str:
        return f"{self.unit.name}={self.value:g}"


def parse_unit(spec: str, config: ModelConfig, flag: str) -> Unit:
    """'l1.c:42' -> Unit, checked against the model, or a one-line refusal."""
    match = _UNIT.fullmatch(spec.strip())
    if not match:
        raise CharRNNError(f"{flag} takes a unit as l<layer>.<part>:<index> (e.g. l1.h:42), not {spec!r}")
    layer, part, index = int(match.group(1)), match.group(2), int(match.group(3))
    states, gates = config.cell.state_names, config.cell.gate_names
    if layer >= config.layers:
        raise CharRNNError(f"{flag} {spec}: the model has layers 0 to {config.layers - 1}")
    if part in gates:
        raise CharRNNError(f"{flag} {spec}: {part} is a gate, computed afresh each step; hold a state part"
                           f" ({', '.join(states)})")  # fmt: skip
    if part not in states:
        raise CharRNNError(f"{flag} {spec}: a {config.kind} layer's state parts are {', '.join(states)}")
    if index >= config.hidden:
        raise CharRNNError(f"{flag} {spec}: the units are 0 to {config.hidden - 1}")
    return Unit(layer, part, index)


def parse_clamps(specs: Iterable[str], config: ModelConfig) -> tuple[Clamp, ...]:
    """['l1.c:42=1.0', ...] -> Clamps, each checked, or a one-line refusal."""
    clamps = []
    for spec in specs:
        unit_spec, eq, value = spec.partition("=")
        if not eq:
            raise CharRNNError(f"--clamp takes UNIT=VALUE (e.g. l1.h:42=1.0), not {spec!r}")
        unit = parse_unit(unit_spec, config, "--clamp")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise CharRNNError(f"--clamp {spec}: the value must be a finite number")
        clamps.append(Clamp(unit, number))
    if len({c.unit for c in clamps}) < len(clamps):
        raise CharRNNError("--clamp names a unit twice")
    return tuple(clamps)


class Holds:
    """Clamps laid out for a stepper of `batch` rows: per layer, per state
    part, the (row, unit) places and their values, written in one indexed
    store after the layer's step, however many clamps there are."""

    def __init__(self, clamps: Sequence[Clamp], batch: int, parts: tuple[str, ...], device: torch.device):
        places: dict[tuple[int, int], list[tuple[int, int, float]]] = {}
        for c in clamps:
            rows = range(batch) if c.row is None else [c.row]
            for row in rows:
                places.setdefault((c.unit.layer, parts.index(c.unit.part)), []).append((row, c.unit.index, c.value))
        self.by_layer: dict[int, list[tuple[int, tuple[torch.Tensor, torch.Tensor], torch.Tensor]]] = {}
        for (layer, part), where in places.items():
            rows_t = torch.tensor([w[0] for w in where], device=device)
            cols_t = torch.tensor([w[1] for w in where], device=device)
            values = torch.tensor([w[2] for w in where], device=device, dtype=torch.float32)
            self.by_layer.setdefault(layer, []).append((part, (rows_t, cols_t), values))

    def apply(self, layer: int, state: tuple[torch.Tensor, ...]) -> None:
        """Write the clamps of `layer` into its live state ((B, H) per part, in place)."""
        for part, index, values in self.by_layer.get(layer, ()):
            state[part].index_put_(index, values)
