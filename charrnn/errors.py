"""The one exception type the library raises for bad input.

The CLI turns a `CharRNNError` into a one-line message and exit code 1; any
other exception is a bug in charrnn and keeps its traceback.
"""


class CharRNNError(Exception):
    """Bad input or an impossible request, explained in one line."""


class TrainingDiverged(CharRNNError):
    """The loss or the gradient became NaN or infinite."""
