"""What is missing at the destination: the difference between two model experiments.

`old` is what the destination already holds: the experiment as of the manifest
pushed last time (from the ledger or the destination's marker), or a partial
picture read back from the destination when a push was interrupted.  `None`
means nothing is there yet.  Resources Comet only appends to (metric points,
output) are diffed point by point / by prefix; everything else is a set-style
write and is re-sent only when it changed.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Iterator

from ... import model
from ...metric_stream import batches as metric_batches
from .point_keys import KeyBag

# Our marker on a destination experiment: an `others` entry (see ledger.py).
MARKER = "cometx-mirror.source"


@dataclass
class TextWrite:
    text: model.Text
    append_from: int = 0          # byte offset already at the destination (output only)


@dataclass
class ExperimentPlan:
    create: bool = False
    metrics: "MissingPoints" = field(default_factory=lambda: MissingPoints())
    params: list[model.Param] = field(default_factory=list)
    others: list[model.Other] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    system: dict = field(default_factory=dict)
    texts: list[TextWrite] = field(default_factory=list)
    assets: list[model.Asset] = field(default_factory=list)
    times: bool = False
    state: bool = False
    archive: bool = False
    file_path: bool = False
    warnings: list[str] = field(default_factory=list)

    def is_empty(self) -> bool:
        return not (self.create or self.metrics.count or self.params or self.others or self.tags
                    or self.system or self.texts or self.assets or self.times or self.state
                    or self.archive or self.file_path)

    def summary(self) -> dict:
        return {"create": self.create, "metric_points": self.metrics.count,
                "params": len(self.params), "others": len(self.others), "tags": len(self.tags),
                "system": len(self.system), "texts": [t.text.kind for t in self.texts],
                "assets": len(self.assets), "times": self.times, "state": self.state,
                "archive": self.archive}


@dataclass
class MissingPoints:
    """The points of `new` the destination lacks, found in one streamed pass and taken again
    batch by batch when they are sent (the stream re-reads the same objects in the same
    batches).  `rows[b]`: the rows of batch b to send, None for all of it."""
    count: int = 0
    by_name: dict = field(default_factory=dict)
    rows: list = field(default_factory=list)

    def batches(self, new: model.Metrics) -> Iterator[model.Metrics]:
        for b, batch in enumerate(metric_batches(new)):
            if b >= len(self.rows):
                raise RuntimeError("the mirror's metric points changed while they were pushed")
            rows = self.rows[b]
            if rows is None:
                yield batch
            elif rows:
                yield _take(batch, rows)


def _take(m: model.Metrics, rows: list[int]) -> model.Metrics:
    return model.Metrics(**{f.name: [getattr(m, f.name)[i] for i in rows] for f in fields(model.Metrics)})


def find_missing(new: model.Metrics, old: model.Metrics | None, contextless: frozenset | None = None) -> MissingPoints:
    """The points of `new` not at the destination (`old`), as a multiset difference, with
    `new` read a batch at a time; `old` is held as a bag of digests (point_keys).

    A destination that read a series from its total-fidelity files (`contextless`, taken
    from either side's DestinationMetrics unless given) cannot know its points' contexts:
    those series are compared without context."""
    if contextless is None:
        contextless = frozenset(getattr(new, "contextless", frozenset())) | frozenset(
            getattr(old, "contextless", frozenset()))
    bag = KeyBag.of(old, contextless=contextless) if old is not None else None
    out = MissingPoints()
    for batch in metric_batches(new):
        rows = bag.take(batch) if bag is not None and bag.keys else None
        names = batch.name if rows is None else [batch.name[i] for i in rows]
        for name in names:
            out.by_name[name] = out.by_name.get(name, 0) + 1
        out.count += len(names)
        out.rows.append(None if rows is not None and len(rows) == len(batch) else rows)
    return out


def missing_points(new: model.Metrics, old: model.Metrics | None, contextless: frozenset | None = None) -> list[int]:
    """Indices of the points of a plain `new` not in `old` (see find_missing)."""
    found = find_missing(new, old, contextless)
    rows = found.rows[0] if found.rows else []
    return list(range(len(new))) if rows is None else rows


def pushable_others(exp: model.Experiment) -> list[model.Other]:
    """The others to write: never our own marker (a mirror of a pushed experiment has one);
    the name as the `Name` other when the source keeps it elsewhere (W&B, Neptune)."""
    others = [o for o in exp.others if o.name != MARKER]
    if exp.name and not any(o.name == "Name" for o in others):
        others.insert(0, model.Other("Name", exp.name, exp.name))
    return others


def plan_experiment(new: model.Experiment, old: model.Experiment | None, *, create: bool,
                    old_texts: dict[str, bytes] | None = None,
                    dest_asset_ids: set[str] | None = None,
                    asset_id_of=lambda a: a.asset_id) -> ExperimentPlan:
    """`old_texts` maps text kind -> bytes already at the destination (output, appended only).
    `dest_asset_ids` (destination ids) replaces the asset diff when read back after a crash."""
    plan = ExperimentPlan(create=create)
    plan.metrics = find_missing(new.metrics, old.metrics if old else None)

    old_params = {p.name: (p.raw, p.value) for p in old.params} if old else {}
    plan.params = [p for p in new.params if old_params.get(p.name, object()) != (p.raw, p.value)]
    old_others = {o.name: (o.raw, o.value) for o in pushable_others(old)} if old else {}
    plan.others = [o for o in pushable_others(new)
                   if old_others.get(o.name, object()) != (o.raw, o.value)]
    old_tags = set(old.tags) if old else set()
    plan.tags = [t for t in new.tags if t not in old_tags]
    if old and set(old.tags) - set(new.tags):
        plan.warnings.append("tags removed at the source are kept at the destination")
    old_system = old.system if old else {}
    plan.system = {k: v for k, v in new.system.items()
                   if k != "systemMetricNames" and old_system.get(k) != v and v not in (None, [], {})}

    old_by_kind = {t.kind: t for t in old.texts} if old else {}
    for t in new.texts:
        if t.kind in ("notes", "metadata", "requirements"):
            continue     # requirements travel as system details; notes/metadata have no write endpoint
        before = old_by_kind.get(t.kind)
        if before is not None and before.object_id == t.object_id:
            continue
        if t.kind in ("output", "stderr"):
            # Comet only appends output: send what follows the bytes already there
            plan.texts.append(TextWrite(t, append_from=len((old_texts or {}).get(t.kind, b""))))
        else:
            plan.texts.append(TextWrite(t))

    if dest_asset_ids is not None:
        plan.assets = [a for a in new.assets if asset_id_of(a) not in dest_asset_ids
                       and (a.object_id or a.remote)]
    else:
        old_assets = {a.asset_id: (a.object_id, a.link, a.step, a.file_name) for a in old.assets} if old else {}
        plan.assets = [a for a in new.assets if (a.object_id or a.remote)
                       and old_assets.get(a.asset_id) != (a.object_id, a.link, a.step, a.file_name)]
    skipped = [a.file_name for a in new.assets if not (a.object_id or a.remote)]
    if skipped:
        plan.warnings.append(f"{len(skipped)} asset(s) were not fetched and are not pushed")

    def changed(attr):
        return old is None or getattr(old, attr) != getattr(new, attr)
    plan.times = (new.started_at is not None or new.ended_at is not None) and (
        create or changed("started_at") or changed("ended_at"))
    plan.state = new.state is not None and (create or changed("state"))
    plan.archive = new.archived and (create or not old.archived)
    plan.file_path = bool(new.extra.get("filePath")) and (
        create or old is None or old.extra.get("filePath") != new.extra.get("filePath"))
    if old and old.archived and not new.archived:
        plan.warnings.append("un-archiving is not pushed")
    return plan
