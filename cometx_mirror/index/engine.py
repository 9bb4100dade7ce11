"""DuckDB's engine, loaded without the Python layer of its package.

`import duckdb` (2.x) first runs some 5,000 lines of Python for its relational
and expression API: about a fifth of what a fetch of a short run spends before it
reads anything (bench/bench_readers.py, the 10-point rows).  The index needs only
connections, SQL text and row fetches, which the compiled core `_duckdb` (the
module the package re-exports) serves by itself, with the same classes and
exceptions.  The core alone cannot scan Python objects (an Arrow table, a data
frame) nor make Arrow results: code that wants those imports the package and calls
its functions with the connection, `duckdb.sql(query, connection=con)`.
"""
try:
    import _duckdb as duckdb
except ImportError:         # a DuckDB that keeps its core inside the package
    import duckdb  # noqa: F401
