"""`inferledger sql`: finance's read-only SQL on the published warehouse (warehouse.access).

Exit 0 done, 1 an error (bad SQL, no warehouse, the timeout), 2 a statement or --out refused, 130
cancelled with Ctrl-C. Loads neither Dagster nor GX.
"""

import os
import signal
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from pipelines.cli.output import console, print_frame
from settings import BY_NAME, Settings
from warehouse.access import (
    FinanceSession,
    RefusedOutput,
    RefusedStatement,
    StatementInterrupted,
    StatementStuck,
    WarehouseFileError,
    export,
    one_line,
    open_finance,
    table_catalog,
)
from warehouse.connection import DuckDBLimits


def _refused(err: Console, e: Exception) -> int:
    err.print(f"[red]refused:[/red] {escape(str(e).removeprefix('refused '))}", soft_wrap=True)
    return 2


class _Statements:
    """Runs finance's statements in `session`, prints their results and writes `--out`; each call
    returns the exit code."""

    def __init__(self, session: FinanceSession, args, settings: Settings, out: Console, err: Console):
        self.session, self.args, self.out, self.err = session, args, out, err
        lake = [settings.lake] if isinstance(settings.lake, Path) else []  # a local lake; not an object store's
        self.protected = session.protected_dirs() + lake + [settings.raw]

    def __call__(self, sql: str) -> int:
        err = self.err
        try:
            results = self.session.execute(sql)
        except RefusedStatement as e:
            return _refused(err, e)
        except StatementInterrupted as e:
            word = "cancelled" if e.reason == "cancelled" else "error"
            err.print(f"[red]{word}:[/red] {escape(str(e))}", soft_wrap=True)
            return 130 if e.reason == "cancelled" else 1
        except StatementStuck:
            self.session.lost = True
            raise
        except Exception as e:  # a DuckDB error: bad column, bad syntax, out of memory
            err.print(f"[red]error:[/red] {escape(one_line(e))}", soft_wrap=True)
            return 1
        for r in results:
            if r.frame is None:
                self.out.print(escape(r.message))
            else:
                print_frame(r.frame, self.out, max_rows=self.args.max_rows)
        last = next((r.frame for r in reversed(results) if r.frame is not None), None)
        if not self.args.out:
            return 0
        if last is None:
            err.print("[red]error:[/red] --out: the SQL returned no result to export")
            return 1
        try:
            written = export(last, Path(self.args.out), force=self.args.force, protected=self.protected)
        except RefusedOutput as e:
            return _refused(err, e)
        self.out.print(f"wrote {last.height:,} row(s) to {escape(str(written))}")
        return 0


def _timeout(args, settings: Settings, err: Console) -> float | None:
    """Seconds a statement may run: --timeout, else the setting; None (said) when not a number above 0."""
    if args.timeout is None:
        return settings.sql_timeout_s
    try:
        return BY_NAME["sql_timeout_s"].parse(args.timeout.strip())
    except ValueError:
        err.print(f"[red]error:[/red] timeout {escape(repr(args.timeout))}: write a number of seconds above 0 "
                  "(--timeout or INFERLEDGER_SQL_TIMEOUT_S)")
        return None


def _open(settings: Settings, timeout_s: float, err: Console) -> tuple[FinanceSession | None, int]:
    """The finance session, or None and the exit code. Ctrl-C while the session opens is noted,
    and acted on by the caller (DuckDB is not interrupted half way through set-up)."""
    pressed = []
    previous = signal.signal(signal.SIGINT, lambda *_: pressed.append(True))
    try:
        session = open_finance(settings.warehouse, settings.export_dir, timeout_s=timeout_s,
                               threads=settings.sql_threads,
                               limits=DuckDBLimits(settings.duckdb_memory_limit, settings.duckdb_temp))
    except (RefusedStatement, WarehouseFileError, ValueError) as e:
        if isinstance(e, RefusedStatement):
            return None, _refused(err, e)
        err.print(f"[red]error:[/red] {escape(str(e))}", soft_wrap=True)
        return None, 1
    finally:
        signal.signal(signal.SIGINT, previous)
    if pressed:
        session.close()
        err.print("[red]cancelled[/red]")
        return None, 130
    return session, 0


def cmd_sql(args, settings: Settings) -> int:
    out, err = console(), console(stderr=True)
    timeout_s = _timeout(args, settings, err)
    if timeout_s is None:
        return 1
    session, code = _open(settings, timeout_s, err)
    if session is None:
        return code
    run_sql = _Statements(session, args, settings, out, err)
    try:
        if args.command_sql is not None:
            return run_sql(args.command_sql)
        if args.file:
            f = Path(args.file)
            if not f.is_file():
                err.print(f"[red]error:[/red] {escape(str(f))}: no such SQL file")
                return 1
            return run_sql(f.read_text())
        return _repl(session, run_sql, out)
    except KeyboardInterrupt:  # Ctrl-C between statements
        err.print("[red]cancelled[/red]")
        return 130
    except StatementStuck as e:
        err.print(f"[red]error:[/red] {escape(str(e))}; the session ends")
        os._exit(1)  # DuckDB still holds the worker thread: closing the connection would wait for it
    finally:
        session.close()


def _repl(session: FinanceSession, run_sql, out: Console) -> int:
    """Statements end with ';'. Ctrl-C cancels the running statement (or the one being typed)
    and returns to the prompt."""
    out.print("inferledger sql (read-only). End statements with ';'. .tables lists the tables, .quit leaves. "
              "Ctrl-C cancels a statement.")
    buffer: list[str] = []
    while True:
        try:
            line = input("inferledger> " if not buffer else "        ...> ")
        except EOFError:
            out.print()
            return 0
        except KeyboardInterrupt:
            out.print("^C")
            buffer = []
            continue
        stripped = line.strip()
        if not buffer and stripped in (".quit", ".exit", "\\q"):
            return 0
        if not buffer and stripped == ".tables":
            print_frame(table_catalog(session.con), out, max_rows=200)
            continue
        buffer.append(line)
        if stripped.endswith(";"):
            try:
                run_sql("\n".join(buffer))
            except KeyboardInterrupt:  # while results print: back to the prompt
                out.print("^C")
            buffer = []
