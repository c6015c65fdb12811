"""DuckDB connections of the warehouse: how a statement is run, the settings every build and
reader shares (UTC, bounded memory, the `xsum` exact sum), and SQL literals.
"""

import os
import tempfile
from pathlib import Path

import duckdb


def run(con: duckdb.DuckDBPyConnection, sql: str, params=None) -> list[tuple]:
    """Execute one statement to completion and return its rows (DuckDB 2 keeps an `execute`
    result open on the connection until it is fetched)."""
    con.execute(sql, params)
    return con.fetchall()


def sql_string(s: str | Path) -> str:
    """`s` as a SQL string literal (single quotes doubled)."""
    return "'" + str(s).replace("'", "''") + "'"


def sql_list(items: list[str | Path]) -> str:
    """`items` as a SQL list of string literals (`['a', 'b']`), as `read_parquet` takes files."""
    return "[" + ", ".join(sql_string(s) for s in items) + "]"


# DuckDB takes up to 80 % of RAM by default; the marts, the publish checks and the report's
# reading of the warehouse (a GROUP BY over every request id of the day among them) are given
# this much and spill beyond it to `DUCKDB_TEMP`, so their peak stops growing with the day.
# Not less: at 1 GB the marts of a 30 M-request day failed one build in four (an allocation
# that cannot spill); at 2 GB six of six passed.
DUCKDB_MEMORY_LIMIT = os.environ.get("INFERLEDGER_DUCKDB_MEMORY_LIMIT") or "2GB"
DUCKDB_TEMP = Path(os.environ.get("INFERLEDGER_DUCKDB_TEMP") or Path(tempfile.gettempdir()) / "inferledger-duckdb")


def bound_memory(con: duckdb.DuckDBPyConnection) -> None:
    """Cap the connection's memory at DUCKDB_MEMORY_LIMIT, spilling beyond it to DUCKDB_TEMP."""
    run(con, "SET memory_limit = " + sql_string(DUCKDB_MEMORY_LIMIT))
    run(con, "SET temp_directory = " + sql_string(DUCKDB_TEMP))


def connect(database: str = ":memory:", **kwargs) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection in UTC with the `xsum` macro (exact sum of doubles), its memory
    bounded by DUCKDB_MEMORY_LIMIT (spilling to DUCKDB_TEMP)."""
    con = duckdb.connect(database, **kwargs)
    run(con, "SET TimeZone = 'UTC'")
    run(con, "SET enable_progress_bar = false")  # progress is the caller's to show
    bound_memory(con)
    run(con, "CREATE OR REPLACE TEMP MACRO xsum(x) AS CAST(sum(CAST(x AS DECIMAL(38, 18))) AS DOUBLE)")
    return con


_UNITS = {"bytes": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40, "PiB": 1 << 50}


def memory_limit_bytes(con: duckdb.DuckDBPyConnection) -> float:
    """The connection's memory limit (DuckDB shows it as `1.8 GiB`)."""
    value, unit = run(con, "SELECT current_setting('memory_limit')")[0][0].split()
    return float(value) * _UNITS[unit]
