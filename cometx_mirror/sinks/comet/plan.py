"""What is missing at the destination: the difference between two model experiments.

`old` is what the destination already holds: the experiment as of the manifest
pushed last time (from the ledger or the destination's marker), or a partial
picture read back from the destination when a push was interrupted.  `None`
means nothing is there yet.  Resources Comet only appends to (metric points,
output) are diffed point by point / by prefix; everything else is a set-style
write and is re-sent only when it changed.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields

from ... import model

# Our marker on a destination experiment: an `others` entry (see ledger.py).
MARKER = "cometx-mirror.source"


@dataclass
class TextWrite:
    text: model.Text
    append_from: int = 0          # byte offset already at the destination (output only)


@dataclass
class ExperimentPlan:
    create: bool = False
    metric_rows: list[int] = field(default_factory=list)     # indices into exp.metrics
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
        return not (self.create or self.metric_rows or self.params or self.others or self.tags
                    or self.system or self.texts or self.assets or self.times or self.state
                    or self.archive or self.file_path)

    def summary(self) -> dict:
        return {"create": self.create, "metric_points": len(self.metric_rows),
                "params": len(self.params), "others": len(self.others), "tags": len(self.tags),
                "system": len(self.system), "texts": [t.text.kind for t in self.texts],
                "assets": len(self.assets), "times": self.times, "state": self.state,
                "archive": self.archive}


def _point_key(m: model.Metrics, i: int) -> tuple:
    # the exact text, so "7" and "7.0" or two long integers one double apart differ, and
    # NaN equals NaN (its text is "NaN" on both sides)
    return (m.name[i], m.step[i], m.epoch[i], m.timestamp[i], m.exact(i), m.context[i])


def missing_points(new: model.Metrics, old: model.Metrics | None, contextless: frozenset | None = None) -> list[int]:
    """Indices of `new` points not at the destination, as a multiset difference.

    A destination that read a series from its total-fidelity files (`contextless`, taken
    from either side's DestinationMetrics unless given) cannot know its points' contexts:
    those series are compared without context."""
    if old is None or len(old) == 0:
        return list(range(len(new)))
    if contextless is None:
        contextless = getattr(new, "contextless", frozenset()) | getattr(old, "contextless", frozenset())
    new, old = without_context(new, contextless), without_context(old, contextless)
    have = Counter(_point_key(old, i) for i in range(len(old)))
    out = []
    for i in range(len(new)):
        k = _point_key(new, i)
        if have[k] > 0:
            have[k] -= 1
        else:
            out.append(i)
    return out


def without_context(m: model.Metrics, names: frozenset) -> model.Metrics:
    """`m` with no context on the series `names` (a copy; `m` itself when there are none)."""
    if not names:
        return m
    columns = {f.name: getattr(m, f.name) for f in fields(model.Metrics)}
    columns["context"] = [None if n in names else c for n, c in zip(m.name, m.context)]
    return model.Metrics(**columns)


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
    plan.metric_rows = missing_points(new.metrics, old.metrics if old else None)

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
