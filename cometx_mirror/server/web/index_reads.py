"""The page's heavy reads over a mirror's index (MirrorState): one SQL query each.

The same three functions as memory_reads.py, which answers them over the in-memory State;
reads.py cannot tell them apart."""
from __future__ import annotations


def table_stats(state, records: list[dict]) -> dict[str, dict]:
    """runId (a mirror's exp_id) -> {"params": {name: value}, "tags": [...],
    "metrics": {name: {last, min, max, points}}}."""
    ids = [e["runId"] for e in records]
    out = {i: {"params": {}, "tags": [], "metrics": {}} for i in ids}
    if not ids:
        return out
    # The wanted ids as one list parameter, joined by hash (inserting them row by row is slow).
    wanted = "JOIN (SELECT unnest(?::VARCHAR[]) AS exp_id) wanted USING (exp_id)"
    with state.connect() as con:
        for exp_id, name, value in con.execute(
                f"SELECT exp_id, name, value FROM params {wanted}", [ids]).fetchall():
            out[exp_id]["params"][name] = value
        for exp_id, tag in con.execute(
                f"SELECT exp_id, tag FROM tags {wanted} ORDER BY tag", [ids]).fetchall():
            out[exp_id]["tags"].append(tag)
        for exp_id, name, last, low, high, n in con.execute(f"""
                SELECT exp_id, name, arg_max(value, {{'s': coalesce(step, -1), 't': coalesce(epoch_ms(timestamp), 0)}}),
                       min(value), max(value), count(*)
                FROM metrics {wanted} GROUP BY exp_id, name""", [ids]).fetchall():
            out[exp_id]["metrics"][name] = {"last": last, "min": low, "max": high, "points": n}
    return out


def metric_names(state, records: list[dict]) -> list[str]:
    with state.connect() as con:
        return [r[0] for r in con.execute(
            "SELECT DISTINCT name FROM metrics WHERE list_contains(?, exp_id) ORDER BY name",
            [[e["_exp_id"] for e in records]]).fetchall()]


def series(state, records: list[dict], metric: str, by_time: bool, lo, hi, buckets: int) -> list[tuple]:
    """Per record: (points in [lo, hi], xs, ys), at most a min and a max per bucket."""
    x = "epoch_ms(timestamp)" if by_time else "step"
    out = []
    with state.connect() as con:
        for e in records:
            where = f"exp_id = ? AND name = ? AND {x} IS NOT NULL AND value IS NOT NULL"
            args: list = [e["_exp_id"], metric]
            if lo is not None:
                where += f" AND {x} >= ?"
                args.append(lo)
            if hi is not None:
                where += f" AND {x} <= ?"
                args.append(hi)
            n, x0, x1 = con.execute(f"SELECT count(*), min({x}), max({x}) FROM metrics WHERE {where}",
                                    args).fetchone()
            if not n:
                out.append((0, [], []))
                continue
            if n <= 2 * buckets:
                rows = con.execute(f"SELECT {x}, value FROM metrics WHERE {where} ORDER BY {x}, value",
                                   args).fetchall()
            else:
                width = (x1 - x0) / buckets or 1
                rows = con.execute(f"""
                    WITH p AS (SELECT {x} AS x, value, floor(({x} - ?) / ?) AS b FROM metrics WHERE {where}),
                    ends AS (SELECT b, arg_min(x, value) AS xlo, min(value) AS ylo,
                                       arg_max(x, value) AS xhi, max(value) AS yhi FROM p GROUP BY b)
                    SELECT x, y FROM (SELECT xlo AS x, ylo AS y FROM ends UNION ALL SELECT xhi, yhi FROM ends)
                    ORDER BY x, y""", [x0, width] + args).fetchall()
            out.append((n, [r[0] for r in rows], [r[1] for r in rows]))
    return out
