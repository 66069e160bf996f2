"""The docs hold what they say. For README.md and every docs/*.md:

1. every relative link reaches a file, and every `#anchor` into a Markdown
   file reaches one of its headings (GitHub's slugs);
2. every `--option` the docs name exists on the command they name it for;
3. every test they cite (`tests/test_x.py`, `tests/test_x.py::test_y`, or a
   code span holding just `test_y`) exists;
4. the generated parts are current (`python docs/generate.py --check`).

Which command an --option belongs to, the rule of check 2:

- A page is cut into units: each line of a fenced code block (a line that
  ends in a backslash joined to the next), each inline code span, and the
  prose around the spans. HTML comments and the parts docs/generate.py
  writes are left out: check 4 covers those.
- A code unit is cut into segments at `&&`, `||`, `;` and ` | `, and
  a `#` comment is dropped.
- `charrnn CMD`, `python -m charrnn CMD` or `-m charrnn CMD` (as under
  torchrun) is an invocation of CMD: every --option after it, to the end of
  its segment or the next invocation, must be an option of CMD or a global
  one (the `charrnn` group's options, and --help). A word after `charrnn`
  that is neither a command nor an option fails. An inline code span that
  starts with a command's name (`sample --beam`) is an invocation too.
- `python benchmarks/quality.py ... -- OPTIONS` (and malloc_effect.py)
  passes OPTIONS to `charrnn train`: they must be train's.
- On a command's own page, docs/CMD.md, every other --option must be an
  option of CMD (or global): in prose, in tables, and in code, except code
  that runs another program (python, pip, torchrun, ...; or that starts by
  setting an environment variable), whose options before any invocation
  are that program's. To name another command's option there, write the
  invocation: `charrnn sample --beam`.
- In README.md and the other pages, an --option outside an invocation is
  not checked: it may be torchrun's, a benchmark script's or pytest's.
"""

from __future__ import annotations

import importlib.util
import re
from functools import cache
from pathlib import Path

import pytest
import typer

from charrnn.cli.entry import app

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PAGES = [REPO / "README.md", *sorted(DOCS.glob("*.md"))]

FOREIGN = {"python", "python3", "pip", "pip3", "torchrun", "pytest", "bash", "sh", "git", "bible", "sed", "awk",
           ".", "source", "cd", "apt-get", "sudo"}  # fmt: skip
PASSES_TO_TRAIN = ("benchmarks/quality.py", "benchmarks/malloc_effect.py")
OPTION = re.compile(r"(?<![\w-])--[A-Za-z][\w-]*")
ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
FENCE = re.compile(r"^\s*(```|~~~)")
SPAN = re.compile(r"(`+)(.+?)\1", re.S)


# ---------------------------------------------------------------- the CLI


@cache
def commands() -> dict[str, set[str]]:
    """Each command's options (both halves of --x/--no-x), and "" -> the global ones."""
    group = typer.main.get_command(app)
    found = {"": {"--help", *(o for p in group.params for o in [*p.opts, *getattr(p, "secondary_opts", [])])}}
    for name, command in group.commands.items():
        found[name] = {"--help", *(o for p in command.params for o in [*p.opts, *getattr(p, "secondary_opts", [])])}
    return found


# ---------------------------------------------------------------- reading a page


def without_generated(text: str) -> str:
    """The page less its HTML comments and the parts docs/generate.py writes."""
    text = re.sub(r"<!-- ([\w-]+):begin -->.*?<!-- \1:end -->", "", text, flags=re.S)
    return re.sub(r"<!--.*?-->", "", text, flags=re.S)


def split_page(text: str) -> tuple[list[str], list[str], list[str]]:
    """(code lines, inline code spans, prose with the spans taken out)."""
    code, spans, prose, paragraph = [], [], [], []
    lines, fenced, pending = text.splitlines(), False, ""

    def end_paragraph():
        joined = "\n".join(paragraph)
        spans.extend(" ".join(m.group(2).split()) for m in SPAN.finditer(joined))
        prose.append(SPAN.sub(" ", joined))
        paragraph.clear()

    for line in lines:
        if FENCE.match(line):
            end_paragraph()
            fenced = not fenced
            continue
        if fenced:
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
            else:
                code.append(pending + line)
                pending = ""
        elif line.strip():
            paragraph.append(line)
        else:
            end_paragraph()
    end_paragraph()
    return code, spans, prose


def segments(unit: str) -> list[list[str]]:
    """A command line's segments, as words, its comment dropped."""
    unit = re.sub(r"(^|\s)#.*$", "", unit)
    return [part.split() for part in re.split(r"&&|\|\||;|\s\|\s", unit) if part.split()]


# ---------------------------------------------------------------- check 2


def option_problems(text: str, page_command: str | None) -> list[str]:
    """Every --option in `text` that is not an option of the command it is
    named for (the rule in this module's docstring)."""
    known, problems = commands(), []

    def check(options, command, where):
        for option in options:
            if option not in known[command] and option not in known[""]:
                problems.append(f"{option} is not an option of {'charrnn ' + command if command else 'charrnn'}: {where}")

    code, spans, prose = split_page(without_generated(text))
    for unit, is_span in [*((c, False) for c in code), *((s, True) for s in spans)]:
        for words in segments(unit):
            if is_span and words[0] in known and words[0]:  # `sample --beam`
                owner, words = words[0], words[1:]
            else:
                first = next((w for w in words if not ENV.match(w)), "")
                foreign = first in FOREIGN or first != words[0]  # another program, or an environment setting
                owner = page_command if not foreign else None  # None: not checked
            i = 0
            while i < len(words):
                word = words[i]
                if word == "charrnn" and i + 1 < len(words):
                    following = words[i + 1]
                    if following in known and following:
                        owner, i = following, i + 2
                        continue
                    if following.startswith("-"):
                        owner = ""
                    else:
                        problems.append(f"charrnn has no command {following!r}: {unit}")
                        owner = None
                elif word == "--" and any(w.endswith(PASSES_TO_TRAIN) for w in words[:i]):
                    owner = "train"
                elif owner is not None:
                    check(OPTION.findall(word), owner, unit)
                i += 1
    if page_command is not None:
        for paragraph in prose:
            check(OPTION.findall(paragraph), page_command, " ".join(paragraph.split())[:100])
    return problems


def page_command(page: Path) -> str | None:
    return page.stem if page.parent == DOCS and page.stem in commands() and page.stem else None


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_option_the_docs_name_exists_on_its_command(page):
    assert option_problems(page.read_text(encoding="utf-8"), page_command(page)) == []


def test_the_option_rule_catches_what_it_should():
    # An invocation's options are its command's, wherever they stand.
    assert option_problems("`charrnn sample --beam 8 --prime x`", None) == []
    assert option_problems("```\ncharrnn sample --bogus\n```", None) != []
    assert option_problems("```\ncharrnn train x \\\n  --beam 8\n```", None) != []  # a continued line
    assert option_problems("`charrnn nosuchcommand`", None) != []
    assert option_problems("`sample --beam`", "train") == []  # a span naming its command
    # Another program's options are its own, up to an invocation.
    torchrun = "```\ntorchrun --nproc_per_node=2 -m charrnn train c.txt --batch-size 32\n```"
    assert option_problems(torchrun, "train") == []
    assert option_problems(torchrun.replace("--batch-size", "--bogus"), "train") != []
    assert option_problems("`python benchmarks/quality.py --minutes 2 -- --model gru`", None) == []
    assert option_problems("`python benchmarks/quality.py --minutes 2 -- --beam 8`", None) != []
    assert option_problems("`CHARRNN_FUZZ_SCALE=20 python -m pytest --foo`", "train") == []
    # On a command's page, a bare option is that command's.
    assert option_problems("Give `--dropout 0.2` or --layers 1.", "train") == []
    assert option_problems("Give `--beam 8`.", "train") != []
    assert option_problems("Give --beam 8.", "train") != []
    assert option_problems("Give `--beam 8`.", None) == []  # elsewhere, unchecked
    assert option_problems("```\nsmall corpus: (--size auto: ...)\n```", "train") == []
    assert option_problems("```\n# a comment naming --bogus\n```", "train") == []
    # Global options, and the parts generate.py writes.
    assert option_problems("`charrnn --help`", None) == []
    assert option_problems("`charrnn --bogus`", None) != []
    assert option_problems("<!-- options:begin -->\n--bogus\n<!-- options:end -->", "train") == []


# ---------------------------------------------------------------- check 1


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text, lower case, punctuation
    dropped, spaces as hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    fenced = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced and (m := re.match(r"^#{1,6}\s+(.+?)\s*#*\s*$", line)):
            base = slug(m.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
    return {f"{base}-{i}" if i else base for base, n in seen.items() for i in range(n)}


def links(text: str) -> list[str]:
    """The link and image targets of a page, outside code."""
    code_free = []
    fenced = False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            code_free.append(line)
    prose = SPAN.sub(" ", re.sub(r"<!--.*?-->", "", "\n".join(code_free), flags=re.S))
    found = re.findall(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", prose)
    found += re.findall(r"""(?:href|src)=["']([^"']+)["']""", prose)
    found += re.findall(r"^\s*\[[^\]]+\]:\s*(\S+)", prose, flags=re.M)  # reference definitions
    return found


def link_problems(page: Path, text: str | None = None) -> list[str]:
    problems = []
    for target in links(page.read_text(encoding="utf-8") if text is None else text):
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:|^//", target):
            continue  # a URL: not checked here
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if REPO not in file.parents and file != REPO:
            problems.append(f"{target}: outside the repository")
        elif not file.exists():
            problems.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            problems.append(f"{target}: no heading #{anchor} in {file.relative_to(REPO)}")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page):
    assert link_problems(page) == []


def test_the_link_check_catches_what_it_should():
    readme = REPO / "README.md"
    assert link_problems(readme, "[a](docs/train.md#options) ![b](docs/curves.png) [c](https://x.org/y)") == []
    assert link_problems(readme, "[a](docs/nosuchpage.md)") != []
    assert link_problems(readme, "[a](docs/train.md#no-such-heading)") != []
    assert link_problems(readme, "`[not a link](nowhere.md)`") == []
    assert slug("The run plan (`--plan`)") == "the-run-plan---plan"
    assert slug("`benchmarks/gpu_check.py`") == "benchmarksgpu_checkpy"


# ---------------------------------------------------------------- check 3


@cache
def defined_tests() -> dict[str, set[str]]:
    return {
        p.name: set(re.findall(r"^\s*(?:async\s+)?def\s+(test_\w+)", p.read_text(encoding="utf-8"), flags=re.M))
        for p in (REPO / "tests").glob("test_*.py")
    }


def cited_test_problems(text: str) -> list[str]:
    found, problems = defined_tests(), []
    for file, function in re.findall(r"tests/(test_\w+\.py)(?:::(\w+))?", text):
        if file not in found:
            problems.append(f"tests/{file}: no such test file")
        elif function and function not in found[file]:
            problems.append(f"tests/{file}::{function}: no such test")
    every = set().union(*found.values())
    for span in SPAN.finditer(text):
        name = span.group(2).strip()
        if re.fullmatch(r"test_\w+", name) and name not in every:
            problems.append(f"{name}: no such test")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_cited_test_exists(page):
    assert cited_test_problems(page.read_text(encoding="utf-8")) == []


def test_the_test_citation_check_catches_what_it_should():
    assert cited_test_problems("`tests/test_docs.py::test_every_cited_test_exists`") == []
    assert cited_test_problems("`tests/test_docs.py::test_nothing_of_the_kind`") != []
    assert cited_test_problems("`tests/test_nothing.py`") != []
    assert cited_test_problems("`test_nothing_of_the_kind`") != []


# ---------------------------------------------------------------- check 4


def load_generator():
    spec = importlib.util.spec_from_file_location("docs_generate", DOCS / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_generated_parts_are_current():
    generate = load_generator()
    assert generate.stale() == [], "run: python docs/generate.py"


def test_every_command_has_a_page_with_its_options():
    generate = load_generator()
    assert set(generate.COMMANDS) == set(commands()) - {""}
    for name in generate.COMMANDS:
        page = (DOCS / f"{name}.md").read_text(encoding="utf-8")
        assert "<!-- options:begin -->" in page and "<!-- options:end -->" in page, name


def test_the_generated_check_catches_a_stale_page():
    generate = load_generator()
    page = (DOCS / "plot.md").read_text(encoding="utf-8")
    current = generate.fill(page, "options", generate.options_reference("plot"))
    assert current == page
    assert generate.fill(page, "options", "stale") != page
