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


@grown_normalizer(scale.NORMALIZER, maybe=lambda manifest: "resume" in manifest and len(manifest["segments"]) > 1)
def grown_scale(mirror, manifest: dict, indexed: dict):
    """The run with only the points the index lacks, when its queue only grew (scale.grown); else None."""
    run = scale.grown(mirror, manifest, indexed, fold_of(mirror, manifest, scale.fold))
    return None if run is None else mapping.to_experiment(run)[0]


@normalizer("neptune-artifact/1")
def normalize_artifact(mirror, manifest: dict):
    return mapping.to_artifact(manifest)
