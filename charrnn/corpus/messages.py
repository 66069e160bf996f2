"""How characters are named in messages: quoted and escaped, so that no
text, however odd, reaches a terminal raw or spills over more than one line."""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import CharRNNError


def describe_chars(chars: Iterable[str], limit: int = 20) -> str:
    """Characters quoted, with control and other invisible ones escaped
    (repr), so they never reach a terminal raw."""
    chars = list(chars)
    shown = " ".join(repr(c) for c in chars[:limit])
    return shown + (f" ... ({len(chars)} in all)" if len(chars) > limit else "")


def describe_unseen(counts: dict[str, int], limit: int = 20) -> str:
    """'\\xe6' (3 times), '\\u7dad' (once): characters a model never saw, most
    frequent first, escaped as describe_chars does."""
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    shown = ", ".join(f"{c!r} ({'once' if n == 1 else f'{n:,} times'})" for c, n in ranked[:limit])
    return shown + (f" ... ({len(ranked)} characters in all)" if len(ranked) > limit else "")


def unseen_error(where: str, counts: dict[str, int], skipping: str = "") -> CharRNNError:
    hint = f" (--unknown skip {skipping})" if skipping else ""
    return CharRNNError(f"{where} holds characters the model has never seen: {describe_unseen(counts)}{hint}")
