"""The quality suites on a day of the Parquet lake: one SuiteResult per partition (date x site for
the per-site inputs), and the command line that prints them.

A partition of more than `batch_rows` rows (default the setting `quality_batch_rows`,
$INFERLEDGER_QUALITY_BATCH_ROWS) is read and validated in batches of that many rows, with the
results of validating it whole (`transforms.quality.batched`), so memory is bounded by the
batch, not the partition (a slice of the lazy scan reads only the row groups it covers); one of
up to WHOLE_ROWS rows is validated in one frame, anything larger through the batched path (read
once, as one frame, when it fits one batch).

    python -m pipelines.suites LAKE DAY [--inventory FILE] [--suite S ...] [--json FILE] [--verbose]

runs them, prints the report and exits 1 when any error-severity expectation fails (2 on a usage
error), 0 otherwise; `inferledger check-data` runs them too, with the real samples and the
warehouse checks.
"""

import argparse
import json
import os
import sys
import time
from collections.abc import Iterable
from datetime import date
from pathlib import Path

import polars as pl

from lake.datasets import iter_batches, partition_sources, previous_rows, read_files, rows_in
from lake.inventory import inventory_path, load_inventory
from lake.store import Lake
from settings import SettingError, default, resolve
from transforms.contracts import CANONICAL
from transforms.inventory import Inventory, InventoryError
from transforms.quality.batched import validate_batches
from transforms.quality.runner import SuiteResult, format_report, validate_frame, validate_inventory
from transforms.quality.sources import DATASETS as SOURCE_DATASETS
from transforms.quality.sources import judge_sources
from transforms.quality.suites import REQUEST_COSTS_COLUMNS, SuiteContext

PER_SITE = ("requests", "power_readings", "cost_lines")
# "sources": what each ingest of the day lost to quarantine or ignored (transforms/quality/sources.py).
ALL_SUITES = ("inventory", "sources", "requests", "power_readings", "cost_lines", "assets", "request_costs")
# Rows GX sees at once, a few columns at a time: 1.6 GiB of peak for the request_costs suite on a
# 10 M-row day (1.25 GiB at 1 M rows, 25 % slower: GX's own work is per expectation and batch).
BATCH_ROWS = default("quality_batch_rows")
# Partitions up to this many rows go to GX as one frame; larger ones take the batched path even
# when they fit one batch (the requests of a 2 M-row site: 3.4 s as one frame, about 1 s batched).
WHOLE_ROWS = 100_000


def _schema(suite: str) -> pl.Schema:
    return pl.Schema(REQUEST_COSTS_COLUMNS) if suite == "request_costs" else CANONICAL[suite].schema


def validate_files(suite: str, files: list[Path], ctx: SuiteContext, partition: str,
                   batch_rows: int | None = None) -> SuiteResult:
    """Run `suite` on the rows of `files`: as one frame when they are few (WHOLE_ROWS, or fit
    `batch_rows`), else through `validate_batches`, in batches of `batch_rows` (one when they
    fit), where GX sees a few columns at a time and key uniqueness is judged in Polars."""
    batch_rows = batch_rows or BATCH_ROWS
    schema = _schema(suite)
    rows = rows_in(files)
    if rows <= min(batch_rows, WHOLE_ROWS):
        return validate_frame(suite, read_files(files, schema), ctx, partition=partition)
    if rows <= batch_rows:  # one batch: read once, and the key uniqueness judged on it, not on a second read
        frame = read_files(files, schema).collect()
        return validate_batches(suite, frame.lazy(), iter([frame]), ctx, partition=partition)
    return validate_batches(suite, read_files(files, schema), iter_batches(files, schema, batch_rows), ctx,
                            partition=partition)


def validate_partition(lake_root: Path, suite: str, day: date, inventory: Inventory,
                       site: str | None = None, batch_rows: int | None = None) -> SuiteResult:
    """Run `suite` on one lake partition (`site` for requests, power_readings and cost_lines),
    in batches of `batch_rows` rows (default BATCH_ROWS) when it is larger."""
    lake = Lake(lake_root)
    d = lake.partition_dir(suite, day, site)
    files = lake.partition_files(suite, day, site)
    ctx = SuiteContext(inventory=inventory, day=day, previous_rows=previous_rows(lake, suite, day, site),
                       spill_dir=lake.scratch_folder())
    label = lake.relative(d) + ("" if files else " (no file)")
    return validate_files(suite, files, ctx, label, batch_rows)


def validate_sources(lake_root: Path, dataset: str, day: date, site: str) -> SuiteResult:
    """The source checks of one ingest's partition (transforms/quality/sources.py), as a
    SuiteResult (suite `<dataset>.sources`, partition the audit file's, rows the records read)."""
    started = time.perf_counter()
    lake = Lake(lake_root)
    sources = partition_sources(lake, dataset, day, site)
    results = judge_sources(dataset, sources)
    partition = f"{lake.relative(lake.partition_dir('ingest_audit', day, site))}/{dataset}"
    return SuiteResult(f"{dataset}.sources", partition, int(sources.audit["rows_read"].sum()),
                       time.perf_counter() - started, results)


def run_suites(lake_root: Path, day: date, inventory: Inventory,
               suites: Iterable[str] = ALL_SUITES, batch_rows: int | None = None) -> list[SuiteResult]:
    """Every suite on every partition of `day` that exists in the lake (and the inventory's
    nodes), and the source checks on every ingest audit of the day: one SuiteResult per batch.
    A missing dataset is skipped, not failed: freshness is the warehouse's check."""
    lake = Lake(lake_root)
    out: list[SuiteResult] = []
    for suite in suites:
        if suite == "inventory":
            out.append(validate_inventory(inventory, day))
        elif suite == "sources":
            out += [validate_sources(lake.root, dataset, day, site) for dataset in SOURCE_DATASETS
                    for site in lake.audited(dataset, day)]
        elif suite in PER_SITE:
            out += [validate_partition(lake.root, suite, day, inventory, site, batch_rows)
                    for site in lake.sites(suite, day)]
        elif lake.has_partition(suite, day):
            out.append(validate_partition(lake.root, suite, day, inventory, batch_rows=batch_rows))
    return out


def run_suite_on_files(suite: str, files: list[Path], inventory: Inventory, day: date | None = None,
                       previous: int | None = None, batch_rows: int | None = None) -> SuiteResult:
    """Run `suite` on Parquet files outside the lake layout (real samples, a file under review)."""
    ctx = SuiteContext(inventory=inventory, day=day, previous_rows=previous)
    return validate_files(suite, sorted(files), ctx, ", ".join(Path(f).name for f in files), batch_rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipelines.suites",
                                description="Run the data-quality suites on one day of the lake; exit 1 on an error.")
    p.add_argument("lake", type=Path, help="lake root, e.g. data/lake")
    p.add_argument("day", type=date.fromisoformat, help="UTC day, YYYY-MM-DD")
    p.add_argument("--inventory", type=Path, default=None,
                   help="inventory YAML (default $INFERLEDGER_INVENTORY, else <lake>/../raw/inventory.yaml)")
    p.add_argument("--batch-rows", type=int, default=None,
                   help=f"rows validated at once (default $INFERLEDGER_QUALITY_BATCH_ROWS, else {BATCH_ROWS:,})")
    p.add_argument("--suite", action="append", choices=ALL_SUITES, help="run only these suites (repeatable)")
    p.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    p.add_argument("--verbose", action="store_true", help="list passing expectations too")
    args = p.parse_args(argv)
    try:
        settings = resolve(os.environ, inventory=args.inventory, quality_batch_rows=args.batch_rows)
    except SettingError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    inv_path = inventory_path(args.lake.parent / "raw", settings.inventory)
    if not args.lake.is_dir():
        print(f"error: no lake at {args.lake}; run `inferledger demo` or pass the lake root", file=sys.stderr)
        return 2
    try:
        inventory = load_inventory(inv_path)
    except InventoryError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    results = run_suites(args.lake, args.day, inventory, args.suite or ALL_SUITES, settings.quality_batch_rows)
    print(format_report(results, verbose=args.verbose))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([r.as_dict() for r in results], indent=1, default=str))
    return 1 if any(r.errors for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
