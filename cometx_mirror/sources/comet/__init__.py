"""Fetching from Comet: workspaces, projects, experiments, artifacts, registry models, panels.

Paths (as cometx reads them):
    WORKSPACE                       every project, artifact, registry model and panel
    WORKSPACE/PROJECT               one project
    WORKSPACE/PROJECT/EXPERIMENT    one experiment, by key or name
    WORKSPACE/artifacts[/NAME[/VERSION_OR_ALIAS]]
    WORKSPACE/model-registry[/NAME[/VERSION_OR_STAGE]]
    WORKSPACE/panels[/NAME_OR_ID]

Each project, and each kind of workspace entity, is one snapshot scope,
committed as soon as it is complete.
"""
from __future__ import annotations

import collections
import itertools
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterable

from ... import paths
from ...net.comet_auth import CredentialsError, resolve
from ...net.http import HttpError
from ...net.throttle import Throttle
from ...store import canonical
from ...store.mirror import Mirror
from ...store.refs import ref_part
from ..options import FetchOptions, FetchResult
from .. import SourceError
from . import listing, normalize  # noqa: F401  (normalize registers the normalizers)
from .experiment import GROUPS, SUBRESOURCES, AssetCache, AssetFilter, ExperimentFetcher, wanted_resources
from .query import compile_query
from .reader import CometReader
from .workspace import WorkspaceFetcher

SPECIAL = ("artifacts", "model-registry", "panels")
# -j N is N asset downloads at once, as cometx's -j is N download threads.  The JSON
# reads run ahead of them, at most N + READS_AHEAD at a time: an experiment's dozen
# reads do not depend on each other, and the next experiments' reads go out while the
# downloads of earlier ones run (up to 2N + 2 experiments are in flight), so the
# download queue never waits for an asset list.
READS_AHEAD = 3
# experiments submitted ahead of the oldest unfinished one, in multiples of those in flight
EXPERIMENTS_AHEAD = 2
RESOURCE_NAMES = set(GROUPS) | set(SUBRESOURCES) | {"project", "project_metadata", "project_notes",
                                                   "experiments"}


@dataclass
class Target:
    workspace: str | None = None
    project: str | None = None
    experiment: str | None = None
    special: str | None = None
    name: str | None = None
    version: str | None = None


def parse_path(path: str) -> Target:
    parts = paths.split(path)
    if len(parts) > 4 or (len(parts) == 4 and parts[1] not in SPECIAL):
        raise SourceError(f"cannot read the path {path!r}: use WORKSPACE[/PROJECT[/EXPERIMENT]]")
    t = Target(*(parts[:1] or [None]))
    if len(parts) >= 2 and parts[1] in SPECIAL:
        t.special = parts[1]
        t.name = parts[2] if len(parts) > 2 else None
        t.version = parts[3] if len(parts) > 3 else None
        if t.special == "panels" and t.version:
            raise SourceError(f"cannot read the path {path!r}: panels take WORKSPACE/panels[/NAME_OR_ID]")
    elif len(parts) >= 2:
        t.project = parts[1]
        t.experiment = parts[2] if len(parts) > 2 else None
    return t


def _check_resources(options: FetchOptions) -> None:
    unknown = [r for r in (*options.resources, *options.ignore) if r not in RESOURCE_NAMES]
    if unknown:
        raise SourceError(f"unknown resource {unknown[0]!r}; known: {', '.join(sorted(RESOURCE_NAMES))}")


class CometFetch:
    def __init__(self, mirror: Mirror, options: FetchOptions, commit):
        _check_resources(options)
        try:
            self.creds = resolve(options.api_key, options.url)
        except CredentialsError as e:
            raise SourceError(str(e)) from None
        self.mirror = mirror
        self.options = options
        self.commit = commit
        # connections for: -j experiments' assets, their JSON reads, and the side requests
        self.reader = CometReader(self.creds, pool_size=2 * max(1, options.parallel) + READS_AHEAD + 4)
        self.reader.http.throttle = Throttle(options.max_rps)   # paced after 429s, capped by --max-rps
        self.result = FetchResult()
        self.current = mirror.current_manifests()
        self.query = compile_query(options.query) if options.query else None
        chosen = ("assets",) if options.filename else options.resources   # --filename: assets only
        self.wanted = wanted_resources(chosen, options.ignore)
        self.skip_experiments = "experiments" in options.ignore
        project_names = {"project", "project_metadata", "project_notes"}
        self.want_project = (not chosen or bool(project_names & set(chosen))) \
            and not project_names & set(options.ignore)
        self.asset_filter = AssetFilter(options.filename, options.asset_type, options.fetch_remote,
                                        download=options.asset_bytes)

    # -- helpers -----------------------------------------------------------
    def _previous(self, label: str) -> tuple[str | None, dict | None]:
        manifest_id = self.current.get(f"comet:{label}")
        if not manifest_id or not self.mirror.objects.exists(manifest_id):
            return None, None
        return manifest_id, self.mirror.get_json(manifest_id)

    def _ref(self, *parts: str) -> str:
        return "/".join(["comet", ref_part(self.creds.origin), *(ref_part(p) for p in parts)])

    def _progress(self, event: str, **info) -> None:
        if self.options.progress:
            self.options.progress(event, **info)

    def _fail(self, what: str, error: Exception) -> None:
        self.result.failed += 1
        self.result.errors.append(f"{what}: {' '.join(str(error).split())}")
        if self.options.debug:
            raise error

    # -- entry -------------------------------------------------------------
    def run(self, path: str) -> FetchResult:
        t = parse_path(path)
        # a few independent reads (a project and its listings, its notes) go out together
        with ThreadPoolExecutor(4) as self.side:
            if t.project and not t.special:
                # the project's own first request proves the key and the names; the
                # workspace list is read only to explain a miss
                self._project(t.workspace, t.project, t.experiment)
            else:
                workspaces = self.reader.workspaces()     # also proves the key before any work
                if t.workspace is None:
                    self.result.listing = [{"workspace": w} for w in workspaces]
                    if not self.options.list_only:
                        raise SourceError("name a WORKSPACE[/PROJECT[/EXPERIMENT]] to fetch "
                                          "(`fetch --list` shows the workspaces)")
                elif t.workspace not in workspaces:
                    raise _unknown_workspace(t.workspace)
                elif t.special:
                    self._special(t)
                else:
                    self._workspace(t.workspace)
        self.result.requests = self.reader.requests
        return self.result

    def _workspace(self, workspace: str) -> None:
        projects = sorted(p["projectName"] for p in self.reader.projects(workspace))
        if self.options.list_only:
            self.result.listing += [{"path": f"{workspace}/{p}"} for p in projects]
            return
        if self.options.sync == "workspace" and any(k.startswith(f"comet:experiment/{workspace}/")
                                                    for k in self.current):
            return
        for project in projects:
            self._project(workspace, project, None)
        if not self.options.resources:
            for special in SPECIAL:
                self._special(Target(workspace, special=special))

    # -- projects and experiments ------------------------------------------
    def _project(self, workspace: str, project: str, experiment: str | None) -> None:
        project_label = f"project/{workspace}/{project}"
        prev_id, prev_project = self._previous(project_label)
        prefix = f"comet:experiment/{workspace}/{project}/"
        known = {k[len("comet:"):]: v for k, v in self.current.items() if k.startswith(prefix)}
        # --sync project and --quick may stop at the project's metadata: then it goes first,
        # alone; otherwise the experiment listing is read at the same time
        may_stop = experiment is None and bool((self.options.sync == "project" and known)
                                               or (self.options.quick and prev_project))
        meta_job = self.side.submit(self.reader.project, workspace, project)
        listing_jobs = None if may_stop else self._start_listing(workspace, project, experiment)
        meta = meta_job.result()
        if meta is None:
            if workspace not in self.reader.workspaces():
                raise _unknown_workspace(workspace)
            raise SourceError(f"unknown project {workspace}/{project}")
        if experiment is None and self.options.sync == "project" and known:
            return
        if experiment is None:     # progress: how many experiments this project lists
            self._progress("project", label=f"{workspace}/{project}", total=meta.get("numberOfExperiments"))
        ref = self._ref(workspace, project, "@project")
        if (experiment is None and self.options.quick and prev_project
                and self._unchanged_project(meta, prev_project)):
            self.result.unchanged += len(known)
            return

        found = self._finish_listing(workspace, project, experiment,
                                     listing_jobs or self._start_listing(workspace, project, experiment))
        if self.options.list_only:
            for e in found:
                name = e.get("experimentName") if self.options.use_name else None
                self.result.listing.append({"path": f"{workspace}/{project}/{name or e['experimentKey']}",
                                            "key": e["experimentKey"], "name": e.get("experimentName"),
                                            "archived": bool(e.get("archived"))})
            return
        want_project = self.want_project and not experiment   # one experiment is its own scope
        notes_job = (self.side.submit(self.reader.project_notes, meta["projectId"])
                     if want_project and meta.get("projectId") else None)
        manifests: dict[str, str] = {}
        if not self.skip_experiments:
            manifests.update(self._experiments(workspace, project, found))
        else:
            manifests.update(known)
        if want_project:
            manifests[project_label] = self.mirror.put_json({
                "type": "project", "normalizer": "comet-project/1", "source": "comet",
                "origin": self.creds.origin, "workspace": workspace, "project": project,
                "metadata": self._put(meta), "notes": self._put(notes_job.result() if notes_job else {})})
        elif prev_id:
            manifests[project_label] = prev_id
        if experiment:
            # a single experiment is its own scope: the project snapshot stays whole
            manifests = {k: v for k, v in manifests.items() if k.startswith("experiment/")}
            ref = self._ref(workspace, project, found[0]["experimentKey"])
        elif self.result.failed:
            # keep the last good manifest of experiments that failed this time
            for label, mid in known.items():
                manifests.setdefault(label, mid)
        self.commit(ref, self.creds.origin, f"{workspace}/{project}" + (f"/{experiment}" if experiment else ""),
                    manifests, {"requests": self.reader.requests})

    def _put(self, value) -> dict:
        data = canonical.dumps(value)
        return {"object": self.mirror.objects.put_bytes(data), "size": len(data)}

    def _unchanged_project(self, meta: dict, prev_project: dict) -> bool:
        prev_meta = canonical.loads(self.mirror.objects.get_bytes(prev_project["metadata"]["object"]))
        return prev_meta.get("lastUpdated") is not None and prev_meta.get("lastUpdated") == meta.get("lastUpdated") \
            and prev_meta.get("numberOfExperiments") == meta.get("numberOfExperiments")

    def _start_listing(self, workspace: str, project: str, experiment: str | None) -> list[Future]:
        """One experiment's metadata, or the first page of the project's active and archived
        experiments (Comet lists them apart), requested at once."""
        if experiment:
            return [self.side.submit(self.reader.experiment_metadata, experiment)]
        return [self.side.submit(listing.read_page, self.reader.get, workspace, project, archived, 1,
                                 listing.PAGE_SIZE) for archived in (False, True)]

    def _finish_listing(self, workspace: str, project: str, experiment: str | None,
                        jobs: list[Future]) -> Iterable[dict]:
        """A list for one experiment; for a project, an iterator that reads the next pages
        only as the experiments before them are taken."""
        if not experiment:
            return itertools.chain.from_iterable(
                listing.experiments(self.reader.get, workspace, project, archived, first=job.result())
                for archived, job in zip((False, True), jobs))
        meta = jobs[0].result()
        if meta and meta.get("workspaceName", workspace) == workspace:
            return [meta]
        every = self._finish_listing(workspace, project, None, self._start_listing(workspace, project, None))
        hit = next((e for e in every if e.get("experimentName") == experiment), None)   # not a key: a name?
        if hit is None:
            raise SourceError(f"unknown experiment {workspace}/{project}/{experiment}")
        return [hit]

    def _experiments(self, workspace: str, project: str, experiments: Iterable[dict]) -> dict[str, str]:
        if self.query:
            experiments = (e for e in experiments if self.query.matches(self.reader, e))
        if self.options.ask and self.options.confirm:
            experiments = list(experiments)     # the question needs the count
            if len(experiments) > 1 and not self.options.confirm(
                    f"fetch {len(experiments)} experiments of {workspace}/{project}?"):
                return {}
        cache = AssetCache(self.mirror, self.creds.origin)
        out: dict[str, str] = {}
        n = max(1, self.options.parallel)
        # the listing is taken only as fast as experiments finish: memory follows the work
        # in flight (and the label -> manifest map the snapshot needs), not the project's size
        ahead = EXPERIMENTS_AHEAD * (2 * n + 2)
        with ThreadPoolExecutor(n) as asset_pool, ThreadPoolExecutor(n + READS_AHEAD) as request_pool, \
                ThreadPoolExecutor(2 * n + 2) as exp_pool:
            fetcher = ExperimentFetcher(self.mirror, self.reader, cache, request_pool, asset_pool,
                                        self.wanted, self.asset_filter)
            jobs: collections.deque = collections.deque()
            for e in experiments:
                label = f"experiment/{workspace}/{project}/{e['experimentKey']}"
                prev_id, previous = self._previous(label)
                if self.options.sync == "experiment" and prev_id:
                    out[label] = prev_id
                    self.result.unchanged += 1
                    continue
                jobs.append((label, prev_id, exp_pool.submit(fetcher.fetch, e, workspace, project, previous)))
                while len(jobs) >= ahead:
                    self._collect(*jobs.popleft(), out)
            while jobs:
                self._collect(*jobs.popleft(), out)
        return out

    def _collect(self, label: str, prev_id: str | None, job: Future, out: dict[str, str]) -> None:
        try:
            got = job.result()
        except (HttpError, SourceError, OSError, ValueError) as err:
            self._fail(label.split("/", 1)[1], err)
            return
        out[label] = got.manifest_id
        status = "unchanged" if got.manifest_id == prev_id else ("new" if prev_id is None else "changed")
        setattr(self.result, status, getattr(self.result, status) + 1)
        self.result.sampled_metrics += len(got.sampled)
        for err in got.errors:
            self.result.errors.append(f"{label.split('/', 1)[1]}: {err}")
        if got.errors:
            self.result.failed += 1
        self._progress("experiment", label=label, status=status, bytes=got.bytes, manifest=got.manifest_id)

    # -- artifacts, registry, panels ---------------------------------------
    def _special(self, t: Target) -> None:
        ws = WorkspaceFetcher(self.mirror, self.reader, t.workspace)
        if t.special == "artifacts":
            names, label_kind, get = ws.artifact_names(), "artifact", ws.artifact
        elif t.special == "model-registry":
            names, label_kind, get = ws.registry_names(), "registry_model", ws.registry_model
        else:
            rows = ws.panel_rows()
            if t.name:
                rows = [r for r in rows if t.name in (str(r.get("templateId")), r.get("templateName"))]
                if not rows:
                    raise SourceError(f"unknown panel {t.workspace}/panels/{t.name}")
            if self.options.list_only:
                self.result.listing += [{"path": f"{t.workspace}/panels/{r.get('templateName')}",
                                         "id": r.get("templateId")} for r in rows]
                return
            manifests = {}
            for row in rows:
                label = f"panel/{t.workspace}/{row['templateId']}"
                try:
                    manifests[label] = self.mirror.put_json(ws.panel(row, self._previous(label)[1]))
                except (HttpError, SourceError, OSError) as err:
                    self._fail(label, err)
            self._commit_special(t, manifests)
            return
        if t.name:
            if t.name not in names:
                raise SourceError(f"unknown {t.special} entry {t.workspace}/{t.special}/{t.name}")
            names = [t.name]
        if self.options.list_only:
            self.result.listing += [{"path": f"{t.workspace}/{t.special}/{n}"} for n in names]
            return
        manifests = {}
        for name in names:
            label = f"{label_kind}/{t.workspace}/{name}"
            prev_id, previous = self._previous(label)
            try:
                manifest_id = self.mirror.put_json(get(name, previous, t.version))
            except (HttpError, SourceError, OSError) as err:
                self._fail(label, err)
                if prev_id:
                    manifests[label] = prev_id
                continue
            manifests[label] = manifest_id
            status = "unchanged" if manifest_id == prev_id else ("new" if prev_id is None else "changed")
            self._progress(label_kind, label=label, status=status)
        self._commit_special(t, manifests)

    def _commit_special(self, t: Target, manifests: dict[str, str]) -> None:
        if t.name:
            # one entry fetched: keep the others of this scope as they were
            kind = {"artifacts": "artifact/", "model-registry": "registry_model/", "panels": "panel/"}[t.special]
            prefix = f"comet:{kind}{t.workspace}/"
            for k, v in self.current.items():
                if k.startswith(prefix):
                    manifests.setdefault(k[len("comet:"):], v)
        self.commit(self._ref(t.workspace, "@" + t.special), self.creds.origin,
                    f"{t.workspace}/{t.special}", manifests, {"requests": self.reader.requests})


def _unknown_workspace(workspace: str) -> SourceError:
    return SourceError(f"unknown workspace {workspace!r} (or no access with this key)")


def fetch(mirror: Mirror, path: str, options: FetchOptions, commit) -> FetchResult:
    return CometFetch(mirror, options, commit).run(path)
