"""The common data model: plain dataclasses, no I/O.

Every source (Comet, W&B, Neptune) normalizes what it fetched into these
shapes; the index ingests them and push reads them back.  Times are epoch
milliseconds (int) throughout; a value nobody sent stays None.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Param:
    name: str                  # flattened name as Comet shows it ("optimizer.lr")
    value: str | None          # Comet returns values as strings
    raw: Any = None            # the value as logged (typed, possibly nested)
    source: str | None = None  # who set it (Comet: "manual" / "auto"), if known


@dataclass
class Other:
    name: str
    value: str | None
    raw: Any = None
    timestamp: int | None = None


@dataclass
class Text:
    """A textual resource kept whole as an object: html, code, output, ..."""
    kind: str                  # one of TEXT_KINDS
    object_id: str
    size: int
    name: str | None = None    # e.g. the file name of a code resource


TEXT_KINDS = ("html", "code", "output", "stderr", "graph", "git_metadata",
              "git_patch", "requirements", "notes", "metadata")


@dataclass
class Asset:
    asset_id: str
    file_name: str
    type: str                  # Comet asset type: image, audio, model-element, ...
    size: int | None
    object_id: str | None      # None when the bytes were not fetched (remote)
    step: int | None = None
    epoch: int | None = None
    context: str | None = None
    metadata: dict | None = None
    remote: bool = False
    link: str | None = None
    checksum: str | None = None   # the source's own checksum, "algo:value"
    created_at: int | None = None
    extra: dict = field(default_factory=dict)   # source-specific fields kept for push


@dataclass
class Metrics:
    """Metric points as columns: one entry per point across all metric names.

    Columns instead of one object per point: a run holds millions of points and
    the index ingests them column by column.
    """
    name: list[str] = field(default_factory=list)
    step: list[int | None] = field(default_factory=list)
    epoch: list[int | None] = field(default_factory=list)
    timestamp: list[int | None] = field(default_factory=list)
    value: list[float | None] = field(default_factory=list)
    context: list[str | None] = field(default_factory=list)

    def add(self, name: str, value: float | None, step: int | None = None,
            epoch: int | None = None, timestamp: int | None = None,
            context: str | None = None) -> None:
        self.name.append(name)
        self.value.append(value)
        self.step.append(step)
        self.epoch.append(epoch)
        self.timestamp.append(timestamp)
        self.context.append(context)

    def __len__(self) -> int:
        return len(self.name)


@dataclass
class Experiment:
    source: str                # "comet" | "wandb" | "neptune"
    workspace: str
    project: str
    key: str                   # the source's id: Comet experiment key, W&B run id, Neptune sys/id
    name: str | None = None
    created_at: int | None = None
    started_at: int | None = None
    ended_at: int | None = None
    updated_at: int | None = None
    state: str | None = None   # "running" | "finished" | "crashed" | source-specific
    archived: bool = False
    params: list[Param] = field(default_factory=list)
    others: list[Other] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    system: dict[str, Any] = field(default_factory=dict)
    texts: list[Text] = field(default_factory=list)
    assets: list[Asset] = field(default_factory=list)
    metrics: Metrics = field(default_factory=Metrics)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """Stable id in the index: unique across sources and projects."""
        return f"{self.source}:{self.workspace}/{self.project}/{self.key}"


@dataclass
class Project:
    source: str
    workspace: str
    name: str
    description: str | None = None
    notes: str | None = None
    public: bool | None = None
    created_at: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ArtifactFile:
    path: str
    size: int | None
    object_id: str | None
    remote: bool = False
    link: str | None = None
    checksum: str | None = None
    metadata: dict | None = None


@dataclass
class ArtifactVersion:
    version: str
    aliases: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    metadata: dict | None = None
    state: str | None = None
    created_at: int | None = None
    experiment_key: str | None = None   # the experiment that logged this version
    files: list[ArtifactFile] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Artifact:
    source: str
    workspace: str
    name: str
    type: str | None = None
    project: str | None = None
    description: str | None = None
    tags: list[str] = field(default_factory=list)
    metadata: dict | None = None
    versions: list[ArtifactVersion] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelVersion:
    version: str
    stages: list[str] = field(default_factory=list)
    status: str | None = None
    tags: list[str] = field(default_factory=list)
    comment: str | None = None
    experiment_key: str | None = None
    created_at: int | None = None
    object_id: str | None = None        # the version's files as one zip
    size: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class RegistryModel:
    source: str
    workspace: str
    name: str
    description: str | None = None
    notes: str | None = None
    public: bool | None = None
    tags: list[str] = field(default_factory=list)
    versions: list[ModelVersion] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Panel:
    source: str
    workspace: str
    panel_id: str
    name: str
    kind: str | None = None             # "code" | "template"
    object_id: str | None = None
    size: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
