"""Normalizers: stored manifest (+ the raw objects it names) → model object.

Pure functions of the mirror's objects: `reindex` re-runs them and gets the
same rows, and the fetch ran the same code to store the derived objects (the
index takes that fold when it normalizes what the fetch just wrote: fold_of).
"""
from __future__ import annotations

from .. import grown_normalizer, normalizer
from . import exporter, mapping, offline_v1, scale
from .driver import fold_of


@normalizer(exporter.NORMALIZER)
def normalize_exporter(mirror, manifest: dict):
    return mapping.to_experiment(fold_of(mirror, manifest, exporter.fold))[0]


@normalizer(offline_v1.NORMALIZER)
def normalize_offline(mirror, manifest: dict):
    return mapping.to_experiment(fold_of(mirror, manifest, offline_v1.fold))[0]


@normalizer(scale.NORMALIZER)
def normalize_scale(mirror, manifest: dict):
    return mapping.to_experiment(fold_of(mirror, manifest, scale.fold))[0]


def _maybe_grown_scale(manifest: dict) -> bool:
    return "resume" in manifest and len(manifest.get("segments") or []) > 1


@grown_normalizer(scale.NORMALIZER, maybe=_maybe_grown_scale)
def grown_scale(mirror, manifest: dict, indexed: dict):
    """The run with only the points the index lacks, when its queue only grew (scale.grown_since); else
    None (checked before the fold is taken, so the whole normalizer still finds it)."""
    since = scale.grown_since(mirror, manifest, indexed)
    if since is None:
        return None
    return mapping.to_experiment(scale.only_since(fold_of(mirror, manifest, scale.fold), *since))[0]


def _maybe_grown_exporter(manifest: dict) -> bool:
    return "resume" in manifest and len(manifest.get("parts") or []) > 1


@grown_normalizer(exporter.NORMALIZER, maybe=_maybe_grown_exporter)
def grown_exporter(mirror, manifest: dict, indexed: dict):
    """The run with only the points the index lacks, when it only gained parts (exporter.grown_since);
    else None (checked before the fold is taken, so the whole normalizer still finds it)."""
    since = exporter.grown_since(mirror, manifest, indexed)
    if since is None:
        return None
    return mapping.to_experiment(exporter.only_since(fold_of(mirror, manifest, exporter.fold), since))[0]


def _maybe_grown_v1(manifest: dict) -> bool:
    return "resume" in manifest and sum(len(log["segments"]) for log in manifest.get("logs") or []) > 1


@grown_normalizer(offline_v1.NORMALIZER, maybe=_maybe_grown_v1)
def grown_offline(mirror, manifest: dict, indexed: dict):
    """The run with only the points the index lacks, when its op logs only grew (offline_v1.grown_since);
    else None (checked before the fold is taken, so the whole normalizer still finds it)."""
    since = offline_v1.grown_since(mirror, manifest, indexed)
    if since is None:
        return None
    return mapping.to_experiment(offline_v1.only_since(fold_of(mirror, manifest, offline_v1.fold), since))[0]


@normalizer("neptune-artifact/1")
def normalize_artifact(mirror, manifest: dict):
    return mapping.to_artifact(manifest)
