"""DuckDB's engine, loaded without the Python layer of its package.

`import duckdb` (2.x) first runs some 5,000 lines of Python for its relational
and expression API: about a fifth of what a fetch of a short run spends before it
reads anything (bench/bench_readers.py, the 10-point rows).  The index needs only
connections, SQL text and row fetches, which the compiled core `_duckdb` (the
module the package re-exports) serves by itself, with the same classes and
exceptions.  Code that uses the relational API (`con.sql`, Arrow results) imports
`duckdb` itself; the package then adds those methods to the connection class, so
connections opened here have them too.
"""
try:
    import _duckdb as duckdb
except ImportError:         # a DuckDB that keeps its core inside the package
    import duckdb  # noqa: F401
