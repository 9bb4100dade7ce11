"""Answers in Neptune's protobuf messages (the classes neptune-query ships compiled)."""
from __future__ import annotations

import math
from typing import Any

from neptune_query.generated.neptune_api.proto.neptune_pb.api.v1.model import (
    attributes_pb2, leaderboard_entries_pb2, series_values_pb2)

# our attribute types -> the backend's names (what the client maps back)
BACKEND_TYPE = {"float": "float", "int": "int", "bool": "bool", "string": "string", "datetime": "datetime",
                "string_set": "stringSet", "float_series": "floatSeries", "string_series": "stringSeries",
                "histogram_series": "histogramSeries", "file": "fileRef", "file_series": "fileRefSeries"}
PYTHON_TYPE = {v: k for k, v in BACKEND_TYPE.items()}

_ATOMIC_FIELD = {"float": "float_properties", "int": "int_properties", "bool": "bool_properties",
                 "string": "string_properties", "datetime": "datetime_properties"}


def attribute(name: str, kind: str, value: Any) -> leaderboard_entries_pb2.ProtoAttributeDTO:
    """One attribute as the leaderboard answers it; a series carries its aggregates."""
    backend = BACKEND_TYPE[kind]
    dto = leaderboard_entries_pb2.ProtoAttributeDTO(name=name, type=backend)
    if kind in _ATOMIC_FIELD:
        props = getattr(dto, _ATOMIC_FIELD[kind])
        props.attribute_name, props.attribute_type, props.value = name, backend, value
    elif kind == "string_set":
        dto.string_set_properties.attribute_name = name
        dto.string_set_properties.attribute_type = backend
        dto.string_set_properties.value.extend(value)
    elif kind == "file":
        p = dto.file_ref_properties
        p.attribute_name, p.attribute_type = name, backend
        p.path, p.sizeBytes, p.mimeType = value["path"], value["size"], value["mime"]
    else:
        _series_aggregates(dto, name, kind, backend, value)
    return dto


def _series_aggregates(dto, name: str, kind: str, backend: str, points: list) -> None:
    last = points[-1] if points else None
    if kind == "float_series":
        p = dto.float_series_properties
        p.attribute_name, p.attribute_type, p.has_preview = name, backend, False
        values = [v for _, _, v in points]
        if last:
            p.last_step, p.last = last[0], last[2]
            finite = [v for v in values if math.isfinite(v)] or values
            mean = sum(finite) / len(finite)
            p.min, p.max, p.average = min(finite), max(finite), mean
            p.variance = sum((v - mean) ** 2 for v in finite) / len(finite)
        p.config.SetInParent()
        return
    field = {"string_series": "string_series_properties", "histogram_series": "histogram_series_properties",
             "file_series": "file_ref_series_properties"}[kind]
    p = getattr(dto, field)
    p.attribute_name, p.attribute_type = name, backend
    if last:
        p.last_step = last[0]
        if kind == "string_series":
            p.last = last[2]
        elif kind == "histogram_series":
            _histogram(p.last, last[2])
        else:
            _file_ref(p.last, last[2])


def _histogram(msg, value: dict) -> None:
    msg.type = value["type"]
    msg.edges.extend(value["edges"])
    msg.values.extend(value["values"])


def _file_ref(msg, value: dict) -> None:
    msg.path, msg.sizeBytes, msg.mimeType = value["path"], value["size"], value["mime"]


def entries_result(rows: list[tuple[Any, list]], total: int) -> bytes:
    """rows: (run, [attribute dtos]) for the search answer."""
    out = leaderboard_entries_pb2.ProtoLeaderboardEntriesSearchResultDTO(matching_item_count=total)
    for run, attrs in rows:
        e = out.entries.add(experiment_id=run.sys_id, type="run", project_id=run.project.identifier,
                            organization_id=run.project.workspace, project_name=run.project.name,
                            organization_name=run.project.workspace)
        e.attributes.extend(attrs)
    return out.SerializeToString()


def query_attributes_result(rows: list[tuple[Any, list]], next_token: str | None) -> bytes:
    out = attributes_pb2.ProtoQueryAttributesResultDTO()
    for run, attrs in rows:
        e = out.entries.add(experimentId=run.sys_id, experimentShortId=run.sys_id)
        e.attributes.extend(attrs)
    if next_token:
        out.nextPage.nextPageToken = next_token
    return out.SerializeToString()


def float_series_result(answers: list[tuple[str, int, list]]) -> bytes:
    """answers: (request id, total points, [(step, ts, value)])."""
    out = series_values_pb2.ProtoFloatSeriesValuesResponseDTO()
    for request_id, total, points in answers:
        s = out.series.add(requestId=request_id)
        s.series.total_item_count = total
        for step, ts, value in points:
            s.series.values.add(timestamp_millis=ts, step=step, value=value, is_preview=False,
                                completion_ratio=1.0)
    return out.SerializeToString()


def series_result(answers: list[tuple[str, str, list, str, bool]]) -> bytes:
    """answers: (request id, kind, [(step, ts, value)], next token, finished)."""
    out = series_values_pb2.ProtoSeriesValuesResponseDTO()
    for request_id, kind, points, token, finished in answers:
        s = out.series.add(requestId=request_id)
        s.searchAfter.finished, s.searchAfter.token = finished, token
        for step, ts, value in points:
            v = s.seriesValues.values.add(timestamp_millis=ts, step=step, is_preview=False, completion_ratio=1.0)
            if kind == "string_series":
                v.object.stringValue = value
            elif kind == "histogram_series":
                _histogram(v.object.histogram, value)
            else:
                _file_ref(v.object.fileRef, value)
    return out.SerializeToString()
