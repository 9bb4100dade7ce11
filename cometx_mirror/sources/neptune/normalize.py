"""Normalizers: stored manifest (+ the raw objects it names) → model object.

Pure functions of the mirror's objects: `reindex` re-runs them and gets the
same rows, and the fetch ran the same code to store the derived objects.
"""
from __future__ import annotations

from .. import normalizer
from . import exporter, mapping, offline_v1, scale


@normalizer(exporter.NORMALIZER)
def normalize_exporter(mirror, manifest: dict):
    return mapping.to_experiment(exporter.fold(mirror, manifest))[0]


@normalizer(offline_v1.NORMALIZER)
def normalize_offline(mirror, manifest: dict):
    return mapping.to_experiment(offline_v1.fold(mirror, manifest))[0]


@normalizer(scale.NORMALIZER)
def normalize_scale(mirror, manifest: dict):
    return mapping.to_experiment(scale.fold(mirror, manifest))[0]


@normalizer("neptune-artifact/1")
def normalize_artifact(mirror, manifest: dict):
    return mapping.to_artifact(manifest)
