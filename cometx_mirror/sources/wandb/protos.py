"""wandb's generated protobuf modules, loaded without the rest of wandb.

`from wandb.proto import wandb_internal_pb2` first runs wandb's package `__init__`,
which loads the whole SDK (pydantic settings, the service client, ...): about
1.2 s of CPU, more than reading a log of 10^5 points.  A reader needs only the
generated modules under `wandb/proto`, which import nothing of wandb's but each
other.  So, unless wandb is already imported, they are loaded under a bare
stand-in for the package, and every `wandb*` entry is taken out of sys.modules
again: the interpreter is left as it was, and a later `import wandb` loads
everything afresh.  Its messages are the very same classes (protobuf keeps one
class per message descriptor, and the files are the same), so records read here
and records wandb makes are interchangeable.  (A thread importing wandb while the
stand-in is in place would get the stand-in: in this package only the W&B API
source imports wandb, and never beside an offline read.)
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from typing import Any

_lock = threading.Lock()
_internal: Any = None


def wandb_internal_pb2() -> Any:
    """The `wandb_internal_pb2` module (Record and every record type)."""
    global _internal
    if _internal is None:
        with _lock:
            if _internal is None:
                _internal = _load("wandb.proto.wandb_internal_pb2")
    return _internal


def _load(name: str) -> Any:
    if any(m == "wandb" or m.startswith("wandb.") for m in sys.modules):
        return importlib.import_module(name)        # wandb is (being) imported: use it as it is
    spec = importlib.util.find_spec("wandb")
    if spec is None or not spec.submodule_search_locations:
        return importlib.import_module(name)        # raises the usual ImportError
    package = types.ModuleType("wandb")
    package.__path__ = list(spec.submodule_search_locations)
    package.__spec__ = spec
    sys.modules["wandb"] = package
    try:
        return importlib.import_module(name)
    finally:
        for loaded in [m for m in sys.modules if m == "wandb" or m.startswith("wandb.")]:
            del sys.modules[loaded]
