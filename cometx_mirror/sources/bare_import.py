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
import os
import sys
import threading
import types
from typing import Any

_lock = threading.Lock()


def import_bare(package: str, module: str, folders: dict[str, str] | None = None) -> Any:
    """`package.module` (a dotted path under `package`), its package's `__init__` not run.

    `folders` stands in for subpackages whose `__init__` only picks the folder their
    modules come from: {"proto": "proto/v4"} makes `package.proto` the folder proto/v4."""
    name = f"{package}.{module}"
    with _lock:
        if _loaded(package):
            return importlib.import_module(name)        # (being) imported for real: use it as it is
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            return importlib.import_module(name)        # raises the usual ImportError
        sys.modules[package] = _stand_in(package, list(spec.submodule_search_locations), spec)
        for sub, folder in (folders or {}).items():
            paths = [os.path.join(p, folder) for p in spec.submodule_search_locations]
            if any(os.path.isdir(p) for p in paths):     # else the subpackage's own `__init__` picks
                sys.modules[f"{package}.{sub}"] = _stand_in(f"{package}.{sub}", [p for p in paths if os.path.isdir(p)])
        try:
            return importlib.import_module(name)
        finally:
            for loaded in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
                del sys.modules[loaded]


def _stand_in(name: str, path: list[str], spec: Any = None) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__path__ = path
    module.__spec__ = spec
    return module


def _loaded(package: str) -> bool:
    return any(m == package or m.startswith(package + ".") for m in sys.modules)
