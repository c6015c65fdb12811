"""`inferledger`: the command line.

    inferledger simulate --date D [--out DIR] [--requests N] [--seed S]
    inferledger ingest   --date D [--raw DIR] [--lake DIR] [--inventory FILE]
    inferledger attribute --date D [--raw DIR] [--lake DIR]
    inferledger run      --date D [--raw DIR] [--lake DIR] [--warehouse FILE] [--no-publish] [--parallel N]
    inferledger backfill --from D1 --to D2 [--parallel N] [--restart]
    inferledger check-data [--date D] [--lake DIR] [--warehouse FILE] [--json FILE]
    inferledger publish  [--lake DIR] [--warehouse FILE] [--keep N] | --list | --rollback VERSION
    inferledger sql      [-c SQL | FILE.sql] [--warehouse FILE] [--out FILE.csv|.parquet [--force]] [--timeout S]
    inferledger demo     [--date D] [--requests N]
    inferledger report   [--date D] [--days N] [--out FILE.html] [--warehouse FILE]

`ingest` materializes the real Dagster ingest assets for one day (every site of the
inventory, then the fleet-wide asset register and market prices) in-process, without the UI, and exits
non-zero naming the failed step. Runs are recorded in the instance of $DAGSTER_HOME when
it is set (the Makefile sets it), so `dg dev` shows them.
"""

import argparse
import os
import sys
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from lake.files import NoSpaceLeft, is_no_space, write_text

DEMO_DAY = date(2026, 11, 24)
# `inferledger run --parallel` default: ingest runs one at a time. Each run's Polars and DuckDB
# already use every core; on the 2-core machine, two at once took the 10 M-request day from
# 88.9 s to 86.6 s for 47 % more peak memory (bench/README.md). More cores, more to gain.
DEFAULT_PARALLEL = 1


@dataclass
class StepResult:
    asset: str
    partition: str
    metadata: dict


def _console(stderr: bool = False):
    from rich.console import Console

    c = Console(stderr=stderr)
    return c if c.is_terminal else Console(stderr=stderr, width=140)


def _instance():
    from pipelines.runner import instance

    return instance()


def execute_steps(steps, paths, *, console, title: str, tags: dict | None = None, keep: int | None = None,
                  inst=None, parallel: int = 1) -> list:
    """Run `steps` (pipelines.runner) with a progress bar; on failure print what failed (steps,
    checks with counts and examples) and raise SystemExit(1). `parallel` > 1 runs the leading
    ingest steps that many at a time, in worker processes."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from pipelines.runner import RunFailed, definitions, expand_steps, run_steps

    defs = definitions(paths, keep=keep)
    inst = inst or _instance()
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console, transient=False) as progress:
        task = progress.add_task(title, total=len(expand_steps(steps, paths, parallel)))
        running: list[str] = []

        def on_step(step, outcome):
            job, partition, assets = step
            name = f"{job}" + (f" {partition}" if partition else "") + (f" {','.join(assets)}" if assets else "")
            if outcome is None:
                running.append(name)
            else:
                if name in running:
                    running.remove(name)
                progress.advance(task)
            progress.update(task, description=f"{title}: {running[0] if len(running) == 1 else f'{len(running)} runs'}"
                            if running else title)

        try:
            return run_steps(defs, steps, inst, on_step=on_step, tags=tags, parallel=parallel, paths=paths)
        except RunFailed as e:
            progress.stop()
            from rich.markup import escape

            console.print(f"[red]failed:[/red] {escape(str(e))}", soft_wrap=True)
            console.print(f"inspect the run with `dg dev` (DAGSTER_HOME={os.environ.get('DAGSTER_HOME', 'not set: ephemeral')})")
            raise SystemExit(1) from None


def _prepare(paths, day, console, inst):
    from pipelines.runner import RunFailed, prepare

    try:
        return prepare(paths, day, inst)
    except (RunFailed, ValueError) as e:
        console.print(f"[red]error:[/red] {e}")
        raise SystemExit(2) from None


def run_ingest(day: date, raw: Path, lake: Path, inventory: Path | None = None, *, console=None) -> list[StepResult]:
    """Run the ingest of `day` (every site, the asset register and market prices); raises SystemExit naming
    the failed step or check."""
    from pipelines.runner import Paths, day_steps

    console = console or _console(stderr=True)
    paths = Paths(raw, lake, Path("data/warehouse/inferledger.duckdb"), inventory)
    inst = _instance()
    sites = _prepare(paths, day, console, inst)
    outcomes = execute_steps(day_steps(day, sites, attribute=False), paths, console=console, title=f"ingest {day}",
                             tags={"inferledger/command": "ingest"}, inst=inst)
    return [StepResult(asset, o.partition, meta) for o in outcomes for asset, meta in o.materializations.items()]


def run_attribution(day: date, raw: Path, lake: Path, *, console=None) -> dict:
    """Attribute `day` and build its marts (conservation and quality checks included); returns
    the request_costs metadata. Raises SystemExit(1) naming the failed step or check."""
    from pipelines.runner import Paths

    console = console or _console(stderr=True)
    paths = Paths(raw, lake, Path("data/warehouse/inferledger.duckdb"))
    inst = _instance()
    _prepare(paths, None, console, inst)
    (out,) = execute_steps([("attribute_day", day.isoformat(), None)], paths, console=console, title=f"attribute {day}",
                           tags={"inferledger/command": "attribute"}, inst=inst)
    return out.materializations["request_costs"]


def run_publish(raw: Path, lake: Path, warehouse: Path, *, keep: int | None = None, console=None) -> dict:
    """Publish every attributed day of the lake (the `warehouse` asset and its checks); returns
    its metadata. Raises SystemExit(1) naming the failure."""
    from pipelines.runner import Paths

    console = console or _console(stderr=True)
    (out,) = execute_steps([("publish_warehouse", None, None)], Paths(raw, lake, warehouse), console=console,
                           title="publish", tags={"inferledger/command": "publish"}, keep=keep)
    meta = dict(out.materializations["warehouse"])
    if "report" in out.materializations:  # the publish job also writes the morning report
        meta["report_path"] = out.materializations["report"]["path"]
    return meta


def _fmt(v) -> str:
    from decimal import Decimal

    if v is None:
        return ""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, Decimal):
        v = int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, float):
        if v != v:
            return "NaN"
        a = abs(v)
        return f"{v:,.2f}" if a >= 1000 else f"{v:,.4f}" if a >= 1 else f"{v:.6g}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def print_frame(frame, console=None, *, title: str | None = None, max_rows: int = 50) -> None:
    """A query result as a readable table: numbers right-aligned with thousands separators."""
    from rich.table import Table

    console = console or _console()
    t = Table(title=title, title_justify="left")
    for name, dtype in frame.schema.items():
        t.add_column(name, justify="right" if dtype.is_numeric() else "left", overflow="fold")
    for row in frame.head(max_rows).iter_rows():
        t.add_row(*(_fmt(v) for v in row))
    console.print(t)
    more = frame.height - max_rows
    console.print(f"{frame.height:,} row(s)" + (f"; {more:,} not shown (--max-rows, or --out FILE)" if more > 0 else ""))


TIER_QUESTION = """SELECT tier, requests, direct_cost_per_query, fully_loaded_cost_per_query,
       fully_loaded_cost_per_m_tokens, energy_kwh, gross_margin, currency
FROM cost_by_tier_day WHERE date = (SELECT max(date) FROM cost_by_tier_day)
ORDER BY fully_loaded_cost_per_query DESC"""


def print_attribution(day: date, lake: Path, console=None, *, by_tier: bool = True) -> None:
    """Sources = requests + idle + unattributed per component, and the cost per query by tier."""
    import polars as pl
    from rich.table import Table

    from lake.store import Lake

    console = console or _console()
    files = Lake(lake)
    totals = pl.read_parquet(files.partition_file("totals", day))
    t = Table(title=f"Conservation, {day}: every source = requests + idle + unattributed")
    for col in ("component", "source", "to requests", "to idle", "unattributed", "difference"):
        t.add_column(col, justify="left" if col == "component" else "right")
    for r in totals.iter_rows(named=True):
        if r["unit"] == "J":
            f = lambda v: f"{v / 3.6e6:,.3f} kWh"  # noqa: E731
        else:
            f = lambda v: f"{v:,.2f}"  # noqa: E731
        diff = r["source_amount"] - r["in_requests"] - r["in_idle"] - r["unattributed"]
        t.add_row(r["component"], f(r["source_amount"]), f(r["in_requests"]), f(r["in_idle"]), f(r["unattributed"]),
                  f"{diff:.2e}")
    console.print(t)
    if not by_tier:
        return
    # The day's facts are scanned, five columns, and grouped in the streaming engine: read whole,
    # the 10 M-request day held 8.5 GB here (`inferledger attribute`), against 2.3 GB scanned.
    facts = pl.scan_parquet(files.partition_file("request_costs", day))
    by_tier = (facts.group_by("tier").agg(pl.len().alias("requests"), pl.col("direct_cost").mean().alias("direct"),
                                           pl.col("fully_loaded_cost").mean().alias("loaded"),
                                           (pl.col("energy_kwh").sum() * 3.6e6 / pl.col("output_tokens").sum()).alias("j_tok"),
                                           pl.col("currency").first())
               .sort("loaded", descending=True).collect(engine="streaming"))
    currency = by_tier["currency"][0] if by_tier.height else ""
    t = Table(title=f"Cost per query by tier, {day} ({currency})")
    for col in ("tier", "requests", "direct cost / query", "fully loaded / query", "J per output token"):
        t.add_column(col, justify="left" if col == "tier" else "right")
    for r in by_tier.iter_rows(named=True):
        t.add_row(r["tier"], f"{r['requests']:,}", f"{r['direct']:.6f}", f"{r['loaded']:.6f}", f"{r['j_tok']:.3f}")
    console.print(t)


def print_ingest_table(results: list[StepResult], lake: Path, console=None) -> None:
    from rich.table import Table

    console = console or _console()
    table = Table(title="Ingest: records per input and site (read = accepted + quarantined)")
    for col in ("input", "site", "files", "read", "accepted", "quarantined", "lake rows", "quarantine reasons"):
        table.add_column(col, justify="left" if col in ("input", "site", "quarantine reasons") else "right")
    for r in sorted(results, key=lambda r: (r.asset, r.partition)):
        m = r.metadata
        reasons = ", ".join(f"{k} {v:,}" for k, v in (m.get("quarantined_by_reason") or {}).items())
        site = r.partition.split("|")[1] if "|" in r.partition else "(fleet)"
        table.add_row(r.asset, site, f"{m['raw_files']:,}", f"{m['rows_read']:,}", f"{m['rows_accepted']:,}",
                      f"{m['rows_quarantined']:,}", f"{m['dagster/row_count']:,}", reasons or "-")
    console.print(table)
    not_read = {name: why for r in results for name, why in (r.metadata.get("files_not_read") or {}).items()}
    if not_read:  # unreadable (quarantined whole) or ignored files: every one is in the ingest audit with why
        n = sum(r.metadata.get("files_unreadable", 0) + r.metadata.get("files_ignored", 0) for r in results)
        console.print(f"{n:,} file(s) not read (ingest_audit status unreadable or ignored), e.g.:")
        for name, why in sorted(not_read.items())[:10]:
            console.print(f"  {name}: {why}", markup=False, soft_wrap=True)
    console.print(f"Lake: {lake.resolve()}")


def cmd_simulate(args) -> int:
    import fleetsim

    started = time.perf_counter()
    summary = fleetsim.simulate(Path(args.out), args.date, requests=args.requests, seed=args.seed)
    print(summary.describe() if hasattr(summary, "describe") else summary)
    print(f"simulated {args.date} into {Path(args.out).resolve()} in {time.perf_counter() - started:.1f} s")
    return 0


def cmd_ingest(args) -> int:
    results = run_ingest(args.date, Path(args.raw), Path(args.lake), Path(args.inventory) if args.inventory else None)
    print_ingest_table(results, Path(args.lake))
    return 0


def cmd_attribute(args) -> int:
    run_attribution(args.date, Path(args.raw), Path(args.lake))
    print_attribution(args.date, Path(args.lake))
    return 0


def cmd_demo(args) -> int:
    import fleetsim

    console = _console()
    raw, lake = Path(args.raw), Path(args.lake)
    console.rule(f"inferledger demo: the default fleet, {args.date}")
    started = time.perf_counter()
    summary = fleetsim.simulate(raw, args.date, requests=args.requests, seed=args.seed, invoices=True)
    console.print(summary.describe() if hasattr(summary, "describe") else summary)
    console.print(f"simulated in {time.perf_counter() - started:.1f} s -> {raw.resolve()}")
    results = run_ingest(args.date, raw, lake, console=console)
    print_ingest_table(results, lake, console)
    run_attribution(args.date, raw, lake, console=console)
    print_attribution(args.date, lake, console, by_tier=False)  # the warehouse answers it below
    meta = run_publish(raw, lake, Path(args.warehouse), console=console)
    _print_published(meta, Path(args.warehouse), console)
    console.print(f"morning report: [bold]{meta['report_path']}[/bold]  (one HTML file, opens offline; docs/report.md)")
    return 0


def _paths(args):
    from pipelines.runner import Paths

    return Paths.from_env(raw=args.raw, lake=args.lake, warehouse=args.warehouse, inventory=getattr(args, "inventory", None))


def print_run_summary(outcomes, console, title: str) -> None:
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for col in ("run", "partition", "assets", "seconds", "checks passed", "warnings", "run id"):
        t.add_column(col, justify="right" if col in ("seconds", "checks passed", "warnings") else "left")
    for o in outcomes:
        passed = sum(1 for c in o.checks if c[2])
        warned = [c[1] for c in o.checks if not c[2]]
        t.add_row(o.job, o.partition or "-", ", ".join(o.materializations) or "-", f"{o.seconds:.1f}",
                  f"{passed}/{len(o.checks)}", ", ".join(warned) or "-", o.run_id[:8])
    console.print(t)


def cmd_run(args) -> int:
    """The whole nightly graph for one day: ingest every site, attribute, build the marts,
    publish the warehouse; every check included."""
    from pipelines.runner import day_steps

    console = _console()
    paths = _paths(args)
    inst = _instance()
    started = time.perf_counter()
    sites = _prepare(paths, args.date, console, inst)
    steps = day_steps(args.date, sites) + ([] if args.no_publish else [("publish_warehouse", None, None)])
    if args.parallel < 1:
        console.print("[red]error:[/red] --parallel must be 1 or more")
        return 2
    outcomes = execute_steps(steps, paths, console=console, title=f"run {args.date}",
                             tags={"inferledger/command": "run", "inferledger/date": args.date.isoformat()}, inst=inst,
                             parallel=args.parallel)
    print_run_summary(outcomes, console, f"{args.date}: {len(outcomes)} run(s) in {time.perf_counter() - started:.1f} s")
    if not args.no_publish:
        meta = outcomes[-1].materializations["warehouse"]
        console.print(f"published version {meta['version']} ({meta['days']} day(s)) -> {paths.warehouse.resolve()}")
        if "report" in outcomes[-1].materializations:
            console.print(f"morning report: {outcomes[-1].materializations['report']['path']}")
    return 0


def _backfill_day(day: date, paths, dagster_home: str | None) -> tuple[date, str | None, float]:
    """One day of a backfill, in a worker process: (day, error or None, seconds)."""
    from pipelines.runner import RunFailed, day_steps, definitions, prepare, run_steps

    if dagster_home:
        os.environ["DAGSTER_HOME"] = dagster_home
    started = time.perf_counter()
    inst = _instance()
    try:
        sites = prepare(paths, day, inst)
        run_steps(definitions(paths), day_steps(day, sites), inst,
                  tags={"inferledger/command": "backfill", "inferledger/date": day.isoformat()})
    except (RunFailed, ValueError) as e:
        return day, str(e), time.perf_counter() - started
    return day, None, time.perf_counter() - started


def cmd_backfill(args) -> int:
    """Every day of a range (ingest, attribute, marts), `--parallel` days at a time, then one
    publish. Days done are recorded in `<lake>/_backfills/`, so a rerun of the same range
    resumes where an interrupted one stopped (`--restart` to redo every day)."""
    import json
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from datetime import timedelta

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from lake.store import (
        Lake,  # here, not at the top: it loads Polars, which `inferledger --help` does not need
    )

    console = _console()
    paths = _paths(args)
    first, last = args.date_from, args.date_to
    if last < first:
        console.print(f"[red]error:[/red] --to {last} is before --from {first}")
        return 2
    if args.parallel < 1:
        console.print("[red]error:[/red] --parallel must be 1 or more")
        return 2
    state_file = Lake(paths.lake).backfill_state(first, last)
    done: set[str] = set()
    if state_file.exists() and not args.restart:
        done = set(json.loads(state_file.read_text()).get("done", []))
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    missing = [d for d in days if not (paths.raw / d.isoformat()).is_dir()]
    todo = [d for d in days if d.isoformat() not in done and d not in missing]
    if missing:
        console.print(f"[yellow]skipped[/yellow] {len(missing)} day(s) with no raw folder: "
                      f"{', '.join(d.isoformat() for d in missing[:10])}{' ...' if len(missing) > 10 else ''}")
    if done & {d.isoformat() for d in days}:
        console.print(f"resuming: {len(done)} day(s) already done by an earlier run of this backfill ({state_file})")
    _prepare(paths, None, console, _instance())  # inventory valid, sites registered, before any worker starts

    def record(day: date) -> None:
        done.add(day.isoformat())
        write_text(state_file, json.dumps({"from": first.isoformat(), "to": last.isoformat(), "done": sorted(done)},
                                          indent=1))

    failed: list[tuple[date, str]] = []
    started = time.perf_counter()
    home = os.environ.get("DAGSTER_HOME")
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} days"),
                  TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task(f"backfill {first} .. {last}", total=len(todo))
        if args.parallel == 1:
            results = (_backfill_day(d, paths, home) for d in todo)
            pool = None
        else:
            pool = ProcessPoolExecutor(max_workers=args.parallel, mp_context=multiprocessing.get_context("spawn"))
            results = (f.result() for f in as_completed([pool.submit(_backfill_day, d, paths, home) for d in todo]))
        try:
            for day, error, seconds in results:
                if error:
                    failed.append((day, error))
                    from rich.markup import escape

                    progress.console.print(f"[red]failed:[/red] {day} ({seconds:.1f} s): {escape(error)}", soft_wrap=True)
                else:
                    record(day)
                    progress.console.print(f"{day} done in {seconds:.1f} s")
                progress.advance(task)
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
    console.print(f"backfill {first} .. {last}: {len(todo) - len(failed)} day(s) done, {len(failed)} failed, "
                  f"{len(missing)} without raw data, {time.perf_counter() - started:.1f} s")
    if not args.no_publish and (len(todo) > len(failed) or not todo):
        meta = run_publish(paths.raw, paths.lake, paths.warehouse, console=console)
        console.print(f"published version {meta['version']}: {meta['days']} day(s) -> {paths.warehouse.resolve()}")
    if failed:
        console.print(f"[red]{len(failed)} day(s) failed[/red]: {', '.join(d.isoformat() for d, _ in failed)}; "
                      "run the same command again to retry them (days done are kept)")
        return 1
    return 0


def cmd_check_data(args) -> int:
    """Every quality suite on a lake day and the real samples, and the warehouse checks."""
    from lake.inventory import inventory_path, load_inventory
    from lake.store import Lake
    from pipelines.checkdata import REAL_INVENTORY, REAL_ROOT, check_data, print_report, write_json
    from transforms.inventory import InventoryError
    from warehouse.marts import attributed_days

    console = _console()
    paths = _paths(args)
    try:
        inventory = load_inventory(inventory_path(paths.raw, paths.inventory))
    except InventoryError as e:
        console.print(f"[red]error:[/red] {e}")
        return 2
    day = args.date or (attributed_days(Lake(paths.lake)) or [None])[-1]
    if day is None:
        console.print(f"[red]error:[/red] {paths.lake}: no attributed day to check; run `make demo` or pass --date")
        return 2
    real = None if args.no_real else Path(args.real or REAL_ROOT)
    real_inventory = load_inventory(args.real_inventory or REAL_INVENTORY) if real else None
    warehouse = paths.warehouse if paths.warehouse.exists() else None
    if warehouse is None:
        console.print(f"[yellow]no warehouse at {paths.warehouse}: its checks are skipped[/yellow]")
    console.rule(f"check-data: lake {paths.lake} day {day}" + (f", real samples {real}" if real else ""))
    report = check_data(paths.lake, day, inventory, warehouse, real_root=real, real_inventory=real_inventory,
                        max_age_days=args.max_age_days)
    print_report(report, console)
    console.print(f"results: {write_json(report, Path(args.json)).resolve()}")
    return 1 if report.errors else 0


def _print_published(meta: dict, path: Path, console) -> None:
    from warehouse.access import execute, open_warehouse

    console.rule("Warehouse")
    console.print(f"published version {meta['version']} ({meta['days']} day(s), {meta['dagster/row_count']:,} requests, "
                  f"{meta['seconds']:.1f} s)")
    console.print(f"warehouse: [bold]{path.resolve()}[/bold]  (data dictionary: docs/data-dictionary.md)")
    con = open_warehouse(path)
    try:
        (result,) = execute(con, TIER_QUESTION, Path("exports"))
    finally:
        con.close()
    print_frame(result.frame, console, title="Cost per query by tier (from the warehouse)")
    console.print("Ask it yourself (read-only):")
    console.print('  .venv/bin/inferledger sql -c "SELECT tier, fully_loaded_cost_per_query FROM cost_by_tier_day"')
    console.print("  .venv/bin/inferledger sql        # interactive; thirteen questions in docs/finance-queries.md")


def _write_report(warehouse: Path, out: Path, day: date | None, days: int, console) -> Path | None:
    from warehouse.report import ReportError, write_report

    try:
        res = write_report(warehouse, out, day, days)
    except (ReportError, FileNotFoundError) as e:
        _console(stderr=True).print(f"[red]error:[/red] {e}")
        return None
    window = f"{res.first_day} .. {res.day}" if res.first_day != res.day else f"{res.day}"
    console.print(f"report of {window}: [bold]{res.path.resolve()}[/bold]  ({res.charts} charts, {res.bytes / 1e6:.1f} MB, "
                  f"{res.seconds:.1f} s; opens offline in any browser)")
    return res.path


def cmd_report(args) -> int:
    out = args.out or os.environ.get("INFERLEDGER_REPORT") or Path(args.warehouse).with_name("report.html")
    return 0 if _write_report(Path(args.warehouse), Path(out), args.date, args.days, _console()) else 1


def cmd_publish(args) -> int:
    from warehouse.publish import PublishError, complete_versions, current_version, rollback

    console = _console()
    path = Path(args.warehouse)
    if args.list:
        current = current_version(path)
        for v in complete_versions(path):
            console.print(f"{v}{'  (published)' if v == current else ''}")
        return 0
    if args.rollback:
        from rich.markup import escape

        try:
            done = rollback(path, args.rollback)
        except PublishError as e:
            _console(stderr=True).print(f"[red]error:[/red] {escape(str(e))}", soft_wrap=True)
            return 1
        if done.warning:
            _console(stderr=True).print(f"[yellow]warning:[/yellow] {escape(done.warning)}", soft_wrap=True)
        console.print(f"{path.resolve()} is version {args.rollback} again")
        return 0
    meta = run_publish(Path(args.raw), Path(args.lake), path, keep=args.keep, console=console)
    console.print(f"published version {meta['version']}: {meta['days']} day(s) {meta['first_day']} .. {meta['last_day']}, "
                  f"{meta['dagster/row_count']:,} requests, {meta['seconds']:.1f} s -> {path.resolve()}")
    return 0


def cmd_sql(args) -> int:
    """Finance's read-only SQL (warehouse.access): exit 0 done, 1 an error (bad SQL, no warehouse,
    the timeout), 2 a statement or --out refused, 130 cancelled with Ctrl-C."""
    import signal

    from rich.markup import escape

    from warehouse.access import (
        DEFAULT_TIMEOUT_S,
        RefusedOutput,
        RefusedStatement,
        StatementInterrupted,
        StatementStuck,
        WarehouseFileError,
        export,
        one_line,
        open_finance,
    )

    console = _console()
    err = _console(stderr=True)

    def refused(e: Exception) -> int:
        err.print(f"[red]refused:[/red] {escape(str(e).removeprefix('refused '))}", soft_wrap=True)
        return 2

    try:
        raw_timeout = args.timeout if args.timeout is not None else os.environ.get("INFERLEDGER_SQL_TIMEOUT_S")
        timeout = DEFAULT_TIMEOUT_S if raw_timeout in (None, "") else float(raw_timeout)
        if not timeout > 0:
            raise ValueError
    except ValueError:
        err.print(f"[red]error:[/red] timeout {escape(repr(raw_timeout))}: write a number of seconds above 0 "
                  "(--timeout or INFERLEDGER_SQL_TIMEOUT_S)")
        return 1
    # Ctrl-C while the session opens is noted, and acted on inside the `try` below, which
    # closes the session whatever happens (DuckDB is not interrupted half way through set-up).
    pressed = []
    previous = signal.signal(signal.SIGINT, lambda *_: pressed.append(True))
    try:
        session = open_finance(args.warehouse, Path(args.export_dir), timeout_s=timeout)
    except (RefusedStatement, WarehouseFileError, ValueError) as e:
        signal.signal(signal.SIGINT, previous)
        if isinstance(e, RefusedStatement):
            return refused(e)
        err.print(f"[red]error:[/red] {escape(str(e))}", soft_wrap=True)
        return 1
    protected = session.protected_dirs() + [Path(args.lake), Path(args.raw)]

    def run_sql(sql: str) -> int:
        try:
            results = session.execute(sql)
        except RefusedStatement as e:
            return refused(e)
        except StatementInterrupted as e:
            err.print(f"[red]{'cancelled' if e.reason == 'cancelled' else 'error'}:[/red] {escape(str(e))}", soft_wrap=True)
            return 130 if e.reason == "cancelled" else 1
        except StatementStuck:
            session.lost = True
            raise
        except Exception as e:  # a DuckDB error: bad column, bad syntax, out of memory
            err.print(f"[red]error:[/red] {escape(one_line(e))}", soft_wrap=True)
            return 1
        for r in results:
            if r.frame is None:
                console.print(escape(r.message))
            else:
                print_frame(r.frame, console, max_rows=args.max_rows)
        last = next((r.frame for r in reversed(results) if r.frame is not None), None)
        if args.out:
            if last is None:
                err.print("[red]error:[/red] --out: the SQL returned no result to export")
                return 1
            try:
                written = export(last, Path(args.out), force=args.force, protected=protected)
            except RefusedOutput as e:
                return refused(e)
            console.print(f"wrote {last.height:,} row(s) to {escape(str(written))}")
        return 0

    try:
        signal.signal(signal.SIGINT, previous)
        if pressed:
            raise KeyboardInterrupt
        if args.command_sql is not None:
            return run_sql(args.command_sql)
        if args.file:
            f = Path(args.file)
            if not f.is_file():
                err.print(f"[red]error:[/red] {escape(str(f))}: no such SQL file")
                return 1
            return run_sql(f.read_text())
        return _repl(session, run_sql, console)
    except KeyboardInterrupt:  # Ctrl-C between statements
        err.print("[red]cancelled[/red]")
        return 130
    except StatementStuck as e:
        err.print(f"[red]error:[/red] {escape(str(e))}; the session ends")
        os._exit(1)  # DuckDB still holds the worker thread: closing the connection would wait for it
    finally:
        session.close()


def _repl(session, run_sql, console) -> int:
    """Statements end with ';'. Ctrl-C cancels the running statement (or the one being typed)
    and returns to the prompt."""
    from warehouse.access import table_catalog

    console.print("inferledger sql (read-only). End statements with ';'. .tables lists the tables, .quit leaves. "
                  "Ctrl-C cancels a statement.")
    buffer: list[str] = []
    while True:
        try:
            line = input("inferledger> " if not buffer else "        ...> ")
        except EOFError:
            console.print()
            return 0
        except KeyboardInterrupt:
            console.print("^C")
            buffer = []
            continue
        stripped = line.strip()
        if not buffer and stripped in (".quit", ".exit", "\\q"):
            return 0
        if not buffer and stripped == ".tables":
            print_frame(table_catalog(session.con), console, max_rows=200)
            continue
        buffer.append(line)
        if stripped.endswith(";"):
            try:
                run_sql("\n".join(buffer))
            except KeyboardInterrupt:  # while results print: back to the prompt
                console.print("^C")
            buffer = []


def _day(s: str) -> date:
    try:
        return date.fromisoformat(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a date; write YYYY-MM-DD") from None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="inferledger", description="Per-query cost of AI inference.")
    sub = p.add_subparsers(dest="command", required=True)
    env = os.environ.get

    s = sub.add_parser("simulate", help="write raw exports of the demo fleet for a day")
    s.add_argument("--date", type=_day, default=DEMO_DAY)
    s.add_argument("--out", default=env("INFERLEDGER_RAW", "data/raw"))
    s.add_argument("--requests", type=int, default=50_000)
    s.add_argument("--seed", type=int, default=7)
    s.set_defaults(func=cmd_simulate)

    i = sub.add_parser("ingest", help="ingest one day's raw files into the Parquet lake")
    i.add_argument("--date", type=_day, required=True)
    i.add_argument("--raw", default=env("INFERLEDGER_RAW", "data/raw"))
    i.add_argument("--lake", default=env("INFERLEDGER_LAKE", "data/lake"))
    i.add_argument("--inventory", default=env("INFERLEDGER_INVENTORY"))
    i.set_defaults(func=cmd_ingest)

    a = sub.add_parser("attribute", help="attribute one ingested day's costs to its requests")
    a.add_argument("--date", type=_day, required=True)
    a.add_argument("--raw", default=env("INFERLEDGER_RAW", "data/raw"))
    a.add_argument("--lake", default=env("INFERLEDGER_LAKE", "data/lake"))
    a.set_defaults(func=cmd_attribute)

    d = sub.add_parser("demo", help="simulate the default fleet's day and run the pipeline on it")
    d.add_argument("--date", type=_day, default=DEMO_DAY)
    d.add_argument("--requests", type=int, default=50_000)
    d.add_argument("--seed", type=int, default=7)
    d.add_argument("--raw", default=env("INFERLEDGER_RAW", "data/raw"))
    d.add_argument("--lake", default=env("INFERLEDGER_LAKE", "data/lake"))
    d.add_argument("--warehouse", default=env("INFERLEDGER_WAREHOUSE", "data/warehouse/inferledger.duckdb"))
    d.set_defaults(func=cmd_demo)

    r = sub.add_parser("run", help="the whole nightly graph for one day: ingest, attribute, marts, publish")
    r.add_argument("--date", type=_day, required=True)
    r.add_argument("--raw", default=None, help="raw exports (default $INFERLEDGER_RAW or data/raw)")
    r.add_argument("--lake", default=None, help="Parquet lake (default $INFERLEDGER_LAKE or data/lake)")
    r.add_argument("--warehouse", default=None, help="published DuckDB file (default $INFERLEDGER_WAREHOUSE)")
    r.add_argument("--inventory", default=None)
    r.add_argument("--no-publish", action="store_true", help="stop after the day's marts")
    r.add_argument("--parallel", type=int, default=DEFAULT_PARALLEL,
                   help="ingest runs at once (with N > 1: one run per site and dataset, each in its own "
                        f"process; default {DEFAULT_PARALLEL}); more memory, faster on machines with many cores")
    r.set_defaults(func=cmd_run)

    b = sub.add_parser("backfill", help="run a range of days (resumable), then publish once")
    b.add_argument("--from", dest="date_from", type=_day, required=True)
    b.add_argument("--to", dest="date_to", type=_day, required=True)
    b.add_argument("--parallel", type=int, default=1, help="days run at once, each in its own process (default 1)")
    b.add_argument("--restart", action="store_true", help="redo every day, not only those an earlier run left")
    b.add_argument("--raw", default=None)
    b.add_argument("--lake", default=None)
    b.add_argument("--warehouse", default=None)
    b.add_argument("--inventory", default=None)
    b.add_argument("--no-publish", action="store_true")
    b.set_defaults(func=cmd_backfill)

    cd = sub.add_parser("check-data", help="run every data-quality suite and warehouse check; exit 1 on an error")
    cd.add_argument("--date", type=_day, default=None, help="lake day to check (default: the latest attributed day)")
    cd.add_argument("--raw", default=None, help="(for the inventory)")
    cd.add_argument("--lake", default=None)
    cd.add_argument("--warehouse", default=None)
    cd.add_argument("--inventory", default=None)
    cd.add_argument("--real", default=None, help="real public samples to check too (default tests/data/real)")
    cd.add_argument("--real-inventory", default=None, help="inventory placing the FOCUS and trace samples")
    cd.add_argument("--no-real", action="store_true", help="skip the real samples")
    cd.add_argument("--max-age-days", type=int, default=None, help="freshness warning threshold (default 2)")
    cd.add_argument("--json", default="data/check-data.json", help="results file (default data/check-data.json)")
    cd.set_defaults(func=cmd_check_data)

    pb = sub.add_parser("publish", help="publish every attributed day as a new version of the warehouse")
    pb.add_argument("--raw", default=env("INFERLEDGER_RAW", "data/raw"), help="(for the inventory)")
    pb.add_argument("--lake", default=env("INFERLEDGER_LAKE", "data/lake"))
    pb.add_argument("--warehouse", default=env("INFERLEDGER_WAREHOUSE", "data/warehouse/inferledger.duckdb"))
    pb.add_argument("--keep", type=int, default=None, help="versions kept for rollback (default 7)")
    pb.add_argument("--list", action="store_true", help="list the kept versions")
    pb.add_argument("--rollback", metavar="VERSION", help="publish a kept version again")
    pb.set_defaults(func=cmd_publish)

    q = sub.add_parser("sql", help="query the published warehouse, read-only")
    q.add_argument("file", nargs="?", help="a .sql file to run")
    q.add_argument("-c", dest="command_sql", metavar="SQL", help="statement(s) to run")
    q.add_argument("--warehouse", default=env("INFERLEDGER_WAREHOUSE", "data/warehouse/inferledger.duckdb"))
    q.add_argument("--out", help="write the last result to a new .csv or .parquet file")
    q.add_argument("--force", action="store_true", help="let --out replace an existing file")
    q.add_argument("--export-dir", default=env("INFERLEDGER_EXPORT_DIR", "exports"),
                   help="the only directory COPY ... TO may write into (default ./exports)")
    q.add_argument("--timeout", default=None, metavar="SECONDS",
                   help="stop a statement after this long (default $INFERLEDGER_SQL_TIMEOUT_S, else 300)")
    q.add_argument("--lake", default=env("INFERLEDGER_LAKE", "data/lake"), help="(--out never writes inside it)")
    q.add_argument("--raw", default=env("INFERLEDGER_RAW", "data/raw"), help="(--out never writes inside it)")
    q.add_argument("--max-rows", type=int, default=50, help="rows printed per result (default 50)")
    q.set_defaults(func=cmd_sql)

    r = sub.add_parser("report", help="write the morning report (one self-contained HTML file) from the warehouse")
    r.add_argument("--date", type=_day, default=None, help="the report day (default: the last published day)")
    r.add_argument("--days", type=int, default=7, help="days the charts cover, ending on --date (default 7)")
    r.add_argument("--out", default=None, help="HTML file (default $INFERLEDGER_REPORT, else report.html beside the warehouse)")
    r.add_argument("--warehouse", default=env("INFERLEDGER_WAREHOUSE", "data/warehouse/inferledger.duckdb"))
    r.set_defaults(func=cmd_report)

    args = p.parse_args(argv)
    try:
        return args.func(args)
    except Exception as e:  # a full disk outside a pipeline step (simulated raw files, a backfill's state)
        if not is_no_space(e):
            raise
        where = getattr(e, "filename", None) or next(
            (f"under {v}" for v in (getattr(args, a, None) for a in ("out", "raw", "lake")) if v), "a file")
        message = str(e) if isinstance(e, NoSpaceLeft) else (
            f"no space left on device writing {where}: free space on that disk, then run the same command again")
        _console(stderr=True).print(f"error: {message}", markup=False, soft_wrap=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
