"""`inferledger backfill`: every day of a range (ingest, attribute, marts), `--parallel` days at a
time, then one publish. Days done are recorded in `<lake>/_backfills/`, so a rerun of the same
range resumes where an interrupted one stopped (`--restart` to redo every day)."""

import json
import multiprocessing
import os
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from lake.raw_store import delivered as raw_delivered
from lake.store import Lake
from pipelines.cli.output import console
from pipelines.cli.runs import prepare_or_exit, run_publish
from pipelines.location import code_location
from pipelines.midnight import previous_day_stale
from pipelines.runner import RunFailed, check_first_day, day_steps, instance, prepare, run_steps, where_runs_are
from settings import Settings

DayResult = tuple[date, str | None, float]  # day, error or None, seconds


def _backfill_day(day: date, settings: Settings, dagster_home: str | None) -> DayResult:
    """One day of a backfill, in a worker process (or this one)."""
    if dagster_home:
        os.environ["DAGSTER_HOME"] = dagster_home
    started = time.perf_counter()
    inst = instance()
    try:
        sites = prepare(settings, day, inst)
        run_steps(code_location(settings), day_steps(day, sites), inst, settings=settings,
                  tags={"inferledger/command": "backfill", "inferledger/date": day.isoformat()})
    except (RunFailed, ValueError) as e:
        return day, str(e), time.perf_counter() - started
    return day, None, time.perf_counter() - started


@contextmanager
def _day_results(days: list[date], settings: Settings, parallel: int) -> Iterator[Iterator[DayResult]]:
    """The results of `days` as they finish: here one after the other, or `parallel` worker
    processes at once (spawned: Polars, DuckDB and GX hold threads of their own)."""
    home = os.environ.get("DAGSTER_HOME")
    if parallel == 1:
        yield (_backfill_day(d, settings, home) for d in days)
        return
    pool = ProcessPoolExecutor(max_workers=parallel, mp_context=multiprocessing.get_context("spawn"))
    try:
        yield (f.result() for f in as_completed([pool.submit(_backfill_day, d, settings, home) for d in days]))
    finally:
        pool.shutdown(cancel_futures=True)


def _midnight_sweep(days: list[date], settings: Settings, out: Console) -> list[tuple[date, str]]:
    """Days run in parallel may have been attributed before the next day's request log was
    ingested: every day before one of `days` whose log holds requests in flight at its midnight
    is attributed again, in order (`pipelines.midnight`). Returns the days that failed."""
    lake, failed = Lake(settings.lake), []
    stale = [d - timedelta(days=1) for d in days if previous_day_stale(lake, d, changed_only=False)]
    if stale:
        out.print(f"attributing again {len(stale)} day(s) with requests in flight at their midnight: "
                  f"{', '.join(d.isoformat() for d in stale)}")
    inst = instance()
    for day in stale:
        try:
            run_steps(code_location(settings), [("attribute_day", day.isoformat(), None)], inst, settings=settings,
                      tags={"inferledger/command": "backfill", "inferledger/date": day.isoformat()})
        except RunFailed as e:
            out.print(f"[red]failed:[/red] {day}: {escape(str(e))}", soft_wrap=True)
            failed.append((day, str(e)))
    return failed


def _todo(args, settings: Settings, state_file: Path, out: Console) -> tuple[list[date], set[str], list[date]]:
    """The days to run, those an earlier run of the range did, and those without a raw folder."""
    done: set[str] = set()
    lake = Lake(settings.lake)
    if lake.exists(state_file) and not args.restart:
        done = set(json.loads(lake.read_text(state_file)).get("done", []))
    first, last = args.date_from, args.date_to
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    missing = [d for d in days if not raw_delivered(settings.raw, d)]
    if missing:
        out.print(f"[yellow]skipped[/yellow] {len(missing)} day(s) with no raw folder: "
                  f"{', '.join(d.isoformat() for d in missing[:10])}{' ...' if len(missing) > 10 else ''}")
    if done & {d.isoformat() for d in days}:
        out.print(f"resuming: {len(done)} day(s) already done by an earlier run of this backfill ({state_file})")
    return [d for d in days if d.isoformat() not in done and d not in missing], done, missing


def cmd_backfill(args, settings: Settings) -> int:
    out = console()
    first, last = args.date_from, args.date_to
    if last < first:
        out.print(f"[red]error:[/red] --to {last} is before --from {first}")
        return 2
    if args.parallel < 1:
        out.print("[red]error:[/red] --parallel must be 1 or more")
        return 2
    try:
        check_first_day(settings, first)
    except RunFailed as e:
        out.print(f"[red]error:[/red] {escape(str(e))}", soft_wrap=True)
        return 2
    lake = Lake(settings.lake)
    state_file = lake.backfill_state(first, last)
    todo, done, missing = _todo(args, settings, state_file, out)
    prepare_or_exit(settings, None, out, instance())  # inventory valid, sites registered, before any worker starts
    failed: list[tuple[date, str]] = []
    started = time.perf_counter()
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} days"),
                  TimeElapsedColumn(), console=out) as progress, _day_results(todo, settings, args.parallel) as results:
        task = progress.add_task(f"backfill {first} .. {last}", total=len(todo))
        for day, error, seconds in results:
            if error:
                failed.append((day, error))
                progress.console.print(f"[red]failed:[/red] {day} ({seconds:.1f} s): {escape(error)}", soft_wrap=True)
            else:
                done.add(day.isoformat())
                lake.write_text(state_file, json.dumps({"from": first.isoformat(), "to": last.isoformat(),
                                                        "done": sorted(done)}, indent=1))
                progress.console.print(f"{day} done in {seconds:.1f} s")
            progress.advance(task)
    if args.parallel > 1:
        failed += _midnight_sweep(sorted(set(todo) - {d for d, _ in failed}), settings, out)
    out.print(f"backfill {first} .. {last}: {len(todo) - len(failed)} day(s) done, {len(failed)} failed, "
              f"{len(missing)} without raw data, {time.perf_counter() - started:.1f} s")
    if not args.no_publish and (len(todo) > len(failed) or not todo):
        meta = run_publish(settings, out=out)
        out.print(f"published version {meta['version']}: {meta['days']} day(s) -> {settings.warehouse.resolve()}")
    out.print(where_runs_are(), markup=False, soft_wrap=True)
    if failed:
        out.print(f"[red]{len(failed)} day(s) failed[/red]: {', '.join(d.isoformat() for d, _ in failed)}; "
                  "run the same command again to retry them (days done are kept)")
        return 1
    return 0
