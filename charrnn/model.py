"""CharRNN: embedding -> RNN / GRU / LSTM layers -> dropout -> linear head.

Training runs PyTorch's fused multi-layer kernels (`nn.RNN`, `nn.GRU`,
`nn.LSTM`). `step` computes one character at a time from the same weights,
by hand, so that every layer's state and gates can be seen; tests hold the
two paths equal.

State is always a tuple of (layers, B, H) tensors: `(h,)` for RNN and GRU,
`(h, c)` for LSTM. Code outside this module treats it as opaque and uses
`init_state` / `detach_state`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum

import torch
import torch.nn.functional as F
from torch import nn

from .errors import CharRNNError

State = tuple[torch.Tensor, ...]


class CellKind(str, Enum):
    rnn = "rnn"  # Elman, tanh
    gru = "gru"
    lstm = "lstm"


# The gates each cell exposes, in PyTorch's packing order of weight_ih rows.
GATES = {CellKind.rnn: (), CellKind.gru: ("r", "z", "n"), CellKind.lstm: ("i", "f", "g", "o")}


@dataclass(frozen=True)
class ModelConfig:
    kind: CellKind
    vocab_size: int
    embedding: int = 64
    hidden: int = 384  # tuned for quality per minute on a 2-core CPU (benchmarks/quality.py)
    layers: int = 2
    dropout: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", CellKind(self.kind))
        for name in ("vocab_size", "embedding", "hidden", "layers"):
            if getattr(self, name) < 1:
                raise CharRNNError(f"model {name} must be at least 1, not {getattr(self, name)}")
        if not 0 <= self.dropout < 1:
            raise CharRNNError(f"dropout must be in [0, 1), not {self.dropout}")

    def to_dict(self) -> dict:
        return {**asdict(self), "kind": self.kind.value}

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        return cls(**d)


class CharRNN(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        c = config
        self.embed = nn.Embedding(c.vocab_size, c.embedding)
        rnn_cls = {CellKind.rnn: nn.RNN, CellKind.gru: nn.GRU, CellKind.lstm: nn.LSTM}[c.kind]
        extra = {"nonlinearity": "tanh"} if c.kind is CellKind.rnn else {}
        self.rnn = rnn_cls(
            c.embedding,
            c.hidden,
            num_layers=c.layers,
            dropout=c.dropout if c.layers > 1 else 0.0,
            batch_first=True,
            **extra,
        )
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(c.hidden, c.vocab_size)
        if c.kind is CellKind.lstm:
            self._forget_bias_one()

    def _forget_bias_one(self) -> None:
        # PyTorch adds two biases; their sum is the forget gate's bias.
        # Starting it at 1 keeps early cell states from being wiped each step.
        h = self.config.hidden
        with torch.no_grad():
            for k in range(self.config.layers):
                getattr(self.rnn, f"bias_ih_l{k}")[h : 2 * h].fill_(1.0)
                getattr(self.rnn, f"bias_hh_l{k}")[h : 2 * h].fill_(0.0)

    # -- state ---------------------------------------------------------------

    def init_state(self, batch: int, device: torch.device | str | None = None) -> State:
        c = self.config
        device = device if device is not None else self.head.weight.device
        n = 2 if c.kind is CellKind.lstm else 1
        return tuple(torch.zeros(c.layers, batch, c.hidden, device=device) for _ in range(n))

    @staticmethod
    def detach_state(state: State) -> State:
        return tuple(s.detach() for s in state)

    # -- fused path ----------------------------------------------------------

    def forward(self, ids: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """ids (B, T) -> logits (B, T, V), new state."""
        if state is None:
            state = self.init_state(ids.shape[0], ids.device)
        x = self.embed(ids)  # (B, T, E)
        rnn_state = state if self.config.kind is CellKind.lstm else state[0]
        out, new = self.rnn(x, rnn_state)  # out (B, T, H)
        new_state = tuple(new) if self.config.kind is CellKind.lstm else (new,)
        return self.head(self.drop(out)), new_state

    # -- step path -----------------------------------------------------------

    def layer_weights(self, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        r = self.rnn
        return (
            getattr(r, f"weight_ih_l{k}"),
            getattr(r, f"weight_hh_l{k}"),
            getattr(r, f"bias_ih_l{k}"),
            getattr(r, f"bias_hh_l{k}"),
        )

    def step(self, ids: torch.Tensor, state: State, trace: dict | None = None) -> tuple[torch.Tensor, State]:
        """One character per stream: ids (B,) -> logits (B, V), new state.

        Computed cell by cell from the fused layers' weights (eval semantics:
        no dropout). If `trace` is a dict it receives every layer's tensors,
        each (B, H), under stable names: `l{k}.h`, and `l{k}.c` for LSTM, plus
        the gates `l{k}.i/f/g/o` (LSTM) or `l{k}.r/z/n` (GRU).
        """
        kind = self.config.kind
        x = self.embed(ids)  # (B, E)
        hs, cs = [], []
        for k in range(self.config.layers):
            w_ih, w_hh, b_ih, b_hh = self.layer_weights(k)
            h = state[0][k]
            gi = F.linear(x, w_ih, b_ih)  # (B, G*H)
            gh = F.linear(h, w_hh, b_hh)
            if kind is CellKind.lstm:
                i, f, g, o = (gi + gh).chunk(4, dim=1)
                i, f, g, o = i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()
                c = f * state[1][k] + i * g
                h = o * c.tanh()
                cs.append(c)
                gates = {"c": c, "i": i, "f": f, "g": g, "o": o}
            elif kind is CellKind.gru:
                ir, iz, in_ = gi.chunk(3, dim=1)
                hr, hz, hn = gh.chunk(3, dim=1)
                r = (ir + hr).sigmoid()
                z = (iz + hz).sigmoid()
                n = (in_ + r * hn).tanh()
                h = (1 - z) * n + z * h
                gates = {"r": r, "z": z, "n": n}
            else:
                h = (gi + gh).tanh()
                gates = {}
            hs.append(h)
            if trace is not None:
                trace[f"l{k}.h"] = h
                for name, t in gates.items():
                    trace[f"l{k}.{name}"] = t
            x = h
        new_state = (torch.stack(hs), torch.stack(cs)) if kind is CellKind.lstm else (torch.stack(hs),)
        return self.head(x), new_state

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def split_name(name: str) -> tuple[int, str]:
    """A traced tensor's name -> (layer, part): 'l1.c' -> (1, 'c')."""
    layer, part = name.split(".")
    return int(layer[1:]), part


def trace_names(config: ModelConfig) -> list[str]:
    """Names of the tensors `CharRNN.step` traces, in a stable order."""
    per_layer = ["h"] + (["c"] if config.kind is CellKind.lstm else []) + list(GATES[config.kind])
    return [f"l{k}.{n}" for k in range(config.layers) for n in per_layer]
