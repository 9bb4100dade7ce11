"""`check`: does a destination Comet hold everything the mirror pushed there?

The destination is read back through the same REST API a fetch uses — it is
fetched into a scratch mirror, so sampling, total-fidelity metrics and every
other habit of a real Comet are handled by the one reader we already trust —
and compared with the mirror entity by entity.  Nothing is written anywhere:
a read-only key is enough.

Which destination experiment belongs to which source experiment comes from the
push ledger, or, when the ledger is lost, from the key push derives (the same
source always lands on the same key).  What is compared is what push carries
(docs/push.md): for a W&B or Neptune source that is the Comet form push gave it.
"""
from __future__ import annotations

import io
import tempfile
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from .. import model
from ..sinks.comet import ledger as L
from ..sinks.comet import point_keys
from ..sinks.comet.client import PushError, resolve_credentials
from ..sinks.comet.experiment import REMAPPED_TYPES
from ..sinks.comet.plan import MARKER, pushable_others
from ..sources import get_normalizer
from ..sources.options import FetchOptions
from ..store.mirror import Mirror
from .fetch import run_fetch
from .push import Selected, _same_instance, select

# The entity kinds a check reports on, in the order of its table.
KINDS = ("experiments", "metrics", "params", "others", "tags", "system", "texts", "assets",
         "artifacts", "registry_models", "panels")
UNPUSHED_TEXTS = ("notes", "metadata", "requirements")     # push has no write endpoint for these


@dataclass
class CheckOptions:
    api_key: str | None = None          # destination key; never stored
    url: str | None = None
    read_data: bool = False             # download the destination's asset bytes and compare hashes
    parallel: int = 4


@dataclass
class CheckResult:
    checked: Counter = field(default_factory=Counter)      # kind -> entities compared
    differ: Counter = field(default_factory=Counter)       # kind -> entities that differ
    differences: list[dict] = field(default_factory=list)  # {kind, source, destination, detail}
    requests: int = 0

    @property
    def ok(self) -> bool:
        return not self.differences

    def add(self, kind: str, same: bool, source: str = "", destination: str = "", detail: str = "") -> None:
        self.checked[kind] += 1
        if not same:
            self.differ[kind] += 1
            self.differences.append({"kind": kind, "source": source, "destination": destination,
                                     "detail": detail})

    def as_dict(self) -> dict:
        return {"ok": self.ok, "requests": self.requests,
                "kinds": {k: {"checked": self.checked[k], "differ": self.differ[k]} for k in KINDS},
                "differences": self.differences}


def run_check(mirror: Mirror, src: str, dst: str, options: CheckOptions) -> CheckResult:
    dparts = [p for p in dst.strip("/").split("/") if p]
    if not dparts or len(dparts) > 2:
        raise PushError(f"bad destination {dst!r} (WORKSPACE or WORKSPACE/PROJECT)")
    dest_ws, proj_override = dparts[0], (dparts[1] if len(dparts) == 2 else None)
    creds = resolve_credentials(options.api_key, options.url)
    experiments, entities = select(mirror, src, None)
    whole_workspace = len([p for p in src.strip("/").split("/") if p]) == 1
    result = CheckResult()
    with tempfile.TemporaryDirectory(prefix="cometx-mirror-check-") as scratch_dir:
        scratch = Mirror.init(scratch_dir)
        dest_projects = sorted({proj_override or e.manifest.get("project") for e in experiments}
                               | {proj_override or p.manifest.get("project") for p in entities["project"]})
        paths = [dest_ws] if whole_workspace else [f"{dest_ws}/{p}" for p in dest_projects if p]
        fetch_options = FetchOptions(api_key=creds.api_key, url=creds.clientlib, parallel=options.parallel,
                                     asset_bytes=options.read_data)
        for path in paths:
            got = run_fetch(scratch, "comet", path, fetch_options)
            result.requests += got.requests
            if got.errors:
                raise PushError(f"cannot read the destination {path}: {got.errors[0]}")
        there = _destination(scratch)
        _Comparison(mirror, scratch, there, creds.root, dest_ws, proj_override, options, result) \
            .run(experiments, entities if whole_workspace else {})
    return result


def _destination(scratch: Mirror) -> dict[str, dict[str, Any]]:
    """What the scratch fetch holds: type -> {key or name -> normalized entity}."""
    out: dict[str, dict[str, Any]] = {"experiment": {}, "artifact": {}, "registry_model": {}, "panel": {}}
    for label, mid in scratch.current_manifests().items():
        manifest = scratch.get_json(mid)
        kind = manifest.get("type")
        if kind not in out:
            continue
        entity = get_normalizer(manifest["normalizer"])(scratch, manifest)
        key = entity.key if kind == "experiment" else (entity.panel_id if kind == "panel" else entity.name)
        out[kind][key] = entity
    return out


class _Comparison:
    def __init__(self, mirror, scratch, there, root, dest_ws, proj_override, options, result):
        self.mirror, self.scratch, self.there = mirror, scratch, there
        self.root, self.dest_ws, self.proj_override = root, dest_ws, proj_override
        self.options, self.result = options, result

    def run(self, experiments: list[Selected], entities: dict[str, list[Selected]]) -> None:
        ledger = L.Ledger(self.mirror.index_path)
        projects = {self.proj_override or e.manifest.get("project") for e in experiments}
        rows = ledger.load(L.destination_id(self.root, self.dest_ws, p) for p in projects if p)
        claimed: set[str] = set()
        for item in experiments:
            exp = get_normalizer(item.manifest["normalizer"])(self.mirror, item.manifest)
            proj = self.proj_override or item.manifest.get("project")
            row = rows.get((L.destination_id(self.root, self.dest_ws, proj), exp.id))
            key = row.dest_key if row else L.dest_experiment_key(self.dest_ws, proj, exp.id)
            if row is None and exp.source == "comet" and exp.key in self.there["experiment"] \
                    and key not in self.there["experiment"]:
                key = exp.key        # linked with --symlink: the destination shows the source itself
            claimed.add(key)
            got = self.there["experiment"].get(key)
            where = f"{self.dest_ws}/{proj}/{key}"
            if got is None:
                self.result.add("experiments", False, exp.id, where, "missing at the destination")
            else:
                keep_ids = not _same_instance(item.manifest.get("origin"), self.root)
                self.experiment(exp, got, where, L.asset_id_mapper(key, keep_ids))
        # extra experiments count only in the projects the source maps to: a destination
        # workspace may hold other projects (other teams', other sources')
        for key, got in sorted(self.there["experiment"].items()):
            if key not in claimed and got.project in projects:
                self.result.add("experiments", False, "", f"{got.workspace}/{got.project}/{key}",
                                "at the destination but not in the mirror")
        for kind, compare in (("artifact", self.artifact), ("registry_model", self.registry_model),
                              ("panel", self.panel)):
            for item in entities.get(kind, []):
                compare(get_normalizer(item.manifest["normalizer"])(self.mirror, item.manifest))

    # -- one experiment ----------------------------------------------------
    def experiment(self, exp: model.Experiment, got: model.Experiment, where: str,
                   asset_id_of: Callable[[model.Asset], str]) -> None:
        add = lambda kind, same, detail="": self.result.add(kind, same, exp.id, where, detail)  # noqa: E731
        head = [f"{name}: {a!r} != {b!r}" for name, a, b in (
            ("name", exp.name, got.name), ("state", exp.state, got.state),
            ("archived", exp.archived, got.archived), ("started_at", exp.started_at, got.started_at),
            ("ended_at", exp.ended_at, got.ended_at)) if a is not None and a != b]
        add("experiments", not head, "; ".join(head))
        # streamed (point_keys): neither side's points are held, only the series that differ
        missing, extra = (Counter({(name,): n for name, n in c.items()})
                          for c in point_keys.difference(exp.metrics, got.metrics))
        add("metrics", not (missing or extra), _count_detail("metric point", missing, extra))
        add("params", *_mapping_difference({p.name: p.value for p in exp.params},
                                           {p.name: p.value for p in got.params}))
        source_others = {o.name: o.value for o in pushable_others(exp)}
        dest_others = {o.name: o.value for o in got.others if o.name != MARKER}
        add("others", *_mapping_difference(source_others, dest_others))
        missing_tags = sorted(set(exp.tags) - set(got.tags))
        add("tags", not missing_tags, f"missing tags {missing_tags}" if missing_tags else "")
        system = {k: v for k, v in exp.system.items() if k != "systemMetricNames" and v not in (None, [], {})}
        add("system", *_mapping_difference(system, {k: got.system.get(k) for k in system}, extra_ok=True))
        add("texts", *self.texts(exp, got))
        add("assets", *self.assets(exp, got, asset_id_of))

    def texts(self, exp: model.Experiment, got: model.Experiment) -> tuple[bool, str]:
        dest = {t.kind: t for t in got.texts}
        problems = []
        source = {t.kind: t for t in exp.texts if t.kind not in UNPUSHED_TEXTS}
        if "stderr" in source:         # Comet keeps one output stream: stdout, then stderr
            out, err = source.pop("output", None), source.pop("stderr")
            size = (out.size if out else 0) + err.size
            have = dest.get("output")
            if have is None or have.size != size:
                problems.append(f"output: {size} bytes expected, {have.size if have else 0} there")
        for kind, t in sorted(source.items()):
            have = dest.get(kind)
            if have is None:
                problems.append(f"{kind} missing")
            elif _text_bytes(self.mirror, t) != _text_bytes(self.scratch, have):
                problems.append(f"{kind} differs ({t.size} bytes here, {have.size} there)")
        return not problems, "; ".join(problems)

    def assets(self, exp: model.Experiment, got: model.Experiment,
               asset_id_of: Callable[[model.Asset], str]) -> tuple[bool, str]:
        dest = {a.asset_id: a for a in got.assets}
        problems = []
        for a in exp.assets:
            if not (a.object_id or a.remote):
                continue                  # never fetched, so never pushed (push warns)
            have = dest.get(asset_id_of(a))
            if have is None:
                problems.append(f"{a.file_name} missing")
                continue
            if (a.file_name, a.type, a.step) != (have.file_name, have.type, have.step):
                problems.append(f"{a.file_name}: name/type/step {(have.file_name, have.type, have.step)}")
            elif not a.remote and a.size is not None and have.size != a.size:
                problems.append(f"{a.file_name}: {a.size} bytes here, {have.size} there")
            elif a.remote and have.link != a.link:
                problems.append(f"{a.file_name}: remote link differs")
            elif self.options.read_data and not a.remote and a.type not in REMAPPED_TYPES \
                    and have.object_id != a.object_id:
                problems.append(f"{a.file_name}: bytes differ")
        return not problems, "; ".join(problems[:5]) + (f" (+{len(problems) - 5} more)" if len(problems) > 5 else "")

    # -- workspace entities ------------------------------------------------
    def artifact(self, art: model.Artifact) -> None:
        got = self.there["artifact"].get(art.name)
        want = {v.version: sorted((f.path, f.size) for f in v.files) for v in art.versions}
        have = {v.version: sorted((f.path, f.size) for f in v.files) for v in (got.versions if got else [])}
        missing = [v for v in want if v not in have]
        wrong = [v for v in want if v in have and have[v] != want[v]]
        detail = "; ".join(filter(None, [f"missing versions {missing}" if missing else "",
                                         f"files differ in {wrong}" if wrong else ""]))
        self.result.add("artifacts", got is not None and not detail, art.name, f"{self.dest_ws}/{art.name}",
                        "missing at the destination" if got is None else detail)

    def registry_model(self, rm: model.RegistryModel) -> None:
        got = self.there["registry_model"].get(rm.name)
        missing = sorted({v.version for v in rm.versions} - {v.version for v in (got.versions if got else [])})
        self.result.add("registry_models", got is not None and not missing, rm.name, f"{self.dest_ws}/{rm.name}",
                        "missing at the destination" if got is None else
                        (f"missing versions {missing}" if missing else ""))

    def panel(self, panel: model.Panel) -> None:
        names = {p.name for p in self.there["panel"].values()}
        self.result.add("panels", panel.name in names, panel.name, self.dest_ws,
                        "" if panel.name in names else "missing at the destination")


# -- comparing values --------------------------------------------------------------------------
def _count_detail(what: str, missing: Counter, extra: Counter) -> str:
    parts = []
    for label, diff in (("missing", missing), ("extra", extra)):
        if diff:
            names = Counter()
            for key, n in diff.items():
                names[key[0]] += n
            total = sum(names.values())
            parts.append(f"{total} {what}{'s' if total != 1 else ''} {label} "
                         f"({', '.join(f'{k}: {v}' for k, v in names.most_common(3))})")
    return "; ".join(parts)


def _mapping_difference(want: dict, have: dict, extra_ok: bool = False) -> tuple[bool, str]:
    problems = [f"{k}: {want[k]!r} here, {have.get(k)!r} there" if k in have else f"{k} missing"
                for k in sorted(want) if have.get(k) != want[k]]
    if not extra_ok:
        problems += [f"{k} extra at the destination" for k in sorted(set(have) - set(want))]
    return not problems, "; ".join(problems[:5]) + (f" (+{len(problems) - 5} more)" if len(problems) > 5 else "")


def _text_bytes(mirror: Mirror, text: model.Text) -> bytes:
    """A text's bytes; a git patch is compared unzipped (Comet keeps it as a zip)."""
    data = mirror.objects.get_bytes(text.object_id)
    if text.kind == "git_patch" and data.startswith(b"PK"):
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            names = z.namelist()
            return z.read(names[0]) if names else b""
    return data
