"""The command line: one click group; each command module registers itself on it
when the group first needs that command (see COMMAND_MODULES in base.py).

Commands parse arguments, call one library function and print.  Expected
failures (bad input, missing mirror, server down) surface as CliError: one line
on stderr and exit code 1 (2 for usage errors), never a traceback.
"""
from __future__ import annotations

from .base import main  # noqa: F401
