"""The wire value of a param, other or metric: what push sends for an exact text.

Comet shows every value as text, so the destination must end up showing the
text the source showed.  A JSON number literal that a JSON parse and dump
reproduces exactly ("7", "0.1", "1e-07", "123456789012345678") goes as a
number: json.dumps of the parsed number writes the literal back verbatim.
Anything else goes as the text string: "1.50", "1e3", "-0", "true",
'["a", "b"]', "abc".  Non-finite doubles go as the comet_ml SDK sends them, the
strings "NaN", "Infinity" and "-Infinity", so every body is strict JSON
(json.dumps(..., allow_nan=False) never fails on what these return).
"""
from __future__ import annotations

import json
import math
from typing import Any

from ... import model


def wire_value(text: str | None) -> Any:
    """The value to send for a value whose exact text is `text` (None: no value)."""
    if text is None:
        return None
    if not text or text[0] not in "-0123456789":
        return text                       # cannot be a number literal: skip the parse
    try:
        number = json.loads(text)
    except (ValueError, RecursionError):
        return text
    if type(number) in (int, float) and math.isfinite(number) and json.dumps(number) == text:
        return number
    return text


def value_text(value: str | None, raw: Any) -> str | None:
    """The exact text of a param/other: the source's text; a typed value only when no text came."""
    if value is not None or raw is None or raw is model.JSON_NULL:
        return value                      # a logged null goes as JSON null, as the SDK sends None
    if isinstance(raw, float):
        return model.double_text(raw)
    return raw if isinstance(raw, str) else json.dumps(raw, sort_keys=True, ensure_ascii=False,
                                                       default=str)


def param_wire(p: model.Param | model.Other) -> Any:
    return wire_value(value_text(p.value, p.raw))


def metric_wire(m: model.Metrics, i: int) -> Any:
    """The metricValue to send for point i: the double as the SDK sends a float, unless
    the point keeps an exact text the double does not reproduce."""
    text = m.text[i]
    if text is not None:
        return wire_value(text)
    value = m.value[i]
    if value is None or math.isfinite(value):
        return value                      # json.dumps writes repr(): the canonical text
    return model.double_text(value)
