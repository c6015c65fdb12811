"""`inferledger`: the command line.

    inferledger simulate --date D [--out DIR] [--requests N] [--seed S]
    inferledger ingest   --date D [--raw DIR] [--lake DIR] [--inventory FILE]
    inferledger attribute --date D [--raw DIR] [--lake DIR]
    inferledger publish  [--lake DIR] [--warehouse FILE] [--keep N] | --list | --rollback VERSION
    inferledger sql      [-c SQL | FILE.sql] [--warehouse FILE] [--out FILE.csv|.parquet]
    inferledger demo     [--date D] [--requests N]

`ingest` materializes the real Dagster ingest assets for one day (every site of the
inventory, then the fleet-wide asset register) in-process, without the UI, and exits
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

DEMO_DAY = date(2026, 11, 24)
# Dagster's console logger at WARNING: the CLI shows its own progress; the full event log is
# in the instance (`dg dev`).
QUIET_RUN = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


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
    import dagster as dg

    return dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()


def _value(v):
    return getattr(v, "value", getattr(v, "data", v))


def run_ingest(day: date, raw: Path, lake: Path, inventory: Path | None = None, *, console=None) -> list[StepResult]:
    """Materialize the ingest assets for `day`; raises SystemExit(1) naming the failed step."""
    import dagster as dg
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from pipelines.defs.ingest.assets import asset_register, cost_lines, power_readings, requests
    from pipelines.partitions import register_sites
    from pipelines.resources import ParquetLake, RawInputs, Warehouse

    console = console or _console(stderr=True)
    raw_res = RawInputs(root=str(raw), inventory_path=str(inventory or ""))
    try:
        inv = raw_res.inventory()
    except ValueError as e:
        console.print(f"[red]error:[/red] {e}")
        raise SystemExit(2) from None
    if not (raw / day.isoformat()).is_dir():
        console.print(f"[red]error:[/red] no raw folder {raw / day.isoformat()}: nothing delivered for {day}. "
                      f"Simulate one with `inferledger simulate --date {day} --out {raw}`.")
        raise SystemExit(2)
    resources = {"raw": raw_res, "lake": ParquetLake(root=str(lake)), "warehouse": Warehouse()}
    instance = _instance()
    register_sites(instance, inv.site_ids)

    steps = [([requests, power_readings, cost_lines], f"{day.isoformat()}|{s}") for s in inv.site_ids]
    steps.append(([asset_register], day.isoformat()))
    results: list[StepResult] = []
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console, transient=False) as progress:
        task = progress.add_task(f"ingest {day}", total=len(steps))
        for assets, key in steps:
            progress.update(task, description=f"ingest {key}")
            res = dg.materialize(assets, partition_key=key, resources=resources, instance=instance,
                                 raise_on_error=False, tags={"inferledger/command": "ingest"},
                                 run_config=QUIET_RUN)
            if not res.success:
                for ev in res.get_step_failure_events():
                    err = ev.event_specific_data.error
                    console.print(f"[red]failed:[/red] step {ev.step_key} of partition {key}: "
                                  f"{err.message.strip() if err else 'see the run log'}")
                console.print(f"run id {res.run_id}; inspect it with `dg dev` (DAGSTER_HOME={os.environ.get('DAGSTER_HOME', 'ephemeral')})")
                raise SystemExit(1)
            for ev in res.get_asset_materialization_events():
                mat = ev.event_specific_data.materialization
                results.append(StepResult(mat.asset_key.to_user_string(), key,
                                          {k: _value(v) for k, v in mat.metadata.items()}))
            progress.advance(task)
    return results


def run_attribution(day: date, raw: Path, lake: Path, *, console=None) -> dict:
    """Materialize `request_costs` for `day` (its conservation check included); returns the
    asset's metadata. Raises SystemExit(1) naming the failed step or check."""
    import dagster as dg

    from pipelines.defs.attribution.assets import request_costs
    from pipelines.defs.ingest.assets import asset_register, cost_lines, power_readings, requests
    from pipelines.defs.warehouse.assets import cost_marts
    from pipelines.resources import AttributionSettings, ParquetLake, RawInputs, Warehouse

    console = console or _console(stderr=True)
    resources = {"raw": RawInputs(root=str(raw)), "lake": ParquetLake(root=str(lake)), "warehouse": Warehouse(),
                 "settings": AttributionSettings()}
    with console.status(f"attributing {day}"):
        res = dg.materialize([requests, power_readings, cost_lines, asset_register, request_costs, cost_marts],
                             selection=[request_costs, cost_marts],
                             partition_key=day.isoformat(), resources=resources, instance=_instance(),
                             raise_on_error=False, tags={"inferledger/command": "attribute"}, run_config=QUIET_RUN)
    if not res.success:
        for ev in res.get_step_failure_events():
            err = ev.event_specific_data.error
            console.print(f"[red]failed:[/red] step {ev.step_key} for {day}: {err.message.strip() if err else 'see the run log'}")
        raise SystemExit(1)
    mat = next(e.event_specific_data.materialization for e in res.get_asset_materialization_events()
               if e.asset_key == dg.AssetKey("request_costs"))
    return {k: _value(v) for k, v in mat.metadata.items()}


def run_publish(raw: Path, lake: Path, warehouse: Path, *, keep: int | None = None, console=None) -> dict:
    """Materialize the `warehouse` asset (publish every attributed day of the lake); returns its
    metadata. Raises SystemExit(1) naming the failure."""
    import dagster as dg

    from pipelines.defs.warehouse.assets import cost_marts
    from pipelines.defs.warehouse.assets import warehouse as warehouse_asset
    from pipelines.resources import AttributionSettings, ParquetLake, RawInputs, Warehouse

    console = console or _console(stderr=True)
    wh = Warehouse(path=str(warehouse)) if keep is None else Warehouse(path=str(warehouse), keep=keep)
    resources = {"raw": RawInputs(root=str(raw)), "lake": ParquetLake(root=str(lake)), "warehouse": wh,
                 "settings": AttributionSettings()}
    with console.status(f"publishing {warehouse}"):
        res = dg.materialize([cost_marts, warehouse_asset], selection=[warehouse_asset], resources=resources,
                             instance=_instance(), raise_on_error=False, tags={"inferledger/command": "publish"},
                             run_config=QUIET_RUN)
    if not res.success:
        for ev in res.get_step_failure_events():
            err = ev.event_specific_data.error
            console.print(f"[red]failed:[/red] step {ev.step_key}: {err.message.strip() if err else 'see the run log'}")
        raise SystemExit(1)
    mat = res.get_asset_materialization_events()[0].event_specific_data.materialization
    return {k: _value(v) for k, v in mat.metadata.items()}


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

    console = console or _console()
    part = lambda name: pl.read_parquet(lake / name / f"date={day.isoformat()}" / "part-0.parquet")  # noqa: E731
    totals = part("totals")
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
    facts = part("request_costs")
    currency = facts["currency"][0] if facts.height else ""
    by_tier = (facts.group_by("tier").agg(pl.len().alias("requests"), pl.col("direct_cost").mean().alias("direct"),
                                           pl.col("fully_loaded_cost").mean().alias("loaded"),
                                           (pl.col("energy_kwh").sum() * 3.6e6 / pl.col("output_tokens").sum()).alias("j_tok"))
               .sort("loaded", descending=True))
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
    return 0


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
        try:
            rollback(path, args.rollback)
        except PublishError as e:
            console.print(f"[red]error:[/red] {e}")
            return 1
        console.print(f"{path.resolve()} is version {args.rollback} again")
        return 0
    meta = run_publish(Path(args.raw), Path(args.lake), path, keep=args.keep, console=console)
    console.print(f"published version {meta['version']}: {meta['days']} day(s) {meta['first_day']} .. {meta['last_day']}, "
                  f"{meta['dagster/row_count']:,} requests, {meta['seconds']:.1f} s -> {path.resolve()}")
    return 0


def cmd_sql(args) -> int:
    from warehouse.access import RefusedStatement, execute, export, open_warehouse

    console = _console()
    err = _console(stderr=True)
    export_dir = Path(args.export_dir)
    try:
        con = open_warehouse(args.warehouse)
    except FileNotFoundError as e:
        err.print(f"[red]error:[/red] {e}")
        return 1

    def run_sql(sql: str) -> int:
        try:
            results = execute(con, sql, export_dir)
        except RefusedStatement as e:
            err.print(f"[red]refused:[/red] {e}")
            return 2
        except Exception as e:  # a DuckDB error: bad column, bad syntax
            err.print(f"[red]error:[/red] {str(e).strip()}")
            return 1
        for r in results:
            if r.frame is None:
                console.print(r.message)
            else:
                print_frame(r.frame, console, max_rows=args.max_rows)
        last = next((r.frame for r in reversed(results) if r.frame is not None), None)
        if args.out:
            if last is None:
                err.print("[red]error:[/red] --out: the SQL returned no result to export")
                return 1
            console.print(f"wrote {last.height:,} row(s) to {export(last, Path(args.out)).resolve()}")
        return 0

    try:
        if args.command_sql is not None:
            return run_sql(args.command_sql)
        if args.file:
            f = Path(args.file)
            if not f.exists():
                err.print(f"[red]error:[/red] {f}: no such SQL file")
                return 1
            return run_sql(f.read_text())
        return _repl(con, run_sql, console)
    finally:
        con.close()


def _repl(con, run_sql, console) -> int:
    from warehouse.access import table_catalog

    console.print("inferledger sql (read-only). End statements with ';'. .tables lists the tables, .quit leaves.")
    buffer: list[str] = []
    while True:
        try:
            line = input("inferledger> " if not buffer else "        ...> ")
        except EOFError:
            console.print()
            return 0
        stripped = line.strip()
        if not buffer and stripped in (".quit", ".exit", "\\q"):
            return 0
        if not buffer and stripped == ".tables":
            print_frame(table_catalog(con), console, max_rows=200)
            continue
        buffer.append(line)
        if stripped.endswith(";"):
            run_sql("\n".join(buffer))
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
    q.add_argument("--out", help="write the last result to a .csv or .parquet file")
    q.add_argument("--export-dir", default=env("INFERLEDGER_EXPORT_DIR", "exports"),
                   help="the only directory COPY ... TO may write into (default ./exports)")
    q.add_argument("--max-rows", type=int, default=50, help="rows printed per result (default 50)")
    q.set_defaults(func=cmd_sql)

    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
