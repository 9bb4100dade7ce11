"""The one parser of WORKSPACE[/PROJECT[/EXPERIMENT...]] paths, for every command.

A path names things in a mirror or on a server, never a file: an empty part
(`a//b`), `.` or `..` is refused rather than skipped, so `fetch a//b` is not
quietly read as `a/b` and `push ws ../x` does not create a workspace named `..`.
One slash at either end is forgiven (shell completion adds a trailing one).
"""
from __future__ import annotations

from .errors import ExpectedError

BAD_PARTS = ("", ".", "..")


class BadPath(ExpectedError):
    """A path with an empty, `.` or `..` part."""


def split(path: str | None, what: str = "path") -> list[str]:
    """The parts of `path` ([] for an empty path); BadPath for an empty, `.` or `..` part."""
    text = (path or "").strip()
    inner = text[1:] if text.startswith("/") else text
    inner = inner[:-1] if inner.endswith("/") else inner
    if not inner:
        return []
    parts = inner.split("/")
    for part in parts:
        if part.strip() in BAD_PARTS:
            shown = "an empty part" if not part.strip() else f"a {part.strip()!r} part"
            raise BadPath(f"bad {what} {path!r}: {shown} names nothing "
                          "(use WORKSPACE[/PROJECT[/EXPERIMENT]])")
    return parts


def check(path: str | None, what: str = "path") -> str:
    """`path` itself when it parses (for callers that pass the text on)."""
    split(path, what)
    return path or ""
