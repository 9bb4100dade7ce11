"""The click group and the shared pieces every command uses."""
from __future__ import annotations

import functools
import importlib
import logging
import os
import sys
from pathlib import Path

import click

from ..errors import ExpectedError
from ..store.mirror import Mirror

DEFAULT_MIRROR = "./.cometx-mirror"


class CliError(click.ClickException):
    """An expected failure: printed as one line, exit code 1."""

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


# Library failures that are the user's or the environment's doing, not bugs.
EXPECTED = (ExpectedError, OSError)


def expected_errors(fn):
    """Turn expected library exceptions into one-line CLI errors."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            result = fn(*args, **kwargs)
            sys.stdout.flush()      # here, where a closed pipe is caught, not at exit
            return result
        except click.ClickException:
            raise
        except BrokenPipeError:     # the reader closed the pipe: it has what it wanted
            _silence_stdout()
            raise SystemExit(SIGPIPE_EXIT) from None
        except EXPECTED as e:
            raise CliError(_one_line(e)) from None
        except KeyboardInterrupt:
            raise CliError("interrupted; what was stored is kept, run the command again to finish") from None
    return wrapper


def _one_line(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        where = f": {e.filename}" if e.filename else ""
        return f"{e.strerror}{where}"
    return " ".join(str(e).split()) or type(e).__name__


mirror_option = click.option(
    "--mirror", "mirror_path", envvar="COMETX_MIRROR", default=DEFAULT_MIRROR, show_default=True,
    type=click.Path(file_okay=False), help="The mirror folder (or $COMETX_MIRROR).")


def open_mirror(path: str, create: bool = False) -> Mirror:
    if create:
        refuse_foreign_folder(path)
        return Mirror.init(path)
    return Mirror.open(path)


def refuse_foreign_folder(path: str) -> None:
    """A mirror is made in a new or empty folder: a folder that holds other files (a
    project, a home) is not one, and mirror files strewn into it would be hard to undo."""
    from ..store.mirror import CONFIG
    root = Path(path)
    if root.is_dir() and not (root / CONFIG).exists() and any(root.iterdir()):
        raise CliError(f"{root} is not empty and is not a mirror; give a new or empty folder (--mirror)")


# Which module defines each command: a command's module (and what it imports, such
# as DuckDB or requests) loads only when that command runs, so start-up stays short.
COMMAND_MODULES = {
    "init": "read", "ls": "read", "query": "read", "log": "read", "show": "read", "cat": "read",
    "export": "read", "verify": "read", "gc": "read", "reindex": "read",
    "fetch": "fetch", "diff": "history", "push": "push", "check": "check", "serve": "serve",
    "demo": "demo", "plot": "plot", "export-index": "export_index",
}


# A reader such as `head` that closes the pipe early: end as a Unix tool killed
# by SIGPIPE does (status 128 + 13), silently, instead of "Broken pipe" and 120.
SIGPIPE_EXIT = 141


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMAND_MODULES)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in COMMAND_MODULES and name not in self.commands:
            importlib.import_module(f"{__package__}.{COMMAND_MODULES[name]}")   # registers it
        return super().get_command(ctx, name)


def _silence_stdout() -> None:
    # Python flushes stdout again at exit; pointing it at /dev/null keeps that flush quiet.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


class _NoteHandler(logging.Handler):
    """Writes to whatever stderr is now (click's test runner swaps it per call)."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(f"note: {record.getMessage()}", err=True)


def _show_library_notes() -> None:
    """The library logs one-line notes (an index rebuilt, ...) on the "cometx_mirror"
    logger; the CLI shows them on stderr as "note: ..."."""
    log = logging.getLogger("cometx_mirror")
    if not any(isinstance(h, _NoteHandler) for h in log.handlers):
        log.addHandler(_NoteHandler())
        log.setLevel(logging.INFO)
        log.propagate = False


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cometx-mirror")
def main() -> None:
    """A Git-like, content-addressed local mirror of Comet, W&B and Neptune experiments.

    \b
    fetch   download into the mirror (only what changed since the last fetch)
    ls      browse workspaces, projects, experiments and resources
    query   run read-only SQL over the index
    push    copy mirrored experiments into a Comet instance, skipping what is there
    """
    os.environ.setdefault("COMET_ERROR_TRACKING_ENABLE", "false")
    os.environ.setdefault("COMET_DISABLE_ANNOUNCEMENT", "true")
    _show_library_notes()
