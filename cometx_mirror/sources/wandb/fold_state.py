"""The whole fold of a `.wandb` log up to a byte, saved beside the log so nothing reads that prefix again.

A fetch folds the log with every detail the normalizer needs apart from the history points
(config, summary, system samples, media rows, exit, times), and saves the result; the
normalizer takes the run's small tables from it instead of folding the log a second time,
and a grown log's next fetch folds on from it.  The summary is saved as value texts, the
form `records.fold` keeps it in until a log ends, so a fold resumed from it is exactly the
fold of the whole log.  Saved as plain JSON (NaN allowed): values from the log stay typed.
The console output is saved as its own object, named by the state (a state saved before
held its lines, and is read as well).
"""
from __future__ import annotations

import base64
import json

from ..console_text import ConsoleText
from .records import RunLog

VERSION = 2      # version 1 (the fetch's fields alone) lacks the normalizer's: read whole
_SKIP = ("history", "bytes_read", "summary", "output")
# A torn record's stored bytes are kept here too (up to this many), so the next read of the
# log's tail starts at the record without decompressing the part that holds its start.
TORN_LIMIT = 1 << 20


def _as_texts(tree: dict) -> dict:
    """A resolved summary tree back as the texts `fold` keeps (each leaf's JSON)."""
    return {k: _as_texts(v) if isinstance(v, dict) and v else json.dumps(v) for k, v in tree.items()}


def encode(log: RunLog, objects, torn: bytes = b"") -> bytes:
    """`torn`: the stored bytes from `complete_end` on (a record cut short), if few. The
    console output is put in `objects`."""
    state = {k: v for k, v in vars(log).items() if k not in _SKIP}
    state.update(v=VERSION, summary=_as_texts(log.summary))
    if log.output.any_value:
        state["output"] = {"object": log.output.store(objects), "size": log.output.size}
    if torn:
        state["torn"] = base64.b64encode(torn).decode("ascii")
    return json.dumps(state, separators=(",", ":")).encode("utf-8")


def is_full(state: dict) -> bool:
    return isinstance(state, dict) and state.get("v") == VERSION


def decode(state: dict, objects) -> RunLog:
    """A RunLog to fold on from (its summary still texts: `fold` resolves it at the end); its
    console output continues the text saved in `objects`."""
    log = RunLog(**{k: v for k, v in state.items() if k not in ("v", "torn", "output")})
    saved = state.get("output")
    if isinstance(saved, dict):
        log.output = ConsoleText((objects, saved["object"], saved["size"]))
    for _stream, _ms, line in saved if isinstance(saved, list) else ():   # a state that held the lines
        log.output.add(line)
    return log


def output_object(state: dict) -> str | None:
    """The object the state's console output is saved as, if it names one."""
    saved = state.get("output")
    return saved.get("object") if isinstance(saved, dict) else None


def resolved(state: dict, objects) -> RunLog:
    """The RunLog as the fold ended (summary decoded), for a reader that only looks."""
    from .records import _resolve
    log = decode(json.loads(json.dumps(state)), objects)   # a copy: resolving works in place
    _resolve(log.summary)
    return log


def torn(state: dict) -> bytes:
    """The stored bytes after `complete_end` the state kept (empty when none or too many)."""
    return base64.b64decode(state.get("torn", ""))
