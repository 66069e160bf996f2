"""The `charrnn` command line: one module per command, each parsing options
into the library's dataclasses, calling one library function and rendering
what it returns. No tensor math here."""

from .entry import app, main

__all__ = ["app", "main"]
