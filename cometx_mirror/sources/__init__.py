"""Sources: one module per vendor (comet, wandb, neptune).

A source module provides
  - ``fetch(mirror, path, options, commit) -> None``: download what `path` names,
    store raw payloads as objects, write one manifest object per entity, and call
    ``commit(ref, origin, scope, manifests, stats)`` once per scope it covered;
  - normalizers registered with ``@normalizer("<source>-<what>/<version>")`` that turn a
    manifest (and the raw objects it names) into the common model.  They are pure:
    ``reindex`` re-runs them on the stored manifests and must get identical rows;
  - optionally, for a run that only grows, a ``@grown_normalizer("<name>", maybe=...)``:
    ``(mirror, manifest, indexed manifest) -> the run with only the points logged since
    the indexed manifest``, or None when it did not simply grow (then the index reads it whole);
    ``maybe(manifest)`` tells which manifests can be such a run.

Manifests are dicts with at least ``type`` ("experiment", "project", "artifact",
"registry_model", "panel"), ``normalizer``, ``source``, ``workspace``; labels in a
snapshot are "<type>/<workspace>/<...>/<key>" and unique within a source.

What a fetch is asked and what it reports are `options.FetchOptions` and
`options.FetchResult`, beside this protocol so sources import nothing from `sync`.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

from ..errors import ExpectedError

_NORMALIZERS: dict[str, Callable[[Any, dict], Any]] = {}
_GROWN: dict[str, Callable[[Any, dict, dict], Any]] = {}


class SourceError(ExpectedError):
    """A source could not be read: one clear line for the user, no secrets in it."""


def normalizer(name: str):
    def register(fn):
        _NORMALIZERS[name] = fn
        return fn
    return register


def grown_normalizer(name: str, maybe: Callable[[dict], bool]):
    """Register fn(mirror, manifest, indexed): the model object of a run that only grew since the
    index took `indexed`, holding only what the index lacks, or None (normalize it whole).
    `maybe(manifest)`: whether a manifest can be such a run (the index leaves those to refresh,
    which knows the indexed manifest, rather than normalizing them whole ahead)."""
    def register(fn):
        fn.maybe = maybe
        _GROWN[name] = fn
        return fn
    return register


def _load_normalizers_of(name: str) -> None:
    if name not in _NORMALIZERS:
        module = name.split("/")[0].split("-")[0]
        try:
            importlib.import_module(f"{__name__}.{module}")
        except ImportError:
            pass


def get_grown_normalizer(name: str) -> Callable[[Any, dict, dict], Any] | None:
    """The normalizer of a run that only grew since it was indexed, where the source has one."""
    _load_normalizers_of(name)
    return _GROWN.get(name)


def get_normalizer(name: str) -> Callable[[Any, dict], Any]:
    _load_normalizers_of(name)
    try:
        return _NORMALIZERS[name]
    except KeyError:
        raise SourceError(f"no normalizer {name!r} in this version of cometx-mirror") from None


def load_source(name: str):
    if name not in ("comet", "wandb", "neptune", "cometx"):
        raise SourceError(f"unknown source {name!r} (comet, wandb, neptune or cometx)")
    return importlib.import_module(f"{__name__}.{name}")
