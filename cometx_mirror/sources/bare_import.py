"""Generated protobuf modules, imported without their package's `__init__`.

A vendor's package `__init__` often loads its whole client (HTTP stacks, settings,
JWT and crypto libraries) before any submodule; a reader of its files needs only
the generated `*_pb2` modules, which import nothing of the package but each other.
So, unless the package is already imported, it is stood in for by a bare module
with the package's path, the wanted module is imported under it, and every entry
of the package is taken out of sys.modules again: the interpreter is left as it
was, and a later real import loads everything afresh.  Its messages are the very
same classes (protobuf keeps one class per message descriptor, and the files are
the same), so messages read here and messages the vendor's client makes are
interchangeable.  (A thread importing the package while the stand-in is in place
would get the stand-in; in this project the vendor's client is imported only by an
online source, never beside an offline read.)
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from typing import Any

_lock = threading.Lock()


def import_bare(package: str, module: str) -> Any:
    """`package.module` (a dotted path under `package`), its package's `__init__` not run."""
    name = f"{package}.{module}"
    with _lock:
        if _loaded(package):
            return importlib.import_module(name)        # (being) imported for real: use it as it is
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            return importlib.import_module(name)        # raises the usual ImportError
        stand_in = types.ModuleType(package)
        stand_in.__path__ = list(spec.submodule_search_locations)
        stand_in.__spec__ = spec
        sys.modules[package] = stand_in
        try:
            return importlib.import_module(name)
        finally:
            for loaded in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
                del sys.modules[loaded]


def _loaded(package: str) -> bool:
    return any(m == package or m.startswith(package + ".") for m in sys.modules)
