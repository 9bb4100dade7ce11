"""Printing rows: an aligned table for people, CSV and JSON for programs."""
from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import json
import textwrap
import uuid
from typing import Any, Iterable, Sequence

import click

MAX_CELL = 80
FLUSH_ROWS = 10_000


def _jsonable(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, (uuid.UUID, dt.timedelta)):
        return str(value)
    return str(value)


def plural(n: int, word: str, many: str | None = None) -> str:
    """ "1 manifest", "2 manifests": counts in messages read as English."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


def to_json(value: Any) -> str:
    return json.dumps(value, default=_jsonable, indent=2, ensure_ascii=False)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, (list, dict)):
        text = json.dumps(value, default=_jsonable, ensure_ascii=False)
    else:
        text = str(value)
    text = " ".join(text.split()) if "\n" in text or "\t" in text else text
    return text if len(text) <= MAX_CELL else text[:MAX_CELL - 1] + "…"


def print_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], limit: int | None = None) -> None:
    """An aligned table of the first `limit` rows; the rest are only counted (the
    table is for people; --csv and --json print everything, as it is read)."""
    rows = iter(rows)
    shown = [row for _, row in zip(range(limit), rows)] if limit is not None else list(rows)
    more = sum(1 for _ in rows)
    cells = [[_cell(v) for v in row] for row in shown]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths)).rstrip()  # noqa: E731
    click.echo(line(columns))
    click.echo(line(["-" * w for w in widths]))
    for r in cells:
        click.echo(line(r))
    total = len(shown) + more
    if more:
        click.echo(f"(the first {len(shown):,} of {total:,} rows; --csv or --json print them all)", err=True)
    else:
        click.echo(f"({plural(total, 'row')})", err=True)


def print_csv(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for n, row in enumerate(rows, 1):
        w.writerow(["" if v is None else (_jsonable(v) if not isinstance(v, (int, float, str)) else v)
                    for v in row])
        if n % FLUSH_ROWS == 0:
            click.echo(buf.getvalue(), nl=False)
            buf.seek(0)
            buf.truncate()
    click.echo(buf.getvalue(), nl=False)


def print_json_rows(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A JSON list of objects, written row by row (the same text as json.dumps(indent=2))."""
    first = True
    for row in rows:
        item = json.dumps(dict(zip(columns, row)), default=_jsonable, indent=2, ensure_ascii=False)
        click.echo(("[\n" if first else ",\n") + textwrap.indent(item, "  "), nl=False)
        first = False
    click.echo("[]" if first else "\n]")
