"""Synthetic corpora with known structure, to check that `inspect` finds
what is there: quoted spans whose words come from a different vocabulary
from the text outside them, C-style comments, nested brackets with
indentation by depth, and lines of varying length.

    charrnn synthetic corpus.txt --chars 2000000 --seed 0
"""

from __future__ import annotations

import random

OUTSIDE = "the of and to in is was for on with as at by from that this it be are or".split()
INSIDE = "zyx quv kwj vyk jqz xuq wvz qyk zuj kxv".split()  # letters rare outside quotes
COMMENT = "note todo fixme why check later see above".split()


def _words(rng: random.Random, pool: list[str], lo: int, hi: int) -> str:
    return " ".join(rng.choice(pool) for _ in range(rng.randint(lo, hi)))


def _sentence(rng: random.Random) -> str:
    parts = [_words(rng, OUTSIDE, 2, 8)]
    if rng.random() < 0.5:
        parts.append(f'"{_words(rng, INSIDE, 1, 6)}"')
        parts.append(_words(rng, OUTSIDE, 1, 5))
    return " ".join(parts) + "."


def _block(rng: random.Random, depth: int) -> list[str]:
    """A bracketed block: each nested line indented two spaces per level."""
    pad = "  " * depth
    lines = [f"{pad}{_words(rng, OUTSIDE, 1, 3)} {{"]
    for _ in range(rng.randint(1, 3)):
        if depth < 3 and rng.random() < 0.4:
            lines += _block(rng, depth + 1)
        else:
            lines.append(f"{pad}  {_sentence(rng)}")
    lines.append(f"{pad}}}")
    return lines


def generate(chars: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    out: list[str] = []
    size = 0
    while size < chars:
        roll = rng.random()
        if roll < 0.15:
            lines = [f"/* {_words(rng, COMMENT, 2, 7)} */"]
        elif roll < 0.35:
            lines = _block(rng, 0)
        else:
            lines = [_sentence(rng) for _ in range(rng.randint(1, 3))]
        for line in lines:
            out.append(line)
            size += len(line) + 1
    return "\n".join(out)[:chars] + "\n"
