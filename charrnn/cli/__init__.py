"""The `charrnn` command line: one module per command, each parsing options
into the library's dataclasses, calling one library function and rendering
what it returns. No tensor math here.

The app and its entry point live in entry.py, which imports every command.
This file imports it only when `app` or `main` is asked for, so that
importing one command's module loads only what that command needs, while
scripts installed before the entry point moved (`charrnn.cli:main`, kept by
an editable install across a pull) still start.
"""


def __getattr__(name: str):
    if name in ("app", "main"):
        from . import entry

        return getattr(entry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
