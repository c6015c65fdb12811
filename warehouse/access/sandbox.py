"""Opening the published warehouse: the finance sandbox (`open_finance`, the first layer of
`warehouse.access`: DuckDB's own controls, locked), and `open_warehouse` for internal readers
(the report, check-data, the demo's printout): read-only, no sandbox, no timeout.
"""

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from warehouse.access.allow_list import TOKEN, export_root, sql_tokens, string_value
from warehouse.access.statements import DEFAULT_TIMEOUT_S, INTERRUPT_GRACE_S, Result, execute
from warehouse.connection import DuckDBLimits, bound_memory, run, sql_list, sql_string


class WarehouseFileError(FileNotFoundError):
    """The path is not a published warehouse: missing, a directory, or not a DuckDB file."""


def _connect_read_only(path: Path | str, config: dict | None = None) -> duckdb.DuckDBPyConnection:
    path = Path(path)
    if not path.exists():
        raise WarehouseFileError(f"{path}: no published warehouse here; run `make demo`, or `inferledger publish` "
                                 "after attributing a day (or set INFERLEDGER_WAREHOUSE)")
    if not path.is_file():
        raise WarehouseFileError(f"{path}: a directory, not the warehouse file; point --warehouse at the published "
                                 "inferledger.duckdb (e.g. data/warehouse/inferledger.duckdb)")
    try:
        return duckdb.connect(str(path), read_only=True, config=config or {})
    except duckdb.Error as e:
        raise WarehouseFileError(f"{path}: cannot open it as a DuckDB warehouse ({str(e).splitlines()[0]}); point "
                                 "--warehouse at the published inferledger.duckdb") from None


def open_warehouse(path: Path | str, limits: DuckDBLimits | None = None) -> duckdb.DuckDBPyConnection:
    """The published warehouse for internal readers (the report, check-data): read-only, in UTC,
    with DuckDB's memory bounded by `limits` as for the builds (`warehouse.connection`). No
    sandbox: finance's statements go through `open_finance`."""
    con = _connect_read_only(path)
    run(con, "SET TimeZone = 'UTC'")
    bound_memory(con, limits)
    return con


def _request_costs_files(con: duckdb.DuckDBPyConnection) -> list[Path] | None:
    """The Parquet files under the warehouse's `request_costs` view (its one path pattern,
    globbed by DuckDB), or None when the file has no such view."""
    rows = run(con, "SELECT sql FROM duckdb_views() WHERE NOT internal AND view_name = 'request_costs' "
                    "AND database_name = current_database()")
    if not rows:
        return None
    patterns = [v for t in sql_tokens(rows[0][0])
                if t.kind == TOKEN.string_const and (v := string_value(t)) is not None]
    if len(patterns) != 1:
        return None
    files = [Path(r[0]) for r in run(con, "SELECT file FROM glob(?) ORDER BY file", [patterns[0]])]
    odd = [f for f in files if f.is_symlink() or not f.is_file()]
    if odd:
        raise WarehouseFileError(f"{odd[0]}: not a plain file among the published request_costs files; the version "
                                 "was changed after publishing: publish again or roll back "
                                 "(`inferledger publish --list`)")
    return files


@dataclass
class FinanceSession:
    """A sandboxed, read-only session on the published warehouse (`warehouse.access`)."""

    con: duckdb.DuckDBPyConnection
    path: Path
    export_dir: Path
    timeout_s: float | None
    spill_dir: Path
    read_files: list[Path] = field(default_factory=list)
    lost: bool = False  # a statement would not stop: the connection cannot be used or closed

    def execute(self, sql: str) -> list[Result]:
        return execute(self.con, sql, self.export_dir, timeout_s=self.timeout_s)

    def protected_dirs(self) -> list[Path]:
        """Folders no `--out` file may go into: the warehouse's and those of the files it reads."""
        return sorted({p.resolve().parent for p in [self.path, *self.read_files]} | {self.spill_dir.parent.resolve()})

    def close(self) -> None:
        try:
            deadline = time.monotonic() + INTERRUPT_GRACE_S
            while not self.lost:
                try:
                    self.con.close()
                    break
                except duckdb.ResourceInUseException:  # a statement still runs (Ctrl-C between two calls)
                    if time.monotonic() > deadline:
                        raise
                    self.con.interrupt()
                    time.sleep(0.05)
        finally:
            shutil.rmtree(self.spill_dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_finance(path: Path | str, export_dir: Path | str = "exports", *, timeout_s: float | None = DEFAULT_TIMEOUT_S,
                 threads: int | None = None, limits: DuckDBLimits | None = None) -> FinanceSession:
    """Open the published warehouse for finance: read-only and sandboxed (`warehouse.access`).
    `timeout_s` bounds each statement (None: no bound); the operator's `threads` (None: DuckDB's,
    one per core) and `limits` (memory, and the folder under which the session spills in a
    folder of its own) are fixed for the session. Raises WarehouseFileError when `path` is not a
    warehouse, RefusedStatement when the export directory is a symbolic link."""
    path, exports = Path(path), export_root(Path(export_dir))
    limits = limits or DuckDBLimits()
    config = {"autoinstall_known_extensions": False, "autoload_known_extensions": False,
              "memory_limit": limits.memory_limit}
    if threads:
        config["threads"] = threads
    con = _connect_read_only(path, config)
    limits.temp_dir.mkdir(parents=True, exist_ok=True)
    spill = Path(tempfile.mkdtemp(prefix="sql-", dir=limits.temp_dir))  # this session's alone: DuckDB may write it
    try:
        files = _request_costs_files(con)
        for s in ("SET TimeZone = 'UTC'", "SET enable_progress_bar = false", "SET python_enable_replacements = false",
                  f"SET temp_directory = {sql_string(spill)}"):
            run(con, s)
        if files is not None:
            cols = [r[0] for r in run(con, "SELECT column_name FROM duckdb_columns() "
                                           "WHERE table_name = 'request_costs' AND database_name = current_database() "
                                           "ORDER BY column_index")]
            # The stored view reads a glob (a directory DuckDB would also be allowed to write);
            # this one, shadowing it, reads exactly the published files.
            run(con, f"CREATE TEMP VIEW request_costs AS SELECT {', '.join(cols)} "
                     f"FROM read_parquet({sql_list(files)})")
            run(con, f"SET allowed_paths = {sql_list(files)}")
        dirs = dict.fromkeys(str(d) + os.sep for d in (exports, exports.resolve()))
        run(con, f"SET allowed_directories = {sql_list(list(dirs))}")
        run(con, "SET enable_external_access = false")
        run(con, "SET lock_configuration = true")
    except BaseException:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)
        raise
    return FinanceSession(con, path, Path(export_dir), timeout_s, spill, files or [])


def table_catalog(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Tables and views of the warehouse with their comments."""
    return con.sql("""
        SELECT table_name AS name, 'table' AS kind, estimated_size AS rows, comment FROM duckdb_tables()
        WHERE NOT internal AND schema_name = 'main' AND database_name = current_database()
        UNION ALL
        SELECT view_name, 'view', NULL, comment FROM duckdb_views()
        WHERE NOT internal AND schema_name = 'main' AND database_name = current_database()
        ORDER BY name""").pl()
