"""What every cell kind declares, and the defaults a new kind inherits.

A cell kind is one object (a `Cell`) that says everything the rest of
charrnn needs to know about it: the names of its state parts and gates,
the multi-layer module it trains with, its one step function, how
the fast sampler packs it, what range each traced tensor lives in, and its
default learning rate. Nothing outside `charrnn/cells/` branches on kind.

Every kind keeps PyTorch's `nn.RNNBase` weight layout, so a layer's input
and recurrent contributions are `gi = W_ih x + b_ih` and `gh = W_hh h + b_hh`
(each (..., blocks*H)), and its step is a function of gi, gh and the
layer's previous state. A kind whose gates read the input alone (minGRU,
minLSTM: `recurrent = False`) has no W_hh and b_hh, and gets gh = None;
if it also writes `scan`, it trains over a whole window at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import nn

from ..errors import CharRNNError
from .packing import PackedLayer, Slot, StepLayer
from .stepped import SteppedRNN
from .types import LayerState, Range, Recipe, SizeRow, State


class Cell:
    """One kind of recurrent cell. A subclass sets the class attributes and
    writes `step`; the rest has defaults that work for any kind (the
    built-in kinds override `record` and `pack` for speed)."""

    name: ClassVar[str]  # --model's value, and the checkpoint's "kind"
    summary: ClassVar[str] = ""  # --model's help names the kind so, if not by its name
    state_names: ClassVar[tuple[str, ...]] = ("h",)  # h first: the layer's output
    gate_names: ClassVar[tuple[str, ...]] = ()
    ranges: ClassVar[Mapping[str, Range]]  # every state part and gate
    default_lr: ClassVar[float]  # peak learning rate when --lr is not given
    blocks: ClassVar[int] = 1  # rows of W_ih and W_hh per hidden unit (gate blocks)
    # --size auto's rule for this kind, measured by benchmarks/size_rule.py:
    # the first row whose `below` exceeds the corpus's characters applies,
    # and a corpus past every row gets the fixed default. () : not measured,
    # always the fixed default.
    size_rule: ClassVar[tuple[SizeRow, ...]] = ()
    # --size auto's recipes for short time budgets (training/recipes.py),
    # measured by benchmarks/quality.py; () : none.
    recipes: ClassVar[tuple[Recipe, ...]] = ()
    # The nn.RNNBase class training runs, which takes a whole window through
    # every layer in one call (PyTorch's kernels: cuDNN, oneDNN; or
    # FastGRU); None: cells/stepped.py's SteppedRNN, which runs the kind's
    # `scan` over each window if it has one (`scans`), else steps `step` in
    # a loop (exact, slow).
    sequence_module: ClassVar[type[nn.RNNBase] | None] = None
    # Whether the gates read h(t-1) through W_hh. False: the layer has no
    # weight_hh/bias_hh, and `step` and `record` get gh = None.
    recurrent: ClassVar[bool] = True
    # Whether the kind writes `scan` (only a kind that is not `recurrent` can).
    scans: ClassVar[bool] = False
    # `step` in JavaScript, for the exported web page (charrnn/web): a
    # function (gi, gh, prev, H) -> the new state parts, each a
    # Float64Array(H), h first; gi and gh hold the G*H pre-activations of
    # one character, prev the state parts. `sig` is in scope. None: the
    # kind cannot be exported to a page.
    web_step: ClassVar[str | None] = None

    def __init_subclass__(cls, **kw) -> None:
        super().__init_subclass__(**kw)
        if getattr(cls, "state_names", ("h",))[0] != "h":
            raise TypeError(f"{cls.__name__}: the first state part must be h, the layer's output")

    @property
    def traced(self) -> tuple[str, ...]:
        """Per layer, the tensors a step traces and inspect records, in order."""
        return self.state_names + self.gate_names

    # -- the multi-layer module --------------------------------------------

    def build(self, input_size: int, hidden: int, layers: int, dropout: float) -> nn.Module:
        """The multi-layer module training runs, with nn.RNNBase's parameter
        names and calling convention: batch-first (B, T, in) and the state
        (in `to_module_state` form) -> (B, T, H) and the new state."""
        dropout = dropout if layers > 1 else 0.0  # PyTorch warns about dropout after a last layer
        if self.sequence_module is None:
            return SteppedRNN(self, input_size, hidden, layers, dropout)
        return self.sequence_module(input_size, hidden, num_layers=layers, dropout=dropout, batch_first=True)

    def init_parameters(self, rnn: nn.Module, layers: int, hidden: int) -> None:
        """Adjust the built module's fresh parameters (default: keep PyTorch's)."""

    def slower_here(self, device: torch.device) -> str | None:
        """Why this kind trains more slowly on `device` than it can (an
        optional build missing or stale), in one line with the cure; None
        where it runs at full speed. Its recipes apply only then."""
        return None

    def check_device(self, device: torch.device, layers: int, dropout: float) -> None:
        """Refuse, in one line (CharRNNError), a model this kind cannot train
        correctly on `device` (default: none)."""

    def to_module_state(self, state: State):
        """charrnn's state tuple -> what the built module takes."""
        return state[0] if len(state) == 1 else state

    def from_module_state(self, state) -> State:
        """What the built module returns -> charrnn's state tuple."""
        return tuple(state) if isinstance(state, tuple) else (state,)

    # -- the step: the gate maths, written once ----------------------------

    def step(self, gi: torch.Tensor, gh: torch.Tensor | None, prev: LayerState) -> tuple[LayerState, dict[str, torch.Tensor]]:
        """One step of one layer: gi, gh (B, blocks*H) and the previous state
        -> (the new state, {gate name: (B, H)}). Works on any leading shape.
        gh is None for a kind that is not `recurrent`."""
        raise NotImplementedError

    def scan(self, gi: torch.Tensor, prev: LayerState) -> tuple[torch.Tensor, LayerState]:
        """A whole window of one layer at once (kinds with `scans`): gi
        (B, T, blocks*H) and the state before it ((B, H) each) -> h (B, T, H)
        and the state after it. Equal to `step` over the window."""
        raise NotImplementedError

    def record(self, gi: torch.Tensor, gh: torch.Tensor | None, h: torch.Tensor, prev: LayerState) -> dict[str, torch.Tensor]:
        """Every traced tensor but h for a chunk of T characters, given the
        built module's h (T, H) for the chunk and gi, gh (T, blocks*H) made
        from it (gh from h(t-1); None for a kind that is not `recurrent`); prev is the state before the chunk, (H,)
        each. This default steps once per character; built-in kinds compute
        their gates for the whole chunk at once."""
        parts: dict[str, list[torch.Tensor]] = {name: [] for name in self.traced[1:]}
        state = tuple(p[None] for p in prev)
        for t in range(len(gi)):
            new, gates = self.step(gi[t : t + 1], None if gh is None else gh[t : t + 1], state)
            state = (h[t : t + 1], *new[1:])  # carry the built module's h, as training computes it
            for name, value in zip(self.state_names[1:], new[1:]):
                parts[name].append(value)
            for name, value in gates.items():
                parts[name].append(value)
        return {name: torch.cat(values) for name, values in parts.items()}

    def pack(self, slot: Slot) -> PackedLayer:
        """This kind's layer for the fast sampler (see cells/packing.py):
        an object with load(prev: LayerState) and step(ids). The default
        runs `step` with the slot's weights: exact, if not the fastest."""
        return StepLayer(self, slot)

    def __repr__(self) -> str:
        return f"<cell {self.name}>"


def check_kind(cell: Cell) -> None:
    """Refuse a cell whose declarations are missing or do not fit together."""
    undeclared = [a for a in ("name", "ranges", "default_lr") if not hasattr(cell, a)]
    if undeclared:
        raise CharRNNError(f"cell {type(cell).__name__} does not declare {', '.join(undeclared)}")
    if cell.blocks < 1 or not cell.default_lr > 0:
        raise CharRNNError(f"cell {cell.name!r}: blocks must be >= 1 and default_lr > 0")
    missing = [n for n in cell.traced if n not in cell.ranges]
    if missing:
        raise CharRNNError(f"cell {cell.name!r} gives no range for {', '.join(missing)}")
    if cell.scans and cell.recurrent:
        raise CharRNNError(f"cell {cell.name!r}: only a kind that is not recurrent can scan")
    if cell.sequence_module is not None and not cell.recurrent:
        raise CharRNNError(f"cell {cell.name!r}: a sequence module (nn.RNNBase) has W_hh, so its kind must be recurrent")
    if len(set(cell.traced)) != len(cell.traced):
        raise CharRNNError(f"cell {cell.name!r} uses a name twice among {cell.traced}")
