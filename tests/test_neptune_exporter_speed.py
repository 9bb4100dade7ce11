"""neptune-exporter reader: the fetch's fold takes its chunks of float points from what the store saw
of them (exporter._float_summary) instead of decoding them again; rows stay what decoding gives."""
from __future__ import annotations

from neptune_fixtures import q, row, sanitize, ts, write_part

from cometx_mirror.sources.neptune import exporter
from cometx_mirror.sources.options import FetchOptions
from cometx_mirror.store.mirror import Mirror
from cometx_mirror.sync import indexer
from cometx_mirror.sync.fetch import run_fetch

TABLES = ("experiments", "params", "others", "tags", "metrics", "texts", "assets", "artifact_files")


def _rows(mirror) -> dict:
    return {t: sorted(map(str, q(mirror, f"SELECT * FROM {t}"))) for t in TABLES}


def _fetch(path, root):
    mirror = Mirror.init(root)
    result = run_fetch(mirror, "neptune", str(path), FetchOptions())
    assert result.failed == 0
    return mirror


def test_summarized_chunks_fold_as_decoded_ones(exporter_folder, tmp_path, monkeypatch):
    # RUN-4: float points in chunks of their own, then a series that began as a string gets a float
    pdir = exporter_folder / "data" / sanitize("ws/proj")
    write_part(pdir, "RUN-4", 0, [row("RUN-4", "sys/id", "string", string_value="RUN-4")]
               + [row("RUN-4", f"m/{i % 3}", "float_series", step=i, ts=ts(300 if i == 4 else i), float_value=i / 7)
                  for i in range(12)]   # the latest time in a chunk of float points only
               + [row("RUN-4", "m/text", "string_series", step=0, ts=ts(20), string_value="a"),
                  row("RUN-4", "m/x", "float_series", step=1, ts=ts(21), float_value=0.5),
                  row("RUN-4", "m/x", "float_series", step=2, ts=None, float_value=1.5),
                  row("RUN-4", "m/text", "float_series", step=3, ts=ts(22), float_value=2.5)])
    monkeypatch.setattr(exporter, "CHUNK_ROWS", 2)     # many chunks, most of them float points only
    summarized = []
    real = exporter._summarized_chunk
    monkeypatch.setattr(exporter, "_summarized_chunk", lambda *a: summarized.append(real(*a)) or summarized[-1])
    fast = _fetch(exporter_folder, tmp_path / "fast")
    assert True in summarized and False in summarized    # taken, and refused for m/text's float point
    rows = _rows(fast)
    assert q(fast, "SELECT count(*) FROM metrics m JOIN experiments e USING (exp_id) "
                   "WHERE e.experiment_key = 'RUN-4'") == [(12 + 2,)]   # m/text stays a string series
    monkeypatch.setattr(exporter, "_float_summary", lambda pa, pc, batch: None)
    assert _rows(_fetch(exporter_folder, tmp_path / "slow")) == rows
    indexer.rebuild(fast)                             # a reindex decodes every chunk
    assert _rows(fast) == rows
