"""`inferledger simulate`, `ingest`, `attribute`, `demo` and `run`: a day through the pipeline,
step by step or whole."""

import time
from datetime import date
from pathlib import Path

import polars as pl

import fleetsim
from lake.bills import stale_days
from lake.inventory import inventory_path
from lake.real_day import REAL_DAY, MissingSample, assemble_real_day
from lake.store import Lake
from lake.trace_logs import TraceError
from pipelines.cli.output import (console, print_attribution, print_check_warnings, print_ingest_table,
                                  print_published, print_run_summary)
from pipelines.cli.runs import execute_steps, prepare_or_exit, run_attribution, run_ingest, run_publish
from pipelines.runner import day_steps, instance, where_runs_are
from settings import Settings
from warehouse.connection import DuckDBLimits
from warehouse.report import write_report


def cmd_simulate(args, settings: Settings) -> int:
    started = time.perf_counter()
    summary = fleetsim.simulate(Path(args.out), args.date, requests=args.requests, seed=args.seed)
    print(summary.describe() if hasattr(summary, "describe") else summary)
    print(f"simulated {args.date} into {Path(args.out).resolve()} in {time.perf_counter() - started:.1f} s")
    return 0


def cmd_ingest(args, settings: Settings) -> int:
    print_ingest_table(run_ingest(settings, args.date), settings.lake)
    return 0


def cmd_attribute(args, settings: Settings) -> int:
    run_attribution(settings, args.date)
    print_attribution(args.date, settings.lake)
    return 0


def _demo_real(args, settings: Settings, out) -> tuple[Settings, date]:
    """`demo --real`: the real samples' day assembled under --real-data (lake/real_day.py)."""
    data = Path(args.real_data)
    settings = settings.override(raw=data / "raw", lake=data / "lake",
                                 warehouse=data / "warehouse" / "inferledger.duckdb", report=None)
    out.rule(f"inferledger demo --real: the real public samples of {args.samples}, {REAL_DAY}")
    placed = assemble_real_day(Path(args.samples), settings.raw)
    out.print(placed.describe(), markup=False, soft_wrap=True)
    return settings.override(inventory=inventory_path(settings.raw)), REAL_DAY


def _demo_simulated(args, settings: Settings, out) -> tuple[Settings, date]:
    out.rule(f"inferledger demo: the default fleet, {args.date}")
    started = time.perf_counter()
    summary = fleetsim.simulate(settings.raw, args.date, requests=args.requests, seed=args.seed, invoices=True)
    out.print(summary.describe() if hasattr(summary, "describe") else summary)
    out.print(f"simulated in {time.perf_counter() - started:.1f} s -> {settings.raw.resolve()}")
    # The demo runs on the fleet it simulated, whose inventory the simulation wrote into the raw
    # folder, even when INFERLEDGER_INVENTORY names another fleet's.
    simulated = inventory_path(settings.raw)
    if settings.inventory is not None and Path(settings.inventory).resolve() != simulated.resolve():
        out.print(f"inventory: {simulated} (the simulated fleet's), not {settings.inventory}", markup=False)
    return settings.override(inventory=simulated), args.date


def cmd_demo(args, settings: Settings) -> int:
    out = console()
    try:
        settings, day = (_demo_real if args.real else _demo_simulated)(args, settings, out)
    except (MissingSample, TraceError) as e:
        out.print(f"[red]error:[/red] {e}", markup=True)
        return 1
    checks: list[dict] = []
    print_ingest_table(run_ingest(settings, day, out=out, checks=checks), settings.lake, out)
    run_attribution(settings, day, out=out, checks=checks)
    print_attribution(day, settings.lake, out, by_tier=False)  # the warehouse answers it below
    print_check_warnings(checks, out)
    meta = run_publish(settings, out=out)
    limits = DuckDBLimits(settings.duckdb_memory_limit, settings.duckdb_temp)
    print_published(meta, settings.warehouse, out, limits=limits, export_dir=settings.export_dir,
                    sql_flags=f" --warehouse {settings.warehouse}" if args.real else "")
    # The report the publish wrote, again with the day's input checks (what they warn about shown)
    write_report(settings.warehouse, meta["report_path"], expectations=pl.DataFrame(checks), limits=limits,
                 cache_dir=settings.cache_dir)
    out.print(f"morning report: [bold]{meta['report_path']}[/bold]  (one HTML file, opens offline; docs/report.md)")
    out.print(where_runs_are(), markup=False, soft_wrap=True)
    return 0


def cmd_run(args, settings: Settings) -> int:
    """The whole nightly graph for one day: ingest every site, attribute, build the marts,
    publish the warehouse; every check included."""
    out = console()
    inst = instance()
    started = time.perf_counter()
    sites = prepare_or_exit(settings, args.date, out, inst)
    if args.parallel < 1:
        out.print("[red]error:[/red] --parallel must be 1 or more")
        return 2
    tags = {"inferledger/command": "run", "inferledger/date": args.date.isoformat()}
    outcomes = execute_steps(day_steps(args.date, sites), settings, out=out, title=f"run {args.date}", tags=tags,
                             inst=inst, parallel=args.parallel)
    # Bills delivered today whose periods cover days attributed before: those days are restated.
    stale = [d for d in stale_days(Lake(settings.lake)) if d != args.date]
    if stale:
        out.print(f"bills delivered up to {args.date} touch {len(stale)} day(s) attributed before: re-attributing "
                  + ", ".join(d.isoformat() for d in stale))
        outcomes += execute_steps([("attribute_day", d.isoformat(), None) for d in stale], settings, out=out,
                                  title="re-attribute", tags=tags, inst=inst)
    if not args.no_publish:
        outcomes += execute_steps([("publish_warehouse", None, None)], settings, out=out, title="publish", tags=tags,
                                  inst=inst)
    print_run_summary(outcomes, out, f"{args.date}: {len(outcomes)} run(s) in {time.perf_counter() - started:.1f} s")
    if not args.no_publish:
        meta = outcomes[-1].materializations["warehouse"]
        out.print(f"published version {meta['version']} ({meta['days']} day(s)) -> {settings.warehouse.resolve()}")
        if meta.get("restated_days"):
            out.print(f"restated (published before, changed now; see restatements): {', '.join(meta['restated_days'])}")
        if "report" in outcomes[-1].materializations:
            out.print(f"morning report: {outcomes[-1].materializations['report']['path']}")
    out.print(where_runs_are(), markup=False, soft_wrap=True)
    return 0
