"""wandb's generated protobuf modules, loaded without the rest of wandb.

`from wandb.proto import wandb_internal_pb2` first runs wandb's package `__init__`,
which loads the whole SDK (pydantic settings, the service client, ...): about
1.2 s of CPU, more than reading a log of 10^5 points.  A reader needs only the
generated modules under `wandb/proto`, which import nothing of wandb's but each
other: they are imported bare (sources/bare_import.py), the interpreter left as it
was, so a later `import wandb` loads everything afresh with the same message classes.
"""
from __future__ import annotations

from typing import Any

from ..bare_import import import_bare

_internal: Any = None


def wandb_internal_pb2() -> Any:
    """The `wandb_internal_pb2` module (Record and every record type)."""
    global _internal
    if _internal is None:
        _internal = import_bare("wandb", "proto.wandb_internal_pb2")
    return _internal
