"""CharRNN: embedding -> recurrent layers of one cell kind -> dropout -> linear head.

Training runs the kind's sequence module, all layers in one call (`nn.RNN`, `nn.GRU`,
`nn.LSTM`), or for a kind without one cells/stepped.py's module (the
minimal cells' scan over each window). `step` computes one character at a time
from the same weights, through the kind's own step function, so that every
layer's state and gates can be seen; tests hold the two paths equal.

State is always a tuple of (layers, B, H) tensors, one per state part of
the kind, h first: `(h, c)` for LSTM, `(h,)` for the others. That layout
is the contract (training slices its streams, sampling expands its batch,
inspect takes a layer's part); how many parts there are is the kind's
business, and `init_state` / `detach_state` make and cut them.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field, fields

import torch
import torch.nn.functional as F
from torch import nn

from . import cells
from .cells import Cell, LayerWeights, State
from .corpus.documents import check_mode
from .errors import CharRNNError
from .typecheck import check_types


MAX_SIZE = 2**31 - 1  # any one dimension of a model


def regulariser(format_version: int = 1) -> dict:
    """A field's metadata: a regulariser (fine-tuning may change it), and
    the checkpoint format that first held it. A field added after format 1
    is written only when set, so a model without it stays readable by the
    charrnn from before it, and one with it asks that charrnn to upgrade."""
    return {"regulariser": True, "format": format_version}


@dataclass(frozen=True)
class ModelConfig:
    kind: str  # a registered cell kind (charrnn.cells)
    vocab_size: int
    embedding: int = 64
    hidden: int = 384  # tuned for quality per minute on a 2-core CPU (benchmarks/quality.py)
    layers: int = 2
    dropout: float = field(default=0.0, metadata=regulariser())
    # DropConnect on the recurrent weights (Merity et al. 2018, AWD-LSTM):
    # while training, each window zeroes this fraction of every layer's W_hh
    # entries (and scales the rest by 1/(1-p), as dropout does), the same
    # ones for every step and stream of the window (each process draws its
    # own under torchrun), so the recurrence itself is regularised without a
    # mask on the state.
    weight_drop: float = field(default=0.0, metadata=regulariser(2))
    # Variational (locked) dropout on the character embedding (Gal and
    # Ghahramani 2016): while training, each window zeroes this fraction of
    # every stream's embedding features, the same ones at every step of the
    # window, so the recurrence sees one consistently thinned input rather
    # than fresh noise per character.
    embed_dropout: float = field(default=0.0, metadata=regulariser(3))
    # "" : the text is one stream. "lines" or "files": it is documents, each
    # read from the zero state after an end marker and ended by one, which
    # the model predicts (corpus/documents.py); sampling, scoring and
    # inspection read documents so too.
    documents: str = field(default="", metadata={"format": 4})

    def __post_init__(self) -> None:
        check_types(self)
        object.__setattr__(self, "kind", cells.get(self.kind).name)  # a str, whatever names it
        for name in ("vocab_size", "embedding", "hidden", "layers"):
            if not 1 <= getattr(self, name) <= MAX_SIZE:  # torch's sizes are int64, and such a model fits nowhere
                raise CharRNNError(f"model {name} must be in 1..{MAX_SIZE:,}, not {getattr(self, name)}")
        for name in ("dropout", "weight_drop", "embed_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise CharRNNError(f"{name.replace('_', ' ')} must be in [0, 1), not {getattr(self, name)}")
        check_mode(self.documents)
        if self.weight_drop and not self.cell.recurrent:
            raise CharRNNError(f"weight drop acts on W_hh, and a {self.kind} layer has none: leave it out")

    @property
    def cell(self) -> Cell:
        return cells.get(self.kind)

    @property
    def trace_names(self) -> list[str]:
        """Names of the tensors `CharRNN.step` traces, in a stable order:
        per layer k, `l{k}.` and each state part, then each gate."""
        return [f"l{k}.{part}" for k in range(self.layers) for part in self.cell.traced]

    def to_dict(self) -> dict:
        """The fields, less those added after format 1 and left at their
        default (absent, as the charrnn before them writes and reads them)."""
        d = asdict(self)
        for f in fields(self):
            if f.metadata.get("format", 1) > 1 and d[f.name] == f.default:
                del d[f.name]
        return d

    def format_version(self) -> int:
        """The oldest checkpoint format that holds this model (see regulariser)."""
        return max([1] + [f.metadata.get("format", 1) for f in fields(self) if getattr(self, f.name) != f.default])


    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        return cls(**d)


NEWEST_FORMAT = max(f.metadata.get("format", 1) for f in fields(ModelConfig))
REGULARISERS = tuple(f.name for f in fields(ModelConfig) if f.metadata.get("regulariser"))


class CharRNN(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        c = self.config = config
        self.cell = config.cell
        self.embed = nn.Embedding(c.vocab_size, c.embedding)
        self.rnn = self.cell.build(c.embedding, c.hidden, c.layers, c.dropout)
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(c.hidden, c.vocab_size)
        self.cell.init_parameters(self.rnn, c.layers, c.hidden)
        # Set by the trainer where autocast must not reach a sequence module's recurrence
        # (device.recurrence_in_fp32: bf16 on CUDA, or on a CPU whose oneDNN
        # has no bf16). A scanning kind keeps its recurrence in fp32 anyway
        # (cells/scan.py), and its matmuls in bf16.
        self.fp32_recurrence = False

    # -- state ---------------------------------------------------------------

    def init_state(self, batch: int, device: torch.device | str | None = None) -> State:
        c = self.config
        device = device if device is not None else self.head.weight.device
        return tuple(torch.zeros(c.layers, batch, c.hidden, device=device) for _ in self.cell.state_names)

    @staticmethod
    def detach_state(state: State) -> State:
        """The state cut from its graph, for the next truncated-BPTT window;
        float32 whatever precision autocast computed it in."""
        return tuple(s.detach().float() for s in state)

    # -- the sequence module's path ---------------------------------------------

    def forward(self, ids: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """ids (B, T) -> logits (B, T, V), new state."""
        if state is None:
            state = self.init_state(ids.shape[0], ids.device)
        x = self.embed(ids)  # (B, T, E)
        if self.training and self.config.embed_dropout:
            x = locked_dropout(x, self.config.embed_dropout)
        if self.fp32_recurrence and self.cell.sequence_module is not None:  # cuDNN's kernels are the reason (see device.py)
            with torch.autocast(x.device.type, enabled=False):
                out, new = self._recurrence(x.float(), self.cell.to_module_state(tuple(s.float() for s in state)))
        else:
            out, new = self._recurrence(x, self.cell.to_module_state(state))  # out (B, T, H)
        return self.head(self.drop(out)), self.cell.from_module_state(new)

    def _recurrence(self, x: torch.Tensor, state):
        """The sequence module over a window; while training with weight drop,
        with each layer's W_hh masked for this window (functional_call
        swaps the masked tensor in, so gradients reach the parameter
        through the mask, and its kernels run unchanged)."""
        p = self.config.weight_drop
        if not (self.training and p):
            return self.rnn(x, state)
        masked = {f"weight_hh_l{k}": F.dropout(self.layer_weights(k).w_hh, p) for k in range(self.config.layers)}
        with warnings.catch_warnings():
            # cuDNN wants every weight in one buffer and copies the masked ones
            # into one each call, as it must here; its warning says so every time.
            warnings.filterwarnings("ignore", "RNN module weights are not part of single contiguous chunk")
            return torch.func.functional_call(self.rnn, masked, (x, state))

    # -- step path -----------------------------------------------------------

    def layer_weights(self, k: int) -> LayerWeights:
        return cells.layer_weights(self.rnn, k)

    def step(self, ids: torch.Tensor, state: State, trace: dict | None = None) -> tuple[torch.Tensor, State]:
        """One character per stream: ids (B,) -> logits (B, V), new state.

        Computed layer by layer with the cell's step, from the sequence module's
        weights (eval semantics: no dropout). If `trace` is a dict it
        receives every layer's tensors, each (B, H), under the names of
        `ModelConfig.trace_names`: `l{k}.h`, `l{k}.c` for an LSTM, and the
        gates, e.g. `l{k}.i/f/g/o` (LSTM) or `l{k}.r/z/n` (GRU): the kind's
        `gate_names`.
        """
        x = self.embed(ids)  # (B, E)
        layers = []
        for k in range(self.config.layers):
            w = self.layer_weights(k)
            prev = tuple(s[k] for s in state)
            new, gates = self.cell.step(w.input(x), w.recurrent(prev[0]), prev)
            layers.append(new)
            if trace is not None:
                trace.update({f"l{k}.{name}": t for name, t in zip(self.cell.state_names, new)})
                trace.update({f"l{k}.{name}": t for name, t in gates.items()})
            x = new[0]
        return self.head(x), tuple(torch.stack(part) for part in zip(*layers))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def locked_dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """Dropout on x (B, T, F) with one mask per stream, shared by all T steps."""
    keep = x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(1 - p)
    return x * keep.div_(1 - p)


def split_name(name: str) -> tuple[int, str]:
    """A traced tensor's name -> (layer, part): 'l1.c' -> (1, 'c')."""
    layer, part = name.split(".")
    return int(layer[1:]), part
