"""The one base class of failures that are the user's or the environment's doing.

Bad input, a missing mirror, a server that is down: each module raises its own
subclass with a message fit to print, and the CLI prints it as one line.
Anything else is a bug and keeps its traceback.
"""


class ExpectedError(Exception):
    """A failure to report in one line, not a bug."""
