"""The command line: one click group; each command module registers itself on it
when the group first needs that command (see COMMAND_MODULES in base.py).

Commands parse arguments, call one library function and print.  Expected
failures (bad input, missing mirror, server down) surface as CliError: one line
on stderr and exit code 1 (2 for usage errors), never a traceback.
"""
from __future__ import annotations

import os

# Before NumPy loads (the commands' modules import it): its OpenBLAS starts a thread per core at
# load, and they spin, about 0.1 s of CPU in every run on two cores.  No command does linear algebra.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from .base import main  # noqa: E402,F401
