"""The common data model: plain dataclasses, no I/O.

Every source (Comet, W&B, Neptune) normalizes what it fetched into these
shapes; the index ingests them and push reads them back.  Times are epoch
milliseconds (int) throughout; a value nobody sent stays None.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, fields
from typing import Any


class JsonNull:
    """A typed JSON null: the source logged `null` (``raw=None`` means "no type known")."""
    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "JSON_NULL"

    def __reduce__(self):
        return (JsonNull, ())


JSON_NULL = JsonNull()


@dataclass
class Param:
    name: str                  # flattened name as Comet shows it ("optimizer.lr")
    value: str | None          # the exact text the source shows (Comet: valueCurrent, verbatim)
    # The typed value, only where the source itself has types (W&B, Neptune); None where it
    # gives text only (Comet's REST), so no type is invented by parsing the text.  A logged
    # JSON null is JSON_NULL.
    raw: Any = None
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
    metadata_text: str | None = None   # the metadata string byte for byte as the source sent it
    created_at: int | None = None
    extra: dict = field(default_factory=dict)   # source-specific fields kept for push


# -- exact metric values -------------------------------------------------------
#
# A metric point keeps a DOUBLE (for SQL) and, only where that double does not
# reproduce it, the exact text the source wrote.  The double's canonical text is
# JSON's spelling of it, which is what the comet_ml SDK sends and Comet shows for
# a Python float: the shortest repr that reads back to the same double ("0.1",
# "7.0", "1e-07", "1.2345678901234568e+17"), and "NaN", "Infinity", "-Infinity"
# for the non-finite ones (the SDK's strings).  So a float point costs nothing
# extra; an integer ("7"), a long integer beyond a double ("123456789012345678"),
# a non-canonical literal ("1.50", "1e3") or a string ("abc": value NULL) keeps
# its text.

_NON_FINITE_TEXT = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")


def double_text(value: float) -> str:
    """The canonical text of a double (see above): the one definition of it."""
    if value != value:
        return "NaN"
    if value in (math.inf, -math.inf):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(float(value))


def metric_from_text(text: Any) -> tuple[float | None, str | None]:
    """(double, exact text or None) of a metric value a source gave as text.

    The double is set only for a JSON number literal or one of the SDK's non-finite
    strings; anything else is a string-valued metric (double None, text kept).
    """
    if text is None:
        return None, None
    if not isinstance(text, str):
        return metric_from_value(text)
    try:
        number = float(text)
    except ValueError:
        return None, text
    if repr(number) == text and text[-1].isdigit():   # the common case: a float the SDK logged
        return number, None         # (a finite repr ends in a digit; "nan" and "inf" do not)
    if text in _NON_FINITE_TEXT:
        return number, None
    if _JSON_NUMBER.fullmatch(text):
        return number, text
    return None, text               # "nan", " 1", "1_000", "+1", ".5": text, as sent


def metrics_from_texts(texts: list) -> tuple[list[float | None], list[str | None]]:
    """metric_from_text over a whole column, at C speed in the common case.

    A column of texts that all parse as floats is converted with map(); a text whose
    repr differs (an integer, a non-canonical literal) and the Python spellings of the
    non-finite values ("nan", "inf", which repr reproduces but JSON does not) are then
    redone one by one.  Anything unparsable sends the whole column the slow way.
    """
    try:
        values = list(map(float, texts))
    except (TypeError, ValueError):
        pairs = [metric_from_text(t) for t in texts]
        return [p[0] for p in pairs], [p[1] for p in pairs]
    exact = [None if r == t else t for r, t in zip(map(repr, values), texts)]
    odd = [i for i, t in enumerate(exact) if t is not None]
    if "nan" in texts or "inf" in texts or "-inf" in texts:
        odd += [i for i, t in enumerate(texts) if t in ("nan", "inf", "-inf")]
    for i in odd:
        values[i], exact[i] = metric_from_text(texts[i])
    return values, exact


def metric_from_value(value: Any) -> tuple[float | None, str | None]:
    """(double, exact text or None) of a metric value a source gave typed (W&B, Neptune)."""
    if type(value) is float:
        return value, None
    if isinstance(value, bool):
        return (1.0 if value else 0.0), json.dumps(value)
    if isinstance(value, int):
        return float(value), str(value)
    if isinstance(value, str):
        return metric_from_text(value)
    if value is None:
        return None, None
    number = float(value)           # NumPy scalars and the like
    return number, None


@dataclass
class Metrics:
    """Metric points as columns: one entry per point across all metric names.

    Columns instead of one object per point: a run holds millions of points and
    the index ingests them column by column.  `text` is the exact value where the
    double's canonical text (double_text) does not reproduce it, else None; a source
    that never sets it leaves it all None.
    """
    name: list[str] = field(default_factory=list)
    step: list[int | None] = field(default_factory=list)
    epoch: list[int | None] = field(default_factory=list)
    timestamp: list[int | None] = field(default_factory=list)
    value: list[float | None] = field(default_factory=list)
    context: list[str | None] = field(default_factory=list)
    text: list[str | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.text) != len(self.name):
            if self.text:
                raise ValueError(f"{len(self.text)} metric texts for {len(self.name)} points")
            self.text = [None] * len(self.name)

    def add(self, name: str, value: float | None, step: int | None = None,
            epoch: int | None = None, timestamp: int | None = None,
            context: str | None = None, text: str | None = None) -> None:
        self.name.append(name)
        self.value.append(value)
        self.step.append(step)
        self.epoch.append(epoch)
        self.timestamp.append(timestamp)
        self.context.append(context)
        self.text.append(text)

    def extend(self, more: "Metrics") -> None:
        """Append the points of `more`, column by column."""
        for column in _METRIC_COLUMNS:
            getattr(self, column).extend(getattr(more, column))

    def exact(self, i: int) -> str | None:
        """The exact text of point i (None: no value at all)."""
        text = self.text[i]
        if text is not None:
            return text
        value = self.value[i]
        return None if value is None else double_text(value)

    def __len__(self) -> int:
        return len(self.name)


_METRIC_COLUMNS = tuple(f.name for f in fields(Metrics))


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
