"""What several commands share, written once: the consoles, the choices
(built from the library's registries), and the options as `Annotated`
aliases."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from .. import cells
from ..corpus import SPLITS
from ..corpus.documents import MODES as DOCUMENT_MODES
from ..device import DEVICES, PRECISIONS, STORAGE

# markup=False everywhere: paths, corpus and model text are data, never markup.
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)
console = Console(highlight=False, markup=False)


def _choices(name: str, values) -> type[Enum]:
    """A str Enum of `values`, the form Typer shows and checks as choices."""
    return Enum(name, {v: v for v in values}, type=str)


CellKind = _choices("CellKind", cells.names())  # the kinds registered when the CLI is built
DeviceName = _choices("DeviceName", DEVICES)
Precision = _choices("Precision", PRECISIONS)
Size = _choices("Size", ("auto", "fixed"))
Documents = _choices("Documents", ("none", *DOCUMENT_MODES))  # none: the text is one stream
SplitMode = _choices("SplitMode", SPLITS)
Dtype = _choices("Dtype", STORAGE)  # how exported weights or recorded tensors are stored
ExportDtype = _choices("ExportDtype", (*STORAGE, "int8"))  # int8: a page's or a module's weights only


def kinds_help() -> str:
    """'rnn (Elman, tanh), gru, lstm, ... or minlstm (...)': every registered
    kind, as --model's help names it."""
    summaries = [cells.get(name).summary or name for name in cells.names()]
    return _listed(summaries, "or")


def format_lr(lr: float) -> str:
    """8e-3 rather than 0.008: as the help and the README write it."""
    mantissa, exponent = f"{lr:.1e}".split("e")
    return f"{mantissa.removesuffix('.0')}e{int(exponent)}"


def default_lrs() -> str:
    """'8e-3 for lstm, mingru and minlstm; 2e-3 for rnn and gru': the kinds' defaults,
    grouped, the default kind's group first."""
    kinds: dict[float, list[str]] = {}
    for name in sorted(cells.names(), key=lambda n: n != cells.DEFAULT):  # stable: registration order after it
        kinds.setdefault(cells.get(name).default_lr, []).append(name)
    return "; ".join(f"{format_lr(lr)} for {_listed(ks, 'and')}" for lr, ks in kinds.items())


def _listed(words: list[str], conjunction: str) -> str:
    """'a, b and c'."""
    return f"{', '.join(words[:-1])} {conjunction} {words[-1]}" if len(words) > 1 else words[0]


DEVICE_HELP = "Where to run: auto picks cuda, then mps, then cpu."
DeviceOpt = Annotated[DeviceName, typer.Option(help=DEVICE_HELP)]
EncodingOpt = Annotated[str, typer.Option(help="Text encoding of the text file.")]


class Unknown(str, Enum):
    """What to do with characters the model has never seen."""

    error = "error"
    skip = "skip"


def unknown_opt(what: str):
    return Annotated[Unknown, typer.Option(help=f"{what} the model has never seen: error (naming them), or skip them.")]


def given_options(ctx: typer.Context | None) -> set[str]:
    """The options given on the command line (not defaults)."""
    if ctx is None:
        return set()
    return {name for name in ctx.params if (s := ctx.get_parameter_source(name)) is not None and s.name == "COMMANDLINE"}


CheckpointArg = Annotated[
    Path, typer.Argument(help="A checkpoint file, or a run directory (meaning its best checkpoint).")
]
NewestCheckpointArg = Annotated[
    Optional[Path], typer.Argument(help="A checkpoint file or run directory. Default: the newest run under checkpoints/.")
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Replace output files that already exist.")]

# Sampling: `sample`, and `inspect --generate`.
TemperatureOpt = Annotated[float, typer.Option(help="Softmax temperature; 0 means argmax.")]
TopKOpt = Annotated[Optional[int], typer.Option(help="Sample only among the k most likely characters.")]
TopPOpt = Annotated[Optional[float], typer.Option(help="Sample only among the most likely characters summing to p.")]
SeedOpt = Annotated[Optional[int], typer.Option(help="Random seed: same seed and options give the same text.")]
