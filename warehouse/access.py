"""Finance access: the published warehouse in a DuckDB sandbox, and statements that cannot write.

Two layers (docs/warehouse.md, "Finance access"):

1. The sandbox (`open_finance`), DuckDB's own controls: the file opened `read_only`; external
   access off, with only the export directory (`allowed_directories`), the version's
   `request_costs` Parquet files (`allowed_paths`, read through a temporary view over exactly
   those files) and a private spill directory reachable; extensions neither installed nor
   loaded; Python replacement scans off; the memory limit and threads fixed by the operator;
   then `lock_configuration`, so no statement can undo any of it.
2. The allow-list (`check_statement`), on DuckDB's own tokens: queries, EXPLAIN of a query,
   read-only PRAGMAs and `CALL pragma_...()`, and COPY ... TO one new file inside the export
   directory with plain options; everything else is refused before any statement of the batch
   runs. It guards what the sandbox cannot: DuckDB may write the files it may read (the
   published Parquet files), so no COPY may name them or choose how it writes.

Every statement runs in a worker thread under a timeout; Ctrl-C interrupts it (`run_statement`).
Internal readers (the report, check-data, the demo's printout) use `open_warehouse`: read-only,
no sandbox, no timeout.
"""

import os
import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from lake.files import write_atomically
from warehouse.marts import DUCKDB_MEMORY_LIMIT, DUCKDB_TEMP, bound_memory, run

ST = duckdb.StatementType
TOKEN = duckdb.token_type
QUERY_TYPES = {ST.SELECT, ST.EXPLAIN}
READ_ONLY_PRAGMAS = {"table_info", "show_tables", "show_tables_expanded", "database_size", "version", "platform",
                     "storage_info", "show", "database_list", "functions", "collations", "metadata_info"}
# Options of a COPY that writes one file. Not here, so refused: PARTITION_BY, FILENAME_PATTERN,
# PER_THREAD_OUTPUT, FILE_SIZE_BYTES (they write a directory of files), OVERWRITE,
# OVERWRITE_OR_IGNORE, APPEND (they delete or change what is there), USE_TMP_FILE (false
# writes in place, through a hard link), RETURN_FILES, and anything new.
COPY_OPTIONS = {"format", "header", "delimiter", "delim", "sep", "quote", "escape", "nullstr", "null", "force_quote",
                "dateformat", "date_format", "timestampformat", "timestamp_format", "compression", "compression_level",
                "row_group_size", "row_group_size_bytes", "parquet_version", "array", "new_line"}
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
}
SETTINGS_FIXED = ("settings are fixed in finance sessions: times are UTC (for local time write "
                  "`ts AT TIME ZONE 'Europe/Paris'`); memory and threads are the operator's "
                  "(INFERLEDGER_DUCKDB_MEMORY_LIMIT, INFERLEDGER_SQL_THREADS)")
DEFAULT_TIMEOUT_S = 300.0
INTERRUPT_GRACE_S = 5.0  # an interrupted statement stops within ms (measured); this is the bound


class RefusedStatement(ValueError):
    """A statement the finance session does not run (it could write, or reach outside)."""


class WarehouseFileError(FileNotFoundError):
    """The path is not a published warehouse: missing, a directory, or not a DuckDB file."""


class StatementInterrupted(RuntimeError):
    """A statement stopped by its timeout (`reason` 'timeout') or by Ctrl-C ('cancelled')."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


class StatementStuck(RuntimeError):
    """A statement that did not stop within INTERRUPT_GRACE_S of its interrupt: the connection is lost."""


@dataclass
class Result:
    statement: str
    frame: pl.DataFrame | None  # None for statements without rows (COPY)
    message: str = ""


@dataclass
class _Token:
    start: int
    kind: "duckdb.token_type"
    text: str


def _tokens(sql: str) -> list[_Token]:
    """DuckDB's own tokens of `sql`, comments left out (so a comment cannot hide or fake a word)."""
    raw = duckdb.tokenize(sql)
    out = []
    for i, (start, kind) in enumerate(raw):
        if kind == TOKEN.comment:
            continue
        end = raw[i + 1][0] if i + 1 < len(raw) else len(sql)
        out.append(_Token(start, kind, sql[start:end].strip()))
    return out


def _head(text: str) -> str:
    return " ".join(text.split()[:3])


def _string_value(token: _Token) -> str | None:
    """The value of a plain `'...'` or `$tag$...$tag$` string token; None for other forms."""
    t = token.text
    if len(t) >= 2 and t[0] == "'" and t[-1] == "'":
        return t[1:-1].replace("''", "'")
    m = re.fullmatch(r"\$(\w*)\$(.*)\$\1\$", t, re.DOTALL)
    return m.group(2) if m else None


def _export_root(export_dir: Path) -> Path:
    """The export directory as an absolute path; refused when it is itself a symbolic link."""
    d = Path(os.path.abspath(export_dir))
    if d.is_symlink():
        raise RefusedStatement(f"the export directory {d} is a symbolic link (to {os.readlink(d)}); "
                               "point --export-dir at a real directory")
    return d


def symlinks_under(export_dir: Path) -> list[Path]:
    """Symbolic links inside the export directory (DuckDB could follow them out of it)."""
    d = _export_root(export_dir)
    found = []
    for root, dirs, files in os.walk(d):
        found += [Path(root) / n for n in dirs + files if (Path(root) / n).is_symlink()]
    return found


def _check_export_dir(export_dir: Path) -> None:
    links = symlinks_under(export_dir)
    if links:
        raise RefusedStatement(f"the export directory holds symbolic links ({', '.join(map(str, links[:3]))}); "
                               "nothing runs while it does: remove them")


def copy_target(statement: "duckdb.Statement", export_dir: Path) -> Path:
    """The file a `COPY ... TO` writes, checked: one new (or single-link) file inside the export
    directory, with plain options. Raises RefusedStatement otherwise."""
    text = statement.query.strip()
    toks = _tokens(text)
    depth, to = 0, None
    for i, t in enumerate(toks[1:], start=1):
        if t.kind == TOKEN.operator and t.text == "(":
            depth += 1
        elif t.kind == TOKEN.operator and t.text == ")":
            depth -= 1
        elif depth == 0 and t.text.upper() == "FROM":
            raise RefusedStatement(f"refused `{_head(text)} ...`: COPY ... FROM loads rows into a table; "
                                   "the warehouse is read-only")
        elif depth == 0 and t.text.upper() == "TO":
            to = i
            break
    if to is None or to + 1 >= len(toks) or toks[to + 1].kind != TOKEN.string_const:
        raise RefusedStatement(f"refused `{_head(text)} ...`: a COPY here writes TO '<file>' inside {_export_root(export_dir)}")
    target = _string_value(toks[to + 1])
    if target is None:
        raise RefusedStatement(f"refused COPY TO {toks[to + 1].text}: write the file name as a plain '...' string")
    rest = toks[to + 2:]
    if rest and rest[-1].text == ";":
        rest = rest[:-1]
    if rest and rest[0].text.upper() == "WITH":
        rest = rest[1:]
    if rest and not (rest[0].text == "(" and rest[-1].text == ")"):
        raise RefusedStatement(f"refused COPY TO '{target}': after the file name only options in parentheses may follow, "
                               f"e.g. (FORMAT csv, HEADER); found `{rest[0].text}`")
    depth = 0
    for prev, t in zip(rest, rest[1:], strict=False):
        depth += {"(": 1, ")": -1}.get(prev.text, 0) if prev.kind == TOKEN.operator else 0
        if depth == 1 and prev.text in ("(", ",") and t.text.lower() not in COPY_OPTIONS:
            raise RefusedStatement(f"refused COPY TO '{target}': option {t.text} is not allowed here; a COPY writes one "
                                   f"file with these options: {', '.join(sorted(o.upper() for o in COPY_OPTIONS))}")
    root = _export_root(export_dir)
    fix = f"write inside it (e.g. TO '{root / Path(target).name}') or use --out FILE"
    if "://" in target or target.startswith("~") or ".." in Path(target).parts:
        raise RefusedStatement(f"refused COPY TO '{target}': outside the export directory {root}; {fix}")
    path = Path(os.path.normpath(Path.cwd() / target))
    if path == root or not path.is_relative_to(root):
        raise RefusedStatement(f"refused COPY TO '{target}': outside the export directory {root}; {fix}")
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise RefusedStatement(f"refused COPY TO '{target}': {path} exists and is not a plain file; write a new file name")
    if path.exists() and path.stat().st_nlink > 1:
        raise RefusedStatement(f"refused COPY TO '{target}': {path} is hard-linked to another file (a published "
                               "one, perhaps); write a new file name")
    return path


def _inner_of_explain(text: str) -> str:
    """The statement an EXPLAIN [ANALYZE] [(options)] explains."""
    toks = _tokens(text)[1:]
    if toks and toks[0].text.upper() in ("ANALYZE", "ANALYSE"):
        toks = toks[1:]
    if toks and toks[0].text == "(":
        depth = 0
        for i, t in enumerate(toks):
            depth += {"(": 1, ")": -1}.get(t.text, 0) if t.kind == TOKEN.operator else 0
            if depth == 0:
                toks = toks[i + 1:]
                break
    return text[toks[0].start:] if toks else ""


def check_statement(statement: "duckdb.Statement", export_dir: Path) -> None:
    """Raise RefusedStatement unless `statement` is on the finance allow-list."""
    text = statement.query.strip()
    head, t = _head(text), statement.type
    toks = _tokens(text)
    first = toks[0].text.upper() if toks else ""
    if t == ST.SELECT:
        return
    if t == ST.MULTI and first in ("PIVOT", "UNPIVOT", "PIVOT_WIDER", "PIVOT_LONGER", "WITH", "FROM"):
        return  # a PIVOT whose columns DuckDB reads first
    if t == ST.EXPLAIN:
        inner = split_statements(_inner_of_explain(text))
        if len(inner) == 1 and inner[0].type == ST.SELECT:
            return
        raise RefusedStatement(f"refused `{head} ...`: EXPLAIN here explains a query (SELECT, WITH, FROM); "
                               "EXPLAIN ANALYZE runs what it explains")
    if t == ST.PRAGMA:
        if first == "PRAGMA" and len(toks) > 1 and toks[1].text.lower() in READ_ONLY_PRAGMAS and \
                (len(toks) < 3 or toks[2].text in ("(", ";")):
            return
        raise RefusedStatement(f"refused `{head} ...`: only read-only PRAGMAs run here ({', '.join(sorted(READ_ONLY_PRAGMAS))})")
    if t == ST.CALL:
        if first == "CALL" and len(toks) > 1 and toks[1].text.lower().startswith("pragma_"):
            return
        raise RefusedStatement(f"refused `{head} ...`: only CALL pragma_...() table functions run here")
    if t in (ST.SET, ST.VARIABLE_SET):
        raise RefusedStatement(f"refused `{head} ...`: {SETTINGS_FIXED}")
    if t == ST.COPY and first == "COPY":
        copy_target(statement, export_dir)
        return
    reason = WRITES.get(t, f"{t.name} statements are not read-only")
    raise RefusedStatement(f"refused `{head} ...`: {reason}; `inferledger sql` opens the warehouse read-only "
                           "(finance access). Build new tables in your own DuckDB file with ATTACH ... (READ_ONLY) of this one.")


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


def open_warehouse(path: Path | str) -> duckdb.DuckDBPyConnection:
    """The published warehouse for internal readers (the report, check-data): read-only, in UTC,
    with DuckDB's memory bounded as for the builds (`warehouse.marts.DUCKDB_MEMORY_LIMIT`). No
    sandbox: finance's statements go through `open_finance`."""
    con = _connect_read_only(path)
    run(con, "SET TimeZone = 'UTC'")
    bound_memory(con)
    return con


def _request_costs_files(con: duckdb.DuckDBPyConnection) -> list[Path] | None:
    """The Parquet files under the warehouse's `request_costs` view (its one path pattern,
    globbed by DuckDB), or None when the file has no such view."""
    rows = run(con, "SELECT sql FROM duckdb_views() WHERE NOT internal AND view_name = 'request_costs' "
                    "AND database_name = current_database()")
    if not rows:
        return None
    patterns = [v for t in _tokens(rows[0][0]) if t.kind == TOKEN.string_const and (v := _string_value(t)) is not None]
    if len(patterns) != 1:
        return None
    files = [Path(r[0]) for r in run(con, "SELECT file FROM glob(?) ORDER BY file", [patterns[0]])]
    odd = [f for f in files if f.is_symlink() or not f.is_file()]
    if odd:
        raise WarehouseFileError(f"{odd[0]}: not a plain file among the published request_costs files; the version "
                                 "was changed after publishing: publish again or roll back (`inferledger publish --list`)")
    return files


@dataclass
class FinanceSession:
    """A sandboxed, read-only session on the published warehouse (see the module docstring)."""
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


def sql_limits() -> tuple[str, int | None]:
    """The operator's memory limit and thread count for finance sessions (environment)."""
    threads = os.environ.get("INFERLEDGER_SQL_THREADS")
    if threads is not None and not threads.strip().isdigit():
        raise ValueError(f"INFERLEDGER_SQL_THREADS={threads!r}: write a whole number of threads, e.g. 2")
    return DUCKDB_MEMORY_LIMIT, int(threads) if threads else None


def open_finance(path: Path | str, export_dir: Path | str = "exports", *,
                 timeout_s: float | None = DEFAULT_TIMEOUT_S) -> FinanceSession:
    """Open the published warehouse for finance: read-only and sandboxed (module docstring).
    `timeout_s` bounds each statement (None: no bound). Raises WarehouseFileError when `path`
    is not a warehouse, RefusedStatement when the export directory is a symbolic link."""
    path, export_root = Path(path), _export_root(Path(export_dir))
    memory_limit, threads = sql_limits()
    config = {"autoinstall_known_extensions": False, "autoload_known_extensions": False, "memory_limit": memory_limit}
    if threads:
        config["threads"] = threads
    con = _connect_read_only(path, config)
    DUCKDB_TEMP.mkdir(parents=True, exist_ok=True)
    spill = Path(tempfile.mkdtemp(prefix="sql-", dir=DUCKDB_TEMP))  # this session's alone: DuckDB may write it
    try:
        files = _request_costs_files(con)
        for s in ("SET TimeZone = 'UTC'", "SET enable_progress_bar = false", "SET python_enable_replacements = false",
                  f"SET temp_directory = {_sql_str(spill)}"):
            run(con, s)
        if files is not None:
            cols = [r[0] for r in run(con, "SELECT column_name FROM duckdb_columns() WHERE table_name = 'request_costs' "
                                           "AND database_name = current_database() ORDER BY column_index")]
            # The stored view reads a glob (a directory DuckDB would also be allowed to write);
            # this one, shadowing it, reads exactly the published files.
            run(con, f"CREATE TEMP VIEW request_costs AS SELECT {', '.join(cols)} "
                     f"FROM read_parquet([{', '.join(_sql_str(f) for f in files)}])")
            run(con, f"SET allowed_paths = [{', '.join(_sql_str(f) for f in files)}]")
        dirs = dict.fromkeys(str(d) + os.sep for d in (export_root, export_root.resolve()))
        run(con, f"SET allowed_directories = [{', '.join(map(_sql_str, dirs))}]")
        run(con, "SET enable_external_access = false")
        run(con, "SET lock_configuration = true")
    except BaseException:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)
        raise
    return FinanceSession(con, path, Path(export_dir), timeout_s, spill, files or [])


def _sql_str(s: str | Path) -> str:
    return "'" + str(s).replace("'", "''") + "'"


def split_statements(sql: str) -> list["duckdb.Statement"]:
    try:
        return duckdb.extract_statements(sql)
    except duckdb.Error as e:
        raise RefusedStatement(f"cannot parse the SQL: {one_line(e)}") from None


def one_line(e: BaseException) -> str:
    """A DuckDB error on one line: its message and hints, without the echoed query and caret."""
    lines = []
    for line in str(e).strip().splitlines():
        if line.startswith("LINE "):
            break
        if line.strip():
            lines.append(line.strip())
    return "; ".join(lines) or type(e).__name__


def run_statement(con: duckdb.DuckDBPyConnection, sql: str, *, rows: bool, timeout_s: float | None) -> pl.DataFrame | None:
    """Run one statement in a worker thread; interrupt it after `timeout_s` seconds or on Ctrl-C
    (KeyboardInterrupt reaches only the main thread, which waits here, never inside DuckDB).
    Returns its rows when `rows`. Raises StatementInterrupted, or StatementStuck when it did not
    stop within INTERRUPT_GRACE_S of the interrupt."""
    box: dict = {}
    # The worker says when it is done: Thread.join interrupted by Ctrl-C marks a running thread
    # stopped in Python 3.11 (is_alive() then lies), an Event does not.
    done = threading.Event()

    def work():
        try:
            if rows:
                box["frame"] = con.sql(sql).pl()
            else:
                run(con, sql)
        except BaseException as e:  # handed to the main thread
            box["error"] = e
        finally:
            done.set()

    started = time.monotonic()
    reason = None
    try:
        threading.Thread(target=work, name="inferledger-sql", daemon=True).start()
        while not done.is_set():
            left = None if timeout_s is None else timeout_s - (time.monotonic() - started)
            if left is not None and left <= 0:
                reason = "timeout"
                break
            done.wait(0.1 if left is None else min(0.1, left))
    except KeyboardInterrupt:
        reason = "cancelled"
    if reason:
        # Again and again: an interrupt that lands before DuckDB starts the query is lost
        # (measured: 26 of 150 in the first 2 ms), and the query would then run on.
        deadline = time.monotonic() + INTERRUPT_GRACE_S
        while not done.is_set() and time.monotonic() < deadline:
            con.interrupt()
            done.wait(0.05)
        if not done.is_set():
            raise StatementStuck(f"`{_head(sql)} ...` did not stop within {INTERRUPT_GRACE_S:.0f} s of its interrupt")
        if "error" in box or reason == "cancelled":
            took = time.monotonic() - started
            msg = (f"`{_head(sql)} ...` stopped at the statement timeout ({timeout_s:g} s); ask a narrower question, "
                   "or raise it with --timeout SECONDS (or INFERLEDGER_SQL_TIMEOUT_S)") if reason == "timeout" else \
                  f"`{_head(sql)} ...` cancelled after {took:.1f} s"
            raise StatementInterrupted(msg, reason)
    if "error" in box:
        raise box["error"]
    return box.get("frame")


def execute(con: duckdb.DuckDBPyConnection, sql: str, export_dir: Path, *,
            timeout_s: float | None = None) -> list[Result]:
    """Check every statement first (nothing runs when one is refused), then run them in order,
    each under `timeout_s` (None: no bound). Raises RefusedStatement, StatementInterrupted, or
    the DuckDB error of the statement that failed."""
    statements = split_statements(sql)
    for s in statements:
        check_statement(s, export_dir)
    results = []
    for s in statements:
        if Path(export_dir).exists():
            _check_export_dir(Path(export_dir))
        try:
            if s.type == ST.COPY:
                target = copy_target(s, export_dir)  # again, as the file system is now
                target.parent.mkdir(parents=True, exist_ok=True)
                _check_export_dir(Path(export_dir))
                run_statement(con, s.query, rows=False, timeout_s=timeout_s)
                results.append(Result(s.query, None, f"copy: wrote {target}"))
            else:
                results.append(Result(s.query, run_statement(con, s.query, rows=True, timeout_s=timeout_s)))
        except duckdb.PermissionException as e:  # the sandbox said no
            raise RefusedStatement(f"refused `{_head(s.query)} ...`: it reaches a file outside what finance access "
                                   f"may read or write (the warehouse, its request_costs files and the export "
                                   f"directory {_export_root(Path(export_dir))}): {one_line(e)}") from None
    return results


class RefusedOutput(ValueError):
    """An --out path that could overwrite or replace a file it must not."""


def check_out(out: Path, *, force: bool, protected: list[Path]) -> Path:
    """The absolute path `--out` may write, or RefusedOutput: an existing file only with
    `force`, never a symbolic link or a hard-linked file, never inside a `protected` folder
    (real paths compared, symbolic links resolved)."""
    out = Path(os.path.abspath(out))
    if out.suffix.lower() not in (".csv", ".parquet"):
        raise RefusedOutput(f"--out {out}: use a .csv or .parquet file name")
    real = out.parent.resolve() / out.name
    for d in protected:
        if real.is_relative_to(d.resolve()):
            raise RefusedOutput(f"--out {out}: inside {d.resolve()}, which holds the warehouse, the lake or the raw "
                                "files; write somewhere else (e.g. exports/)")
    if out.is_symlink():
        raise RefusedOutput(f"--out {out}: a symbolic link (to {os.readlink(out)}); write a plain file name")
    if out.exists():
        if not out.is_file() or out.stat().st_nlink > 1:
            raise RefusedOutput(f"--out {out}: exists and is not a plain single-link file (a directory, or a file "
                                "hard-linked elsewhere); write a new file name")
        if not force:
            raise RefusedOutput(f"--out {out}: exists; write a new file name, or add --force to replace it")
    return out


EXPORT_FIX = "write the export (--out) to a disk with room"


def export(frame: pl.DataFrame, out: Path, *, force: bool = False, protected: list[Path] = ()) -> Path:
    """Write a result as CSV or Parquet (by the suffix) to a new file, or over an existing one
    with `force`: written beside it, then linked (new) or renamed (force) into place, so the
    old file's inode is never written and a half-written file is never seen."""
    out = check_out(out, force=force, protected=list(protected))

    def write(tmp: Path) -> None:
        if out.suffix.lower() == ".csv":
            frame.write_csv(tmp)
        else:
            frame.write_parquet(tmp, compression="zstd")

    try:
        write_atomically(out, write, replace=force, fix=EXPORT_FIX)  # without force: linked, never replacing
    except FileExistsError:  # `out` appeared meanwhile
        raise RefusedOutput(f"--out {out}: exists; write a new file name, or add --force to replace it") from None
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
