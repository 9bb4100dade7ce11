"""export-index DEST: the index as Parquet (sync/export_index.py)."""
from __future__ import annotations

import click

from ..sync import export_index as export_index_lib
from .base import expected_errors, main, mirror_option, open_mirror
from .output import plural


@main.command("export-index")
@click.argument("dest")
@mirror_option
@expected_errors
def export_index_cmd(dest: str, mirror_path: str) -> None:
    """Write every index table as Parquet into DEST (a folder or s3://BUCKET/PREFIX).

    \b
    Metrics are partitioned by source/workspace/project (Hive-style folders).
    Run it again to update DEST: only the parts whose rows changed are written.
    """
    r = export_index_lib.export_index(open_mirror(mirror_path), dest)
    click.echo(f"exported {plural(r.tables, 'table')} ({plural(r.partitions, 'metric partition')}) to {r.dest}: "
               f"wrote {plural(len(r.written), 'file')} ({plural(r.written_bytes, 'byte')}), "
               f"{plural(r.unchanged, 'part')} unchanged, removed {plural(r.removed, 'old file')}")
