"""Where offline runs land: the workspace/project a run folder gets when it records none.

Offline folders often lack a workspace (W&B runs without an entity) or a project (neptune 1.x
queues). Each source gives such runs its own default workspace, so `push wandb-offline ...` and
`push neptune-offline ...` never mix them; `fetch --project WS/NAME` names them instead.

A name, once a run is in the mirror, is part of its labels, index rows and push ledger, so a
later fetch must not move it silently (that would store it twice and push it twice):
  * a mirror that already holds runs under the old shared default `offline` keeps using it for
    runs without a name (and says so), so re-fetching a folder changes nothing;
  * a run already stored under one name and now read under another is refused, before any
    snapshot is written, with the name it has (where run keys are unique beyond a project:
    W&B run ids, neptune 1.x container UUIDs; exporter and neptune-scale ids are not).
"""
from __future__ import annotations

import re

from ..errors import ExpectedError
from ..store.refs import ref_part

_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


class OfflineNameError(ExpectedError):
    """--project is malformed, or would move a stored run to another name."""


def parse_project(text: str | None) -> tuple[str, str] | None:
    """`--project WS/NAME` as (workspace, project); None when not given."""
    if text is None:
        return None
    if not _NAME_RE.match(text):
        raise OfflineNameError(f"--project {text!r}: expected WORKSPACE/PROJECT (letters, digits, . _ -)")
    ws, _, proj = text.partition("/")
    return ws, proj


def refuse_project(source: str, what: str, project: tuple[str, str] | None) -> None:
    """Sources whose data names its own project take no --project: say so rather than ignore it."""
    if project is not None:
        raise OfflineNameError(f"--project names offline runs that record no project; {source} {what} "
                         "name their own (fetch without --project)")


class OfflineNames:
    """The names one fetch gives the runs of one offline origin (refs `<ref_prefix>/WS/PROJECT`)."""

    def __init__(self, mirror, ref_prefix: str, default: tuple[str, str] | None,
                 legacy: tuple[str, str] | None = None, project: tuple[str, str] | None = None):
        """`default`: the (workspace, project) a run recording neither gets (None: runs always
        record them); `legacy`: the one older fetches gave them, kept where the mirror has it."""
        self.ref_prefix = ref_prefix.rstrip("/")
        self.project = project
        self.mirror = mirror
        self.refs = _ref_names(mirror, self.ref_prefix)
        self.legacy = bool(legacy) and any(r.startswith(f"{self.ref_prefix}/{ref_part(legacy[0])}/")
                                           for r in self.refs)
        self.default = legacy if self.legacy else default

    def note(self) -> str | None:
        if self.legacy and self.project is None:
            return (f"runs that record no workspace keep `{self.default[0]}`, as this mirror already has "
                    "them (a new mirror names them by source; --project WS/NAME names new runs)")
        return None

    def name(self, workspace: str | None, project: str | None) -> tuple[str, str]:
        """A run's (workspace, project): --project if given, else what it records, else the default."""
        if self.project is not None:
            return self.project
        default_ws, default_proj = self.default or ("", "")
        return workspace or default_ws, project or default_proj

    def check(self, runs: list[tuple[str, str, str]]) -> None:
        """Refuse (workspace, project, key) triples whose key the mirror holds under other names only.

        Only for keys unique beyond a project (W&B run ids, neptune 1.x container UUIDs): a key
        that two projects may share (an exporter's `PROJ-12`) says nothing about a rename."""
        stored = self._stored()
        clashes = [(key, sorted(stored[key])[0], (ws, proj)) for ws, proj, key in runs
                   if stored.get(key) and (ws, proj) not in stored[key]]
        if clashes:
            key, (old_ws, old_proj), (ws, proj) = clashes[0]
            more = f" (and {len(clashes) - 1} more)" if len(clashes) > 1 else ""
            raise OfflineNameError(f"run {key} is in the mirror as {old_ws}/{old_proj}, not {ws}/{proj}{more}: "
                                   f"fetching it under a new name would keep and push it twice; fetch with "
                                   f"--project {old_ws}/{old_proj}, or into a new mirror to rename")

    def _stored(self) -> dict[str, set[tuple[str, str]]]:
        """key -> the (workspace, project) names it has under this origin's refs."""
        out: dict[str, set[tuple[str, str]]] = {}
        for ref in self.refs:
            snapshot_id = self.mirror.refs.get(ref)
            if not snapshot_id:
                continue
            for label in self.mirror.snapshot(snapshot_id).manifests:
                parts = label.split("/")
                if parts[0] == "experiment" and len(parts) >= 4:
                    out.setdefault(parts[-1], set()).add((parts[1], "/".join(parts[2:-1])))
        return out


def _ref_names(mirror, prefix: str) -> list[str]:
    try:
        names = list(mirror.refs.names())
    except OSError:                   # `fetch --list` without a mirror
        return []
    return sorted(r for r in names if r.startswith(prefix + "/"))


def ref_prefix(source: str, origin: str) -> str:
    return f"{ref_part(source)}/{ref_part(origin)}"
