"""Running a push: pick what a mirror path names, plan what the destination lacks, send it.

    push WORKSPACE NEW_WORKSPACE                          every project (+ artifacts, registry, panels)
    push WORKSPACE/PROJECT NEW_WORKSPACE[/NEW_PROJECT]    every experiment of a project
    push WORKSPACE/PROJECT/EXPERIMENT NEW_WORKSPACE[/NEW_PROJECT]
    push WORKSPACE/panels[/NAME] NEW_WORKSPACE

Runs under the mirror's write lock (the ledger lives in the index).  Per
experiment: the ledger row says what the destination holds; with no row, the
derived destination key and the marker say it; with neither, nothing is there.
Experiments run on a bounded thread pool; a failure is recorded and the rest go on.
"""
from __future__ import annotations

import concurrent.futures as cf
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlparse

from .. import model
from ..sinks.comet import ledger as L
from ..sinks.comet.client import CometClient, PushError, resolve_credentials
from ..sinks.comet.experiment import ExperimentWriter, destination_picture, read_marker, read_metrics
from ..sinks.comet.landed import ExcessAtDestination, excess_of
from ..sinks.comet.plan import plan_experiment
from ..sinks.comet.workspace import Destination, push_artifact, push_panel, push_registry_model
from ..sources import get_normalizer
from ..store import faultpoint
from ..store.mirror import Mirror
from . import indexer


@dataclass
class PushOptions:
    api_key: str | None = None          # destination key; never stored
    url: str | None = None              # destination url_override
    snapshot: str | None = None
    sync: bool = False
    symlink: bool = False
    dry_run: bool = False
    parallel: int = 4
    progress: Callable[..., None] | None = None
    max_rps: float | None = None        # a ceiling on requests per second (a known quota)
    timeout: float = 60.0               # seconds a request may wait for its answer
    retry_backoff: float = 0.5          # the first retry's delay (doubling, with jitter)
    debug: bool = False                 # stop at the first failure instead of going on with the rest


@dataclass
class PushResult:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    symlinked: int = 0
    failed: int = 0
    workspace_entities: int = 0
    reads: int = 0
    writes: int = 0
    retries: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    plan: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Selected:
    source: str
    label: str
    manifest_id: str
    manifest: dict


# -- selecting from the mirror ------------------------------------------------
def _manifests(mirror: Mirror, snapshot_id: str | None) -> list[tuple[str, str, str]]:
    """(source, label, manifest id) of the current state, or of one snapshot."""
    if snapshot_id:
        try:
            snap = mirror.snapshot(snapshot_id)
        except Exception:
            raise PushError(f"no snapshot {snapshot_id} in the mirror") from None
        return [(snap.source, label, mid) for label, mid in sorted(snap.manifests.items())]
    out = []
    for key, mid in sorted(mirror.current_manifests().items()):
        source, _, label = key.partition(":")
        out.append((source, label, mid))
    return out


def select(mirror: Mirror, src: str, snapshot_id: str | None) -> tuple[list[Selected], dict[str, list[Selected]]]:
    """Experiments and workspace entities (by type) that the source path names."""
    parts = [p for p in src.strip("/").split("/") if p]
    if not parts or len(parts) > 3:
        raise PushError(f"bad source path {src!r} (WORKSPACE[/PROJECT[/EXPERIMENT]] or WORKSPACE/panels[/NAME])")
    ws = parts[0]
    panels_only = len(parts) >= 2 and parts[1] == "panels"
    experiments: list[Selected] = []
    others: dict[str, list[Selected]] = {"project": [], "artifact": [], "registry_model": [], "panel": []}
    for source, label, mid in _manifests(mirror, snapshot_id):
        manifest = mirror.get_json(mid)
        if manifest.get("workspace") != ws:
            continue
        kind = manifest.get("type")
        item = Selected(source, label, mid, manifest)
        if panels_only:
            if kind == "panel" and (len(parts) == 2 or parts[2] in (label.rsplit("/", 1)[-1],
                                                                    str(manifest.get("name", "")))):
                others["panel"].append(item)
            continue
        if kind == "experiment":
            if len(parts) >= 2 and manifest.get("project") != parts[1]:
                continue
            experiments.append(item)
        elif kind == "project":
            if len(parts) >= 2 and manifest.get("project") != parts[1]:
                continue
            others["project"].append(item)
        elif kind in others and len(parts) == 1:
            others[kind].append(item)
        elif kind == "artifact" and len(parts) == 2 and manifest.get("project") == parts[1]:
            others[kind].append(item)    # W&B and Neptune artifacts belong to a project: they go with it
    if len(parts) == 3 and not panels_only:
        wanted = parts[2]
        by_key = [e for e in experiments if e.manifest.get("key") == wanted]
        if not by_key:
            by_key = [e for e in experiments if _normalize(mirror, e).name == wanted]
        experiments = by_key
        if not experiments:
            raise PushError(f"no experiment {wanted!r} in {parts[0]}/{parts[1]} in the mirror")
    if panels_only and not others["panel"]:
        raise PushError(f"no panels at {src!r} in the mirror")
    if not panels_only and not experiments and not any(others.values()):
        raise PushError(f"nothing at {src!r} in the mirror (see `cometx-mirror ls`)")
    return experiments, others


def _normalize(mirror: Mirror, item: Selected) -> Any:
    return get_normalizer(item.manifest["normalizer"])(mirror, item.manifest)


def _same_instance(origin: str | None, root: str) -> bool:
    if not origin:
        return True      # unknown: assume the ids could clash
    # a Comet manifest's origin is host[:port] without a scheme: parse it as a netloc
    a, b = (urlparse(u if "://" in u else "//" + u) for u in (origin, root))
    return (a.hostname, a.port) == (b.hostname, b.port)


# -- the run ------------------------------------------------------------------
def run_push(mirror: Mirror, src: str, dst: str, options: PushOptions) -> PushResult:
    dparts = [p for p in dst.strip("/").split("/") if p]
    if not dparts or len(dparts) > 2:
        raise PushError(f"bad destination {dst!r} (NEW_WORKSPACE or NEW_WORKSPACE/NEW_PROJECT)")
    dest_ws = dparts[0]
    dest_proj_override = dparts[1] if len(dparts) == 2 else None
    if len(src.strip("/").split("/")) == 1 and dest_proj_override:
        raise PushError("a whole workspace goes to a workspace: give NEW_WORKSPACE only")

    client = CometClient(resolve_credentials(options.api_key, options.url), max_rps=options.max_rps,
                         timeout=options.timeout, backoff=options.retry_backoff)
    result = PushResult()
    with mirror.write_lock("push"):
        indexer.refresh(mirror)       # the ledger lives in the index: bring it up to the refs first
        experiments, entities = select(mirror, src, options.snapshot)
        dest = Destination(client, dest_ws)
        dest.ensure_workspace(options.dry_run)
        run = _Run(mirror, client, dest, options, result, dest_proj_override)
        run.projects(entities["project"], experiments)
        run.experiments(experiments)
        run.workspace_entities(entities)
    c = client.counters
    result.reads, result.writes, result.retries = c.reads, c.writes, c.retries
    return result


class _Run:
    def __init__(self, mirror, client, dest, options, result, proj_override):
        self.mirror = mirror
        self.client = client
        self.dest = dest
        self.options = options
        self.result = result
        self.proj_override = proj_override
        self.ledger = L.Ledger(mirror.index_path)
        self.root = client.destination

    def _event(self, kind: str, **info) -> None:
        if self.options.progress:
            self.options.progress(kind, **info)

    def dest_project(self, manifest: dict) -> str:
        return self.proj_override or manifest.get("project")

    def projects(self, project_items: list[Selected], experiments: list[Selected]) -> None:
        """Create missing destination projects; a renamed one takes its source's description and notes."""
        sources = {p.name: p for p in (_normalize(self.mirror, item) for item in project_items)}
        if self.proj_override:     # WS/PROJ or WS/PROJ/EXP: one source project at most
            targets = {self.proj_override: next(iter(sources.values()), None)}
        else:
            names = set(sources) | {e.manifest.get("project") for e in experiments}
            targets = {name: sources.get(name) for name in names if name}
        for name, source in sorted(targets.items()):
            if self.dest.ensure_project(name, source, self.options.dry_run):
                self._event("project", label=name)

    # -- experiments --
    def experiments(self, items: list[Selected]) -> None:
        if not items:
            return
        destinations = {L.destination_id(self.root, self.dest.workspace, self.dest_project(e.manifest))
                        for e in items}
        self.rows = self.ledger.load(destinations)
        self._event("plan", total=len(items))
        workers = max(1, min(self.options.parallel, len(items)))
        with cf.ThreadPoolExecutor(workers, thread_name_prefix="push") as pool:
            futures = {pool.submit(self._one, item): item for item in items}
            for fut in cf.as_completed(futures):
                item = futures[fut]
                try:
                    status = fut.result()
                except Exception as e:      # one experiment never aborts the rest
                    if self.options.debug:
                        raise
                    status = "failed"
                    self.result.errors.append(f"{item.label}: {' '.join(str(e).split()) or type(e).__name__}")
                setattr(self.result, status, getattr(self.result, status) + 1)
                self._event("experiment", label=item.label, status=status)

    def _one(self, item: Selected) -> str:
        exp: model.Experiment = self._with_packages(_normalize(self.mirror, item))
        ws, proj = self.dest.workspace, self.dest_project(item.manifest)
        destination = L.destination_id(self.root, ws, proj)
        row = self.rows.get((destination, exp.id))
        key = row.dest_key if row else L.dest_experiment_key(ws, proj, exp.id)
        listing = self.dest.experiments(proj)
        exists = key in listing
        id_of = L.asset_id_mapper(key, not _same_instance(item.manifest.get("origin"), self.root))
        writer = ExperimentWriter(self.client, self.mirror, ws, proj, key, id_of)
        marker = {"experiment": exp.id, "manifest": item.manifest_id}

        def ledger(state: str, **detail) -> None:
            if not self.options.dry_run:
                self.ledger.write(L.LedgerRow(destination, exp.id, item.manifest_id, ws, proj, key, state, detail))

        if self.options.symlink:     # the link is the source experiment itself, under its own key
            return self._symlink(exp, item, proj, listing, lambda: self.ledger.write(L.LedgerRow(
                destination, exp.id, item.manifest_id, ws, proj, exp.key, L.SYMLINKED, {})))
        if self.options.sync and not exists and not row:
            names = {r.get("experimentName") for r in listing.values()}
            if exp.name and exp.name in names:
                return "skipped"

        create = False
        old = None
        old_texts: dict[str, bytes] = {}
        dest_assets = None
        if row and row.state == L.COMPLETE and exists:
            if row.source_manifest_id == item.manifest_id:
                return "unchanged"
            old = self._load_old(row.source_manifest_id, item)
        elif exists:
            found = read_marker(self.client, key)
            if found and found.get("manifest") == item.manifest_id:
                # no ledger row says so (lost, or an excess was found): read the appends back
                self._no_excess(exp, read_metrics(self.client, key), writer._dest_output())
                ledger(L.COMPLETE, rebuilt=True)
                return "unchanged"
            if found:
                old = self._load_old(found.get("manifest"), item)
        else:
            create = True
        before_output = None
        if old is not None:
            old_texts = {t.kind: self.mirror.objects.get_bytes(t.object_id)
                         for t in old.texts if t.kind in ("output", "stderr")}
        elif exists:       # interrupted earlier: look at what landed
            old, old_texts, dest_assets = destination_picture(self.client, key)
            before_output = old_texts["output"].decode("utf-8", "replace")
            self._no_excess(exp, old.metrics, before_output)

        plan = plan_experiment(exp, old, create=create, old_texts=old_texts, dest_asset_ids=dest_assets,
                               asset_id_of=id_of)
        for tw in list(plan.texts):    # output is append-only at Comet: only a grown tail can be sent
            done = old_texts.get(tw.text.kind)
            if done and not self.mirror.objects.get_bytes(tw.text.object_id).startswith(done):
                plan.texts.remove(tw)
                plan.warnings.append(f"{tw.text.kind} was rewritten at the source; Comet keeps the old one")
        for w in plan.warnings:
            self.result.warnings.append(f"{item.label}: {w}")
        if self.options.dry_run:
            self.result.plan.append({"experiment": exp.id, "destination": f"{ws}/{proj}/{key}", **plan.summary()})
            return "new" if create else ("unchanged" if plan.is_empty() else "updated")
        if create:
            ledger(L.INTENT)
            faultpoint.hit("push_after_intent")
            writer.create()
            faultpoint.hit("push_after_create")
            ledger(L.CREATED)
        writer.apply(exp, plan, marker, before=old.metrics if old is not None else None,
                     before_output=before_output)
        faultpoint.hit("push_after_marker")
        if writer.appends.wrote:     # appended this time: read back, so a duplicate cannot hide
            try:
                writer.appends.check_no_excess()
            except ExcessAtDestination:
                ledger(L.CREATED, excess=True)    # not complete: the next push reads it back again
                raise
        ledger(L.COMPLETE)
        return "new" if create else "updated"

    def _no_excess(self, exp: model.Experiment, held: model.Metrics, output: str) -> None:
        """Raise when the destination holds appended data beyond the mirror's."""
        excess_of(held, exp.metrics)
        mine = sum(len(self.mirror.objects.get_bytes(t.object_id).decode("utf-8", "replace"))
                   for t in exp.texts if t.kind in ("output", "stderr"))
        if len(output) > mine:
            raise ExcessAtDestination(f"the destination's output has {len(output) - mine} characters more "
                                      f"than the mirror's: written twice, or by someone else; "
                                      f"push does not remove them")

    def _with_packages(self, exp: model.Experiment) -> model.Experiment:
        """Sources that keep a requirements.txt (W&B) carry it as Comet's installed packages."""
        req = next((t for t in exp.texts if t.kind == "requirements"), None)
        if req is not None and not exp.system.get("installedPackages"):
            lines = self.mirror.objects.get_bytes(req.object_id).decode("utf-8", "replace").splitlines()
            exp.system = {**exp.system, "installedPackages": [line for line in lines if line.strip()]}
        return exp

    def _load_old(self, manifest_id: str | None, item: Selected) -> model.Experiment | None:
        """The experiment as last pushed, when its manifest is still in the store."""
        if not manifest_id or not self.mirror.objects.exists(manifest_id):
            return None
        try:
            manifest = self.mirror.get_json(manifest_id)
            return self._with_packages(get_normalizer(manifest["normalizer"])(self.mirror, manifest))
        except Exception:
            return None

    def _symlink(self, exp, item, proj, listing, record) -> str:
        if exp.source != "comet" or not _same_instance(item.manifest.get("origin"), self.root):
            raise PushError("--symlink links an experiment of the same Comet instance; this one is not")
        if exp.key in listing:
            return "unchanged"
        if self.options.dry_run:
            self.result.plan.append({"experiment": exp.id, "symlink": f"{self.dest.workspace}/{proj}"})
            return "symlinked"
        self.client.request("GET", "rest", "write/project/symlink", write=True,
                            params={"experimentKey": exp.key, "projectName": proj})
        record()
        return "symlinked"

    # -- artifacts, registry models, panels --
    def workspace_entities(self, entities: dict[str, list[Selected]]) -> None:
        items = entities["artifact"] + entities["registry_model"] + entities["panel"]
        if not items:
            return
        destination = L.destination_id(self.root, self.dest.workspace)
        sids = {i.label: f"{i.manifest.get('type')}:{i.source}:{i.label}" for i in items}
        rows = self.ledger.load([destination])
        dest_keys = self.ledger.dest_keys_by_source_key(self.root) if not self.options.dry_run else {}
        for item in items:
            row = rows.get((destination, sids[item.label]))
            if row and row.source_manifest_id == item.manifest_id and row.state == L.COMPLETE:
                continue
            if self.options.dry_run:
                self.result.plan.append({"entity": item.label, "action": "push"})
                continue
            try:
                obj = _normalize(self.mirror, item)
                done = dict(row.detail) if row else {}
                warn = lambda msg: self.result.warnings.append(msg)   # noqa: E731
                keep = not _same_instance(item.manifest.get("origin"), self.root)
                if isinstance(obj, model.Artifact):
                    done = push_artifact(self.client, self.mirror, obj, self.dest.workspace, done,
                                         dest_keys, lambda name: L.derived_id(self.dest.workspace, name), warn)
                    complete = all(v.version in done for v in obj.versions)
                elif isinstance(obj, model.RegistryModel):
                    done = push_registry_model(self.client, obj, self.dest.workspace, done, dest_keys, warn)
                    complete = all(v.version in done for v in obj.versions)
                else:
                    done = {"templateId": push_panel(self.client, self.mirror, obj, self.dest.workspace, keep,
                                                     check_first=row is None)}
                    complete = True
                self.ledger.write(L.LedgerRow(destination, sids[item.label], item.manifest_id,
                                              self.dest.workspace, "", "", L.COMPLETE if complete else L.CREATED,
                                              done))
                self.result.workspace_entities += 1
                self._event("entity", label=item.label)
            except Exception as e:
                if self.options.debug:
                    raise
                self.result.failed += 1
                self.result.errors.append(f"{item.label}: {' '.join(str(e).split()) or type(e).__name__}")
