"""Write the generated parts of the docs: each command's option reference,
from the Typer app, and the benchmark tables, from benchmarks/results/.

    python docs/generate.py            # rewrite the parts that are stale
    python docs/generate.py --check    # write nothing; exit 1 naming the stale pages

A generated part sits between two markers in a page:

    <!-- options:begin -->
    ... (written by this script; edit the app or the log, not this text)
    <!-- options:end -->

Everything outside the markers is written by hand and left alone. The
output depends only on the app's declarations and the logs, never on the
machine that runs this script, so `--check` gives the same answer
everywhere (tests/test_docs.py runs it).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
BENCHMARKS = REPO / "benchmarks"
RESULTS = BENCHMARKS / "results"

# The commands with a page of their own: docs/<command>.md.
COMMANDS = ("train", "prepare", "sample", "eval", "score", "compare", "serve", "inspect", "export", "plot", "synthetic")


# ---------------------------------------------------------------- options


def cli_group():
    """The click group behind `charrnn` (its commands' params carry .opts,
    .help, .default and rich_help_panel)."""
    import typer

    from charrnn.cli.entry import app

    return typer.main.get_command(app)


def _plain(text: str | None) -> str:
    """One Markdown table cell from a help string: rich's markup escapes
    undone (the CLI escapes `[` so that rich prints it), whitespace folded,
    and what Markdown would read as a column break or an HTML tag escaped."""
    text = re.sub(r"\\\[", "[", " ".join((text or "").split()))
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _metavar(param, ctx) -> str:
    """What the option takes: its choices (a|b|c), a kind of value (N, X,
    TEXT, PATH), or nothing for a flag."""
    if getattr(param, "is_flag", False):
        return ""
    try:
        shown = param.display_type(ctx)  # typer's own: '<int range>', '<rnn|gru|lstm>'
    except Exception:  # noqa: BLE001: an older typer; fall back to the default's type
        shown = ""
    shown = shown.strip("<>")
    if "|" in shown:
        return shown
    kind = shown.split()[0] if shown else type(param.default).__name__
    return {"int": "N", "float": "X", "path": "PATH"}.get(kind, "TEXT")


def _range(param) -> str:
    low, high = getattr(param, "min", None), getattr(param, "max", None)
    if high is not None and high >= 2**63 - 1:  # no bound a user meets
        high = None
    if low is None and high is None:
        return ""
    if high is None:
        return f" At least {low}."
    if low is None:
        return f" At most {high}."
    return f" From {low} to {high}."


def _default(param) -> str:
    if not getattr(param, "show_default", True) or param.default is None:
        return ""
    value = param.default
    if getattr(param, "is_flag", False):
        return "on" if value else "off"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, (list, tuple)):
        value = ", ".join(map(str, value))
    if value == "":
        return ""
    return f"`{value}`"


def _option_cell(param, ctx) -> str:
    names = ", ".join(f"`{o}`" for o in [*param.opts, *param.secondary_opts])
    metavar = _metavar(param, ctx)
    if metavar:
        names = names[:-1] + f" {metavar.replace('|', chr(92) + '|')}`"
    return names


def options_reference(command_name: str) -> str:
    """The Markdown reference of one command: its arguments, then one table
    of options per help panel, in the order the app declares them."""
    import typer

    command = cli_group().commands[command_name]
    ctx = typer.Context(command, info_name=command_name)
    arguments = [p for p in command.params if not p.opts[0].startswith("-")]
    options = [p for p in command.params if p.opts[0].startswith("-") and not getattr(p, "hidden", False)]
    lines: list[str] = []
    if arguments:
        lines += ["| argument | help |", "|---|---|"]
        for p in arguments:
            name = p.name.upper() if getattr(p, "required", False) else f"[{p.name.upper()}]"
            lines.append(f"| `{name}` | {_plain(getattr(p, 'help', ''))} |")
        lines.append("")
    panels: dict[str, list] = {}
    for p in options:
        panels.setdefault(getattr(p, "rich_help_panel", None) or "Options", []).append(p)
    for panel, params in panels.items():
        if len(panels) > 1:
            lines += [f"**{panel}**", ""]
        lines += ["| option | default | help |", "|---|---|---|"]
        for p in params:
            lines.append(f"| {_option_cell(p, ctx)} | {_default(p)} | {_plain(p.help)}{_range(p)} |")
        lines.append("")
    lines.append("Every command also takes `--help` (`-h`).")
    return "\n".join(lines)


# ---------------------------------------------------------------- benchmarks


def _benchmark(name: str):
    """A module of benchmarks/ (they import each other by bare name)."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    import importlib

    return importlib.import_module(name)


# The machines of benchmarks/results/quality.jsonl. A row names its machine
# in its note where it is not the first one.
MACHINES = (
    ("family 26", "2 cores of an AMD EPYC, family 26 (model 2), with AVX512-BF16"),
    ("", "2 cores of an AMD EPYC, family 25, with AVX512-BF16"),
)


def _machine(row: dict) -> str:
    return next(name for key, name in MACHINES if key in row.get("note", ""))


def _quality_rows() -> list[dict]:
    quality = _benchmark("quality")
    lines = (RESULTS / "quality.jsonl").read_text(encoding="utf-8").splitlines()
    return quality.reproducible(json.loads(line) for line in lines if line.strip())


def _per_machine(table: Callable[[list[dict]], str]) -> str:
    """One table per machine (the slower machine first), each under a line
    naming the machine and the torch build."""
    rows = _quality_rows()
    parts = []
    for _, machine in reversed(MACHINES):
        mine = [r for r in rows if _machine(r) == machine]
        if mine:
            torch_versions = ", ".join(sorted({r["torch"] for r in mine}))
            parts += [f"On {machine}, torch {torch_versions}:", "", table(mine), ""]
    return "\n".join(parts).rstrip()


def quality_best() -> str:
    """`quality.py --table LOG --best`, one table per machine."""
    return _per_machine(_benchmark("quality").best_table)


def quality_all() -> str:
    """`quality.py --table LOG`, one table per machine, folded away."""
    return "<details><summary>every logged run</summary>\n\n" + _per_machine(_benchmark("quality").markdown_table) + "\n\n</details>"


def size_rule() -> str:
    """`size_rule.py --table`."""
    module = _benchmark("size_rule")
    text, _ = module.table(module.LOG, module.DEFAULT_MAX_STEPS)
    return text


def recipe_grid() -> str:
    """`recipe_grid.py --table`."""
    module = _benchmark("recipe_grid")
    text, _ = module.table(module.LOG)
    return text


def split_choice() -> str:
    """`split_choice.py --table`."""
    return _benchmark("split_choice").table()


def prepare_scale() -> str:
    """`prepare_scale.py --table`."""
    return _benchmark("prepare_scale").table()


def web_size() -> str:
    """`web_size.py --table`: the last logged measurement."""
    module = _benchmark("web_size")
    return module.table(module.logged()) + "\n\nMeasured by `python benchmarks/web_size.py CHECKPOINT --log`."


# ---------------------------------------------------------------- pages


def regions() -> dict[Path, dict[str, Callable[[], str]]]:
    """Every generated part: page -> marker name -> what writes it."""
    pages: dict[Path, dict[str, Callable[[], str]]] = {
        DOCS / f"{name}.md": {"options": (lambda name=name: options_reference(name))} for name in COMMANDS
    }
    pages[DOCS / "benchmarks.md"] = {"quality-best": quality_best, "quality-all": quality_all, "size-rule": size_rule,
                                     "recipe-grid": recipe_grid}  # fmt: skip
    pages[DOCS / "export.md"]["int8"] = web_size
    pages[DOCS / "train.md"]["split-choice"] = split_choice
    pages[DOCS / "prepare.md"]["prepare-scale"] = prepare_scale
    return pages


def fill(text: str, name: str, body: str) -> str:
    """`text` with the part between NAME's markers replaced by `body`."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    pattern = re.compile(re.escape(begin) + r"\n.*?" + re.escape(end), re.S)
    if len(pattern.findall(text)) != 1:
        raise SystemExit(f"error: expected one {begin} ... {end} pair")
    return pattern.sub(lambda _: f"{begin}\n{body.rstrip()}\n{end}", text)


def generated() -> dict[Path, tuple[str, str]]:
    """Each page's text as it is and as it should be."""
    out = {}
    for page, parts in regions().items():
        old = page.read_text(encoding="utf-8")
        new = old
        for name, write in parts.items():
            try:
                new = fill(new, name, write())
            except SystemExit as e:
                raise SystemExit(f"{e} in {page.relative_to(REPO)}") from None
        out[page] = (old, new)
    return out


def stale() -> list[str]:
    """The pages whose generated parts are not what this script writes."""
    return [str(page.relative_to(REPO)) for page, (old, new) in generated().items() if old != new]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if any page is stale")
    args = ap.parse_args(argv)
    if args.check:
        pages = stale()
        for page in pages:
            print(f"stale: {page} (run python docs/generate.py)", file=sys.stderr)
        return 1 if pages else 0
    for page, (old, new) in generated().items():
        if old != new:
            page.write_text(new, encoding="utf-8")
            print(f"wrote {page.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
