"""Finance access: the published warehouse, read-only, and statements that cannot write.

The file is opened with `read_only=True`, so DuckDB itself refuses writes to it. That does not
stop a statement from writing elsewhere (ATTACH of another file, COPY ... TO any path, EXPORT,
SET of a sandbox setting), so every statement is also checked by type before it runs:
queries, EXPLAIN and read-only PRAGMAs run; COPY runs only to a path inside the export
directory; everything else is refused with the reason.
"""

import re
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from warehouse.marts import bound_memory, run

ST = duckdb.StatementType
QUERY_TYPES = {ST.SELECT, ST.EXPLAIN}
READ_ONLY_PRAGMAS = {"table_info", "show_tables", "show_tables_expanded", "database_size", "version", "platform",
                     "storage_info", "show", "database_list", "functions", "collations", "metadata_info"}
ALLOWED_SETTINGS = {"timezone", "threads", "memory_limit", "calendar"}
WRITES = {
    ST.INSERT: "INSERT writes rows", ST.UPDATE: "UPDATE changes rows", ST.DELETE: "DELETE removes rows",
    ST.CREATE: "CREATE makes a table, view or other object", ST.DROP: "DROP removes an object",
    ST.ALTER: "ALTER changes an object", ST.ATTACH: "ATTACH opens (or creates) another database file",
    ST.DETACH: "DETACH changes the attached databases", ST.EXPORT: "EXPORT DATABASE writes files",
    ST.LOAD: "INSTALL/LOAD changes the extensions", ST.VACUUM: "VACUUM rewrites storage",
    ST.TRANSACTION: "transactions are not needed to read", ST.PREPARE: "PREPARE is not supported here",
    ST.EXECUTE: "EXECUTE is not supported here", ST.ANALYZE: "ANALYZE updates statistics",
    ST.EXTENSION: "extension statements change the extensions", ST.COPY_DATABASE: "COPY FROM DATABASE writes a database",
    ST.MERGE_INTO: "MERGE INTO changes rows", ST.CREATE_FUNC: "CREATE FUNCTION/MACRO makes an object",
    ST.VARIABLE_SET: "SET VARIABLE is not supported here",
}


class RefusedStatement(ValueError):
    """A statement that could write; `inferledger sql` is read-only."""


@dataclass
class Result:
    statement: str
    frame: pl.DataFrame | None  # None for statements without rows (COPY, SET)
    message: str = ""


def _top_level_to_target(sql: str) -> str | None:
    """The path of a COPY's top-level `TO '...'` (outside parentheses and strings)."""
    depth, i, target = 0, 0, None
    while i < len(sql):
        ch = sql[i]
        if ch == "'":
            j = i + 1
            while j < len(sql):
                if sql[j] == "'" and (j + 1 >= len(sql) or sql[j + 1] != "'"):
                    break
                j += 2 if sql[j] == "'" else 1
            i = j + 1
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0:
            m = re.match(r"TO\s+'((?:[^']|'')*)'", sql[i:], re.IGNORECASE)
            if m and (i == 0 or not (sql[i - 1].isalnum() or sql[i - 1] == "_")):
                target = m.group(1).replace("''", "'")
        i += 1
    return target


def check_statement(statement: "duckdb.Statement", export_dir: Path) -> None:
    """Raise RefusedStatement when `statement` could write anything."""
    text = statement.query.strip()
    head = " ".join(text.split()[:3])
    t = statement.type
    if t in QUERY_TYPES or t == ST.MULTI:
        return
    if t == ST.PRAGMA:
        m = re.match(r"PRAGMA\s+(\w+)", text, re.IGNORECASE)
        if m and m.group(1).lower() in READ_ONLY_PRAGMAS:
            return
        raise RefusedStatement(f"refused `{head} ...`: only read-only PRAGMAs run here ({', '.join(sorted(READ_ONLY_PRAGMAS))})")
    if t == ST.CALL:
        m = re.match(r"CALL\s+(\w+)", text, re.IGNORECASE)
        if m and m.group(1).lower().startswith("pragma_"):
            return
        raise RefusedStatement(f"refused `{head} ...`: only CALL pragma_...() table functions run here")
    if t == ST.SET:
        m = re.match(r"(?:SET|RESET)\s+(?:SESSION\s+|LOCAL\s+|GLOBAL\s+)?(\w+)", text, re.IGNORECASE)
        if m and m.group(1).lower() in ALLOWED_SETTINGS:
            return
        raise RefusedStatement(f"refused `{head} ...`: only these settings may change here: {', '.join(sorted(ALLOWED_SETTINGS))}")
    if t == ST.COPY:
        if re.match(r"COPY\s+[\w.\"]+\s*(\([^)]*\)\s*)?FROM\b", text, re.IGNORECASE):
            raise RefusedStatement(f"refused `{head} ...`: COPY ... FROM loads rows into a table; the warehouse is read-only")
        target = _top_level_to_target(text)
        if target is None:
            raise RefusedStatement(f"refused `{head} ...`: a COPY here must write TO '<file>' inside {export_dir}")
        resolved = (Path.cwd() / target).resolve() if not Path(target).is_absolute() else Path(target).resolve()
        if not resolved.is_relative_to(export_dir.resolve()):
            raise RefusedStatement(f"refused COPY TO '{target}': outside the export directory {export_dir.resolve()}; "
                                   f"write inside it (e.g. TO '{export_dir / Path(target).name}') or use --out FILE")
        return
    reason = WRITES.get(t, f"{t.name} statements are not read-only")
    raise RefusedStatement(f"refused `{head} ...`: {reason}; `inferledger sql` opens the warehouse read-only "
                           "(finance access). Build new tables in your own DuckDB file with ATTACH ... (READ_ONLY) of this one.")


def open_warehouse(path: Path | str) -> duckdb.DuckDBPyConnection:
    """The published warehouse, read-only, in UTC, with DuckDB's memory bounded as for the builds
    (`warehouse.marts.DUCKDB_MEMORY_LIMIT`)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no published warehouse here; run `make demo`, or `inferledger publish` "
                                "after attributing a day (or set INFERLEDGER_WAREHOUSE)")
    con = duckdb.connect(str(path), read_only=True)
    run(con, "SET TimeZone = 'UTC'")
    bound_memory(con)  # as the builds (a query may still raise it with SET memory_limit)
    return con


def split_statements(sql: str) -> list["duckdb.Statement"]:
    try:
        return duckdb.extract_statements(sql)
    except duckdb.Error as e:
        raise RefusedStatement(f"cannot parse the SQL: {e}") from None


def execute(con: duckdb.DuckDBPyConnection, sql: str, export_dir: Path) -> list[Result]:
    """Check every statement first (nothing runs when one is refused), then run them in order."""
    statements = split_statements(sql)
    for s in statements:
        check_statement(s, export_dir)
    results = []
    for s in statements:
        if s.type in QUERY_TYPES or s.type in (ST.MULTI, ST.PRAGMA, ST.CALL):
            results.append(Result(s.query, con.sql(s.query).pl()))
        else:
            if s.type == ST.COPY:
                export_dir.mkdir(parents=True, exist_ok=True)
            run(con, s.query)
            results.append(Result(s.query, None, f"{s.type.name.lower()}: done"))
    return results


def export(frame: pl.DataFrame, out: Path) -> Path:
    """Write a result as CSV or Parquet, by the file's suffix."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".csv":
        frame.write_csv(out)
    elif out.suffix.lower() == ".parquet":
        frame.write_parquet(out, compression="zstd")
    else:
        raise ValueError(f"--out {out}: use a .csv or .parquet file name")
    return out


def table_catalog(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Tables and views of the warehouse with their comments."""
    return con.sql("""
        SELECT table_name AS name, 'table' AS kind, estimated_size AS rows, comment FROM duckdb_tables()
        WHERE NOT internal AND schema_name = 'main' AND database_name = current_database()
        UNION ALL
        SELECT view_name, 'view', NULL, comment FROM duckdb_views()
        WHERE NOT internal AND schema_name = 'main' AND database_name = current_database()
        ORDER BY name""").pl()
