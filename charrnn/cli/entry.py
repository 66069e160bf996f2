"""The Typer app: its commands, registered explicitly, and the one way
every command ends.

Bad input never shows a traceback: library errors (`CharRNNError`) and
usage errors both end as one line on stderr with exit code 1.
"""

from __future__ import annotations

import sys
import traceback
from typing import Annotated

import typer
from rich.markup import escape
from typer.core import TyperGroup

from ..errors import CharRNNError
from ..terminal import safe_for_terminal
from ..training import distributed
from . import compare as compare_cmd
from . import eval as eval_cmd
from . import export as export_cmd
from . import inspect as inspect_cmd
from . import plot as plot_cmd
from . import prepare as prepare_cmd
from . import sample as sample_cmd
from . import score as score_cmd
from . import serve as serve_cmd
from . import synthetic as synthetic_cmd
from . import train as train_cmd
from . import version


class _OneLineErrors(TyperGroup):
    """Runs commands without click's standalone handling, so that every kind
    of bad input ends the same way: `error: ...` on one line, exit 1. Help
    text is plain text: rich would read `charrnn[lstmvis]` as markup and
    drop the brackets, so every command's and option's help is escaped."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for command in self.commands.values():
            command.help = command.help and escape(command.help)
            for param in command.params:
                if getattr(param, "help", None):
                    param.help = escape(param.help)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except CharRNNError as e:
            _fail(str(e))
        except typer.TyperException as e:  # usage errors: bad option value, unknown option
            if type(e).__name__ == "NoArgsIsHelpError":  # `charrnn` alone: the help is shown, nothing was wrong
                sys.exit(0)
            _fail(e.format_message() if hasattr(e, "format_message") else str(e))
        except typer.Abort:
            _fail("aborted")
        except OSError as e:  # a disk or permission problem while writing
            _fail(f"{e.strerror or e}: {e.filename}" if e.filename else str(e))
        sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str) -> None:
    # print, not rich: the message may hold user text that must not be markup
    print(f"error: {safe_for_terminal(message)}", file=sys.stderr)
    sys.exit(1)


app = typer.Typer(
    cls=_OneLineErrors,
    help="Train, sample and inspect character-level RNN, GRU, LSTM, minGRU and minLSTM language models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _options(
    show_version: Annotated[bool, typer.Option(
        "--version", is_eager=True, callback=version.show,
        help="Show the versions, platform, devices and CPU facts a bug report needs, and exit.")] = False,  # fmt: skip
) -> None:
    """Options before the command."""


app.command("train")(train_cmd.train)
app.command("prepare")(prepare_cmd.prepare)
app.command("sample")(sample_cmd.sample)
app.command("eval")(eval_cmd.evaluate)
app.command("score")(score_cmd.score)
app.command("compare")(compare_cmd.compare)
app.command("serve")(serve_cmd.serve)
app.command("inspect")(inspect_cmd.inspect)
app.command("export")(export_cmd.export)
app.command("plot")(plot_cmd.plot)
app.command("synthetic")(synthetic_cmd.synthetic)


def main() -> None:
    # Under torchrun, every ending goes through exit_without_shutdown (see there).
    try:
        app()
    except SystemExit as e:
        if distributed.joined():
            distributed.exit_without_shutdown(e.code)
        raise
    except BaseException as e:  # a crash, or a second Ctrl-C
        if distributed.joined():
            if isinstance(e, KeyboardInterrupt):
                distributed.exit_without_shutdown(130)
            traceback.print_exc()
            distributed.exit_without_shutdown(1)
        raise
