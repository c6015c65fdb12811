"""DuckDB connections of the warehouse: how a statement is run, the settings every build and
reader shares (UTC, bounded memory, the `xsum` exact sum), and SQL literals.
"""

from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from settings import default, default_duckdb_temp


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


@dataclass(frozen=True)
class DuckDBLimits:
    """What DuckDB may use: `memory_limit` (DuckDB's `2GB`), beyond which it spills to `temp_dir`.
    DuckDB takes up to 80 % of RAM by default; the marts, the publish checks and the report's
    reading of the warehouse (a GROUP BY over every request id of the day among them) are given
    this much, so their peak stops growing with the day. The defaults are the settings' declared
    ones (`duckdb_memory_limit`, `duckdb_temp`: settings/__init__.py); an entry point passes the
    resolved ones."""

    memory_limit: str = default("duckdb_memory_limit")
    temp_dir: Path = field(default_factory=default_duckdb_temp)


def bound_memory(con: duckdb.DuckDBPyConnection, limits: DuckDBLimits | None = None) -> None:
    """Cap the connection's memory at `limits` (default DuckDBLimits()), spilling beyond it."""
    limits = limits or DuckDBLimits()
    run(con, "SET memory_limit = " + sql_string(limits.memory_limit))
    run(con, "SET temp_directory = " + sql_string(limits.temp_dir))


def connect(database: str = ":memory:", *, limits: DuckDBLimits | None = None, **kwargs) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection in UTC with the `xsum` macro (exact sum of doubles), its memory
    bounded by `limits` (default DuckDBLimits())."""
    con = duckdb.connect(database, **kwargs)
    run(con, "SET TimeZone = 'UTC'")
    run(con, "SET enable_progress_bar = false")  # progress is the caller's to show
    bound_memory(con, limits)
    run(con, "CREATE OR REPLACE TEMP MACRO xsum(x) AS CAST(sum(CAST(x AS DECIMAL(38, 18))) AS DOUBLE)")
    return con


_UNITS = {"bytes": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40, "PiB": 1 << 50}


def memory_limit_bytes(con: duckdb.DuckDBPyConnection) -> float:
    """The connection's memory limit (DuckDB shows it as `1.8 GiB`)."""
    value, unit = run(con, "SELECT current_setting('memory_limit')")[0][0].split()
    return float(value) * _UNITS[unit]
