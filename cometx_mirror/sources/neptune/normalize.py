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


def _grown(reader):
    """The grown normalizer of a reader whose `grown_since` tells where the points the index lacks begin
    when a run only grew (None: index it whole; told before the fold is taken, so the whole normalizer
    still finds it), and whose fold's float_points narrow to those (`since`)."""
    def grown(mirror, manifest: dict, indexed: dict):
        since = reader.grown_since(mirror, manifest, indexed)
        if since is None:
            return None
        run = fold_of(mirror, manifest, reader.fold)
        if run.float_points is not None:
            run.float_points = run.float_points.since(since)
        return mapping.to_experiment(run)[0]
    return grown


# (`maybe`: the index's ahead thread leaves such a manifest to be indexed against the one it holds)
grown_normalizer(scale.NORMALIZER, maybe=lambda manifest: "resume" in manifest and
                 len(manifest.get("segments") or []) > 1)(_grown(scale))
grown_normalizer(exporter.NORMALIZER, maybe=lambda manifest: "resume" in manifest and
                 len(manifest.get("parts") or []) > 1)(_grown(exporter))
grown_normalizer(offline_v1.NORMALIZER, maybe=lambda manifest: "resume" in manifest and
                 sum(len(log["segments"]) for log in manifest.get("logs") or []) > 1)(_grown(offline_v1))


@normalizer("neptune-artifact/1")
def normalize_artifact(mirror, manifest: dict):
    return mapping.to_artifact(manifest)
