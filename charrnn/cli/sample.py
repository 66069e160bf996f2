"""`charrnn sample`: options -> SampleConfig -> generate -> stdout or a file.
Sample 1 streams as it is generated; the others follow it."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Optional

import typer

from .. import files
from ..errors import CharRNNError
from ..api import load
from ..sample import SampleConfig
from ..terminal import safe_for_terminal
from .options import (DeviceName, DeviceOpt, ForceOpt, NewestCheckpointArg, SeedOpt, TemperatureOpt, TopKOpt, TopPOpt,
                      Unknown, err, given_options, unknown_opt)  # fmt: skip

UnknownPrimeOpt = unknown_opt("Prime characters")


def sample(
    checkpoint: NewestCheckpointArg = None,
    prime: Annotated[str, typer.Option(help="Text the model reads before generating.")] = "",
    prime_file: Annotated[Optional[Path], typer.Option(help="Read the prime text from this file.")] = None,
    length: Annotated[int, typer.Option(help="Characters to generate per sample.")] = 500,
    temperature: TemperatureOpt = 1.0,
    top_k: TopKOpt = None,
    top_p: TopPOpt = None,
    seed: SeedOpt = None,
    num_samples: Annotated[int, typer.Option(help="Samples generated together in one batch.")] = 1,
    stop: Annotated[Optional[str], typer.Option(help="End a sample when this string appears.")] = None,
    echo: Annotated[bool, typer.Option(help="Print the prime before the continuation.")] = True,
    output: Annotated[Optional[Path], typer.Option(help="Write to this file instead of stdout.")] = None,
    force: ForceOpt = False,
    unknown: UnknownPrimeOpt = Unknown.error,
    beam: Annotated[Optional[int], typer.Option(
        help="Beam search with N beams: the most likely continuation instead of a drawn one "
             "(--num-samples: the best few). Printed once found, not streamed.")] = None,  # fmt: skip
    length_penalty: Annotated[float, typer.Option(
        help="With --beam and --stop: rank beams by log-probability / length**P, so P > 0 favours "
             "longer ones (default 0: the most likely).")] = 0.0,  # fmt: skip
    novel: Annotated[bool, typer.Option(
        help="For a model trained with --documents: keep only documents its corpus does not hold, drawing others"
             " in their place; the count dropped goes to stderr.")] = False,  # fmt: skip
    clamp: Annotated[Optional[list[str]], typer.Option(
        help="Hold a unit at a value on every step, as UNIT=VALUE with the unit named as inspect names it"
             " (e.g. l1.h:42=1.0; an LSTM's cell state l1.c:42=1.0). Repeatable.")] = None,  # fmt: skip
    device: DeviceOpt = DeviceName.auto,
    ctx: typer.Context = None,  # type: ignore[assignment]  # typer fills it in
) -> None:
    """Generate text from a model, one character at a time."""
    if beam is not None and "temperature" in given_options(ctx):
        raise CharRNNError("--beam finds the most likely text under the model itself: drop --temperature")
    config = SampleConfig(length, temperature, top_k, top_p, seed, num_samples, stop, unknown is Unknown.skip, beam,
                          length_penalty, tuple(clamp or ()))  # fmt: skip
    prime = _prime(prime, prime_file)
    model = load(checkpoint, device.value)
    if novel and not model.config.documents:
        raise CharRNNError("--novel keeps documents the corpus does not hold: the model must be trained with --documents")
    if novel and beam is not None:
        raise CharRNNError("--novel draws documents again until they are new; --beam finds the most likely: give one")
    if model.config.documents and beam is None:
        steps = _documents(model, prime, config, novel, echo)
        config = replace(config, num_samples=1)
        prime = ""
    else:
        steps = model.columns(prime, config)
    echoed = prime if echo else ""
    if output is None:
        sys.stdout.reconfigure(errors="backslashreplace")  # a terminal or pipe that cannot show a character
        _write_to(sys.stdout, steps, config.num_samples, echoed)
        return
    files.check_replaceable(output, force, "--output")
    if output.is_char_device():  # --output /dev/tty: stream to it as to the terminal
        with open(output, "w", encoding="utf-8") as stream:
            _write_to(stream, steps, config.num_samples, echoed)
        return
    with files.atomic_path(output) as tmp, open(tmp, "w", encoding="utf-8") as stream:  # all of it, or nothing
        _write_to(stream, steps, config.num_samples, echoed)


def _documents(model, prime: str, config: SampleConfig, novel: bool, echo: bool) -> Iterator[list[str]]:
    """Whole documents, drawn before any is shown, as one column of text:
    a line each for a model of lines, a separator line between files."""
    drawn = model.documents(config.num_samples, prime, config.length, novel, **_controls(config))
    shown = [text if echo else text[len(prime) :] for text in drawn.texts]
    if model.config.documents == "lines":
        yield ["\n".join(shown)]
    else:
        yield ["".join(f"\n\n----- document {i + 1} -----\n" * bool(i) + t for i, t in enumerate(shown))]
    notes = []
    if novel:
        notes.append(f"{drawn.dropped} drawn document(s) already in the corpus were dropped")
    if len(drawn.texts) < config.num_samples:
        notes.append(f"only {len(drawn.texts)} of {config.num_samples} novel documents were found")
    if drawn.unfinished:
        notes.append(f"{drawn.unfinished} reached --length {config.length} before their end")
    if notes:
        err.print("; ".join(notes))


def _controls(config: SampleConfig) -> dict:
    return {"temperature": config.temperature, "top_k": config.top_k, "top_p": config.top_p, "seed": config.seed,
            "stop": config.stop, "unknown": "skip" if config.skip_unknown else "error", "clamp": list(config.clamp)}


def _write_to(stream, steps, num_samples: int, echoed: str) -> None:
    to_terminal = stream.isatty()
    write = (lambda s: stream.write(safe_for_terminal(s))) if to_terminal else stream.write
    flush = stream.flush if stream is sys.stdout or to_terminal else (lambda: None)  # files: no flush per character
    write_samples(steps, num_samples, echoed, write, flush)


def _prime(prime: str, prime_file: Path | None) -> str:
    if prime_file is None:
        return prime
    if prime:
        raise CharRNNError("give --prime or --prime-file, not both")
    try:
        return prime_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise CharRNNError(f"cannot read --prime-file {prime_file}: {e}") from None


def write_samples(steps: Iterable[list[str]], num_samples: int, echo: str, write: Callable[[str], object],
                  flush: Callable[[], object]) -> None:  # fmt: skip
    """Stream sample 0 as it is generated (each step gives one character per
    sample); the others, made in the same batch, follow it, each after a
    separator line. `echo` (the prime, or "") starts every sample."""
    buffers: list[list[str]] = [[] for _ in range(num_samples)]
    if echo:
        write(echo)
    for chars in steps:
        write(chars[0])
        flush()
        for j in range(1, len(chars)):
            buffers[j].append(chars[j])
    for j in range(1, num_samples):
        write(f"\n\n----- sample {j + 1} -----\n")
        write(echo + "".join(buffers[j]))
    write("\n")
    flush()
