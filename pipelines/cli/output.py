"""What the commands print: tables of a run, an ingest, the conservation of a day, a query's
result, the published warehouse."""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

import polars as pl
from rich.console import Console
from rich.table import Table

from lake.store import Lake
from warehouse.access import execute, open_warehouse
from warehouse.connection import DuckDBLimits

TIER_QUESTION = """SELECT tier, requests, direct_cost_per_query, fully_loaded_cost_per_query,
       fully_loaded_cost_per_m_tokens, energy_kwh, gross_margin, currency
FROM cost_by_tier_day WHERE date = (SELECT max(date) FROM cost_by_tier_day)
ORDER BY fully_loaded_cost_per_query DESC"""


@dataclass
class StepResult:
    asset: str
    partition: str
    metadata: dict


def console(stderr: bool = False) -> Console:
    """A console for stdout (or stderr); 140 columns wide when not a terminal."""
    c = Console(stderr=stderr)
    return c if c.is_terminal else Console(stderr=stderr, width=140)


def _fmt(v) -> str:
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


def print_frame(frame: pl.DataFrame, out: Console | None = None, *, title: str | None = None,
                max_rows: int = 50) -> None:
    """A query result as a readable table: numbers right-aligned with thousands separators."""
    out = out or console()
    t = Table(title=title, title_justify="left")
    for name, dtype in frame.schema.items():
        t.add_column(name, justify="right" if dtype.is_numeric() else "left", overflow="fold")
    for row in frame.head(max_rows).iter_rows():
        t.add_row(*(_fmt(v) for v in row))
    out.print(t)
    more = frame.height - max_rows
    out.print(f"{frame.height:,} row(s)" + (f"; {more:,} not shown (--max-rows, or --out FILE)" if more > 0 else ""))


def _conservation_table(totals: pl.DataFrame, day: date) -> Table:
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
    return t


def print_attribution(day: date, lake: Path, out: Console | None = None, *, by_tier: bool = True) -> None:
    """Sources = requests + idle + unattributed per component, and the cost per query by tier."""
    out = out or console()
    files = Lake(lake)
    out.print(_conservation_table(pl.read_parquet(files.partition_file("totals", day)), day))
    if not by_tier:
        return
    # The day's facts are scanned, five columns, and grouped in the streaming engine: read whole,
    # the 10 M-request day held 8.5 GB here (`inferledger attribute`), against 2.3 GB scanned.
    facts = pl.scan_parquet(files.partition_file("request_costs", day))
    j_per_token = pl.col("energy_kwh").sum() * 3.6e6 / pl.col("output_tokens").sum()
    tiers = (facts.group_by("tier").agg(pl.len().alias("requests"), pl.col("direct_cost").mean().alias("direct"),
                                        pl.col("fully_loaded_cost").mean().alias("loaded"), j_per_token.alias("j_tok"),
                                        pl.col("currency").first())
             .sort("loaded", descending=True).collect(engine="streaming"))
    currency = tiers["currency"][0] if tiers.height else ""
    t = Table(title=f"Cost per query by tier, {day} ({currency})")
    for col in ("tier", "requests", "direct cost / query", "fully loaded / query", "J per output token"):
        t.add_column(col, justify="left" if col == "tier" else "right")
    for r in tiers.iter_rows(named=True):
        t.add_row(r["tier"], f"{r['requests']:,}", f"{r['direct']:.6f}", f"{r['loaded']:.6f}", f"{r['j_tok']:.3f}")
    out.print(t)


def print_ingest_table(results: list[StepResult], lake: Path, out: Console | None = None) -> None:
    out = out or console()
    table = Table(title="Ingest: records per input and site (read = accepted + quarantined)")
    for col in ("input", "site", "files", "read", "accepted", "quarantined", "lake rows", "quarantine reasons"):
        table.add_column(col, justify="left" if col in ("input", "site", "quarantine reasons") else "right")
    for r in sorted(results, key=lambda r: (r.asset, r.partition)):
        m = r.metadata
        reasons = ", ".join(f"{k} {v:,}" for k, v in (m.get("quarantined_by_reason") or {}).items())
        site = r.partition.split("|")[1] if "|" in r.partition else "(fleet)"
        table.add_row(r.asset, site, f"{m['raw_files']:,}", f"{m['rows_read']:,}", f"{m['rows_accepted']:,}",
                      f"{m['rows_quarantined']:,}", f"{m['dagster/row_count']:,}", reasons or "-")
    out.print(table)
    not_read = {name: why for r in results for name, why in (r.metadata.get("files_not_read") or {}).items()}
    if not_read:  # unreadable (quarantined whole) or ignored files: every one is in the ingest audit with why
        n = sum(r.metadata.get("files_unreadable", 0) + r.metadata.get("files_ignored", 0) for r in results)
        out.print(f"{n:,} file(s) not read (ingest_audit status unreadable or ignored), e.g.:")
        for name, why in sorted(not_read.items())[:10]:
            out.print(f"  {name}: {why}", markup=False, soft_wrap=True)
    out.print(f"Lake: {lake if isinstance(lake, str) else lake.resolve()}")


def print_run_summary(outcomes, out: Console, title: str) -> None:
    """One row per run (pipelines.runner.RunOutcome): partition, assets, seconds, checks."""
    t = Table(title=title, title_justify="left")
    for col in ("run", "partition", "assets", "seconds", "checks passed", "warnings", "run id"):
        t.add_column(col, justify="right" if col in ("seconds", "checks passed", "warnings") else "left")
    for o in outcomes:
        passed = sum(1 for c in o.checks if c[2])
        warned = [c[1] for c in o.checks if not c[2]]
        t.add_row(o.job, o.partition or "-", ", ".join(o.materializations) or "-", f"{o.seconds:.1f}",
                  f"{passed}/{len(o.checks)}", ", ".join(warned) or "-", o.run_id[:8])
    out.print(t)


def print_published(meta: dict, path: Path, out: Console, *, limits: DuckDBLimits, export_dir: Path,
                    sql_flags: str = "") -> None:
    """The published version, and the cost per query by tier read back from it (`sql_flags`: what
    the `inferledger sql` examples add to reach it, e.g. its `--warehouse`)."""
    out.rule("Warehouse")
    out.print(f"published version {meta['version']} ({meta['days']} day(s), {meta['dagster/row_count']:,} requests, "
              f"{meta['seconds']:.1f} s)")
    out.print(f"warehouse: [bold]{path.resolve()}[/bold]  (data dictionary: docs/data-dictionary.md)")
    con = open_warehouse(path, limits)
    try:
        (result,) = execute(con, TIER_QUESTION, export_dir)
    finally:
        con.close()
    print_frame(result.frame, out, title="Cost per query by tier (from the warehouse)")
    out.print("Ask it yourself (read-only):")
    sql = f"  .venv/bin/inferledger sql{sql_flags}"
    plain = {"markup": False, "soft_wrap": True}  # a path may hold [ ]; a long line stays one line to copy
    out.print(f'{sql} -c "SELECT tier, fully_loaded_cost_per_query FROM cost_by_tier_day"', **plain)
    out.print(f"{sql}        # interactive; fifteen questions in docs/finance-queries.md", **plain)


def print_check_warnings(checks: list[dict], out: Console) -> None:
    """The day's asset checks (`runs.check_rows`): how many passed, and each that did not (a
    warning: a failed error check stops the run before), with its unexpected rows."""
    failed = [c for c in checks if not c["success"]]
    out.print(f"checks: {len(checks) - len(failed)} of {len(checks)} passed" + ("; not passed:" if failed else ""))
    for c in failed:
        rows = "" if c["unexpected_count"] is None else f" ({c['unexpected_count']} rows)"
        out.print(f"  {c['severity']}: {c['suite']}: {c['name']}{rows}", markup=False, soft_wrap=True)
