"""Making model and corpus text safe to show on a terminal.

Generated text is data: an escape sequence in it must not move the cursor,
retitle the window or hide text, and a bidi override must not reorder what
the user reads. Such characters are shown as Python-style escapes instead.
"""

from __future__ import annotations

import re

# C0 controls except tab and newline, DEL, C1 controls, bidi embeddings,
# overrides and isolates.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escape(m: re.Match) -> str:
    cp = ord(m.group())
    return f"\\x{cp:02x}" if cp < 0x100 else f"\\u{cp:04x}"


def safe_for_terminal(text: str) -> str:
    """Text with every terminal-unsafe character written as an escape."""
    return _UNSAFE.sub(_escape, text)
