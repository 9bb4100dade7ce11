"""The command line: one click group; each command module registers itself here.

Commands parse arguments, call one library function and print.  Expected
failures (bad input, missing mirror, server down) surface as CliError: one line
on stderr and exit code 1 (2 for usage errors), never a traceback.
"""
from __future__ import annotations

from .base import main  # noqa: F401
from . import read  # noqa: F401  (registers commands)
from . import fetch  # noqa: F401
from . import history  # noqa: F401
from . import push  # noqa: F401
from . import serve  # noqa: F401
