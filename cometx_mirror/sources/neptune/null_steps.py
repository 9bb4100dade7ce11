"""Steps the server gives points logged without one, a column at a time.

`run[path].append(value)` in neptune 1.x sends no step: the point's step is null and the server
numbers it, the step before it in its series + 1 (0 for a series' first point). The op-by-op rule
(offline_v1._next_step, _stream.op) adds 1 at each point, an op of many points numbered as that
many ops of one. Here a Block's points are numbered at once, their steps a float64 column with NaN
where the step is null (float_lines gives NaN for null alone: json's NaN token is left to json).
Adding k at once is adding 1 k times only while every
number met is a whole double below 2**52, so a column with any other step, or a series whose step so
far is another, is left to the op-by-op rule (None).
"""
from __future__ import annotations

import numpy

_WHOLE_BOUND = float(1 << 52)


def whole(x) -> bool:
    """Whether adding 1 to x k times gives x + k (an int or a whole float below 2**52)."""
    return type(x) in (int, float) and abs(x) < _WHOLE_BOUND and x == int(x)


def _per_path(paths: list[str], steps, counts: list[int] | None = None):
    """(path, its points' places, their steps) of each path, in first-met order (`counts`: the points
    of each of `paths`, when those are ops' paths; else one each)."""
    code: dict[str, int] = {}
    if len(set(paths)) == 1:
        yield paths[0], slice(None), steps
        return
    codes = numpy.array([code.setdefault(p, len(code)) for p in paths], numpy.int64)
    if counts is not None:
        codes = numpy.repeat(codes, counts)
    for path, c in code.items():
        where = numpy.flatnonzero(codes == c)
        yield path, where, steps[where]


def number(paths: list[str], steps, next_step: dict, counts: list[int] | None = None) -> tuple | None:
    """(steps numbered, each path's next step) of points of these paths in order (an op's points as
    ops of one), their steps (float64, NaN for null) numbered as the op-by-op rule numbers them from `next_step` (each path's
    next step so far; 0 for a path not in it). The next steps are the objects that rule leaves: a
    series' last given step (a float) + the points after it + 1, or its next step so far + its points.
    None when the rule could give another number (see the module's note). `counts`: `paths` are ops'
    paths, op k holding counts[k] points (None: a path per point)."""
    out = steps.copy()
    after = {}
    for path, where, own in _per_path(paths, steps, counts):
        null = numpy.isnan(own)
        if not null.any():
            after[path] = own[-1].item() + 1
            continue
        given, start = own[~null], next_step.get(path, 0)
        if not whole(start) or not ((numpy.abs(given) < _WHOLE_BOUND).all() and (given == numpy.floor(given)).all()):
            return None
        n = len(own)
        places = numpy.arange(n)
        last_given = numpy.maximum.accumulate(numpy.where(null, -1, places))
        base = numpy.where(last_given >= 0, own[numpy.maximum(last_given, 0)] - last_given, float(start))
        out[where] = base + places
        j = int(last_given[-1])
        after[path] = own[j].item() + (n - j) if j >= 0 else start + n
    return out, after
