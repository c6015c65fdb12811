"""Running finance statements: every statement of a batch checked first (`allow_list`), then each
run in a worker thread under a timeout; Ctrl-C interrupts it (`run_statement`).
"""

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from settings import default
from warehouse.access.allow_list import (ST, RefusedStatement, check_export_dir, check_statement, copy_target,
                                         export_root, one_line, split_statements, statement_head)
from warehouse.connection import run

DEFAULT_TIMEOUT_S = default("sql_timeout_s")  # seconds
INTERRUPT_GRACE_S = 5.0  # an interrupted statement stops within ms (measured); this is the bound


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


def run_statement(con: duckdb.DuckDBPyConnection, sql: str, *, rows: bool,
                  timeout_s: float | None) -> pl.DataFrame | None:
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
            raise StatementStuck(f"`{statement_head(sql)} ...` did not stop within {INTERRUPT_GRACE_S:.0f} s "
                                 "of its interrupt")
        if "error" in box or reason == "cancelled":
            took = time.monotonic() - started
            if reason == "timeout":
                msg = (f"`{statement_head(sql)} ...` stopped at the statement timeout ({timeout_s:g} s); ask a "
                       "narrower question, or raise it with --timeout SECONDS (or INFERLEDGER_SQL_TIMEOUT_S)")
            else:
                msg = f"`{statement_head(sql)} ...` cancelled after {took:.1f} s"
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
            check_export_dir(Path(export_dir))
        try:
            if s.type == ST.COPY:
                target = copy_target(s, export_dir)  # again, as the file system is now
                target.parent.mkdir(parents=True, exist_ok=True)
                check_export_dir(Path(export_dir))
                run_statement(con, s.query, rows=False, timeout_s=timeout_s)
                results.append(Result(s.query, None, f"copy: wrote {target}"))
            else:
                results.append(Result(s.query, run_statement(con, s.query, rows=True, timeout_s=timeout_s)))
        except duckdb.PermissionException as e:  # the sandbox said no
            raise RefusedStatement(f"refused `{statement_head(s.query)} ...`: it reaches a file outside what finance "
                                   f"access may read or write (the warehouse, its request_costs files and the export "
                                   f"directory {export_root(Path(export_dir))}): {one_line(e)}") from None
    return results
