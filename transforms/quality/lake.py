"""Run the suites on a day of the Parquet lake: one SuiteResult per partition (date x site for
the per-site inputs). A partition of more than `batch_rows` rows (default `BATCH_ROWS`, or
$INFERLEDGER_QUALITY_BATCH_ROWS) is read and validated in batches of that many rows, with the
results of validating it whole (`transforms.quality.batched`), so memory is bounded by the
batch, not the partition (a slice of the lazy scan reads only the row groups it covers); one of
up to WHOLE_ROWS rows is validated in one frame, anything larger through the batched path.

    results = run_suites(Path("data/lake"), date(2026, 11, 24), inventory)
    print(format_report(results)); exit(1 if any(r.errors for r in results) else 0)
"""

import os
from collections.abc import Iterable, Iterator
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from transforms.contracts import CANONICAL
from transforms.inventory import Inventory
from transforms.quality.batched import validate_batches
from transforms.quality.runner import SuiteResult, validate_frame
from transforms.quality.sources import DATASETS as SOURCE_DATASETS
from transforms.quality.sources import audited_sites, validate_sources
from transforms.quality.suites import REQUEST_COSTS_COLUMNS, SuiteContext

PER_SITE = ("requests", "power_readings", "cost_lines")
# suite -> lake dataset directory
DATASET_DIR = {"requests": "requests", "power_readings": "power_readings", "cost_lines": "cost_lines",
               "assets": "assets", "request_costs": "request_costs"}
# "sources": what each ingest of the day lost to quarantine or ignored (transforms/quality/sources.py).
ALL_SUITES = ("inventory", "sources", "requests", "power_readings", "cost_lines", "assets", "request_costs")
# Rows GX sees at once, a few columns at a time: 1.6 GiB of peak for the request_costs suite on a
# 10 M-row day (1.25 GiB at 1 M rows, 25 % slower: GX's own work is per expectation and batch).
BATCH_ROWS = int(os.environ.get("INFERLEDGER_QUALITY_BATCH_ROWS") or 2_000_000)
# Partitions up to this many rows go to GX as one frame; larger ones take the batched path even
# when they fit one batch (the requests of a 2 M-row site: 3.4 s as one frame, about 1 s batched).
WHOLE_ROWS = 100_000


def _schema(suite: str) -> pl.Schema:
    return pl.Schema(REQUEST_COSTS_COLUMNS) if suite == "request_costs" else CANONICAL[suite].schema


def partition_dir(lake_root: Path, suite: str, day: date, site: str | None = None) -> Path:
    d = Path(lake_root) / DATASET_DIR[suite] / f"date={day.isoformat()}"
    return d / f"site={site}" if site is not None else d


def read_files(files: list[Path], suite: str) -> pl.LazyFrame:
    """The files' rows as they are (extra or missing columns reach the schema checks); an empty
    frame of the contract's schema when there is no file."""
    if not files:
        return pl.LazyFrame(schema=_schema(suite))
    return pl.concat([pl.scan_parquet(f, hive_partitioning=False) for f in files], how="diagonal_relaxed")


def iter_batches(files: list[Path], suite: str, batch_rows: int) -> Iterator[pl.DataFrame]:
    """The rows of `read_files(files, suite)` in file order, at most `batch_rows` at a time:
    slices of the lazy scan, which read only the row groups they cover (never a whole file)."""
    scan, total = read_files(files, suite), rows_in(files)
    for offset in range(0, total, batch_rows):
        yield scan.slice(offset, batch_rows).collect()


def validate_files(suite: str, files: list[Path], ctx: SuiteContext, partition: str,
                   batch_rows: int | None = None) -> SuiteResult:
    """Run `suite` on the rows of `files`: as one frame when they are few (WHOLE_ROWS, or fit
    `batch_rows`), else through `validate_batches`, in batches of `batch_rows` (one when they
    fit), where GX sees a few columns at a time and key uniqueness is judged in Polars."""
    batch_rows = batch_rows or BATCH_ROWS
    if rows_in(files) <= min(batch_rows, WHOLE_ROWS):
        return validate_frame(suite, read_files(files, suite), ctx, partition=partition)
    return validate_batches(suite, read_files(files, suite), iter_batches(files, suite, batch_rows), ctx,
                            partition=partition)


def rows_in(files: Iterable[Path]) -> int:
    """Row count from the Parquet footers (no data read)."""
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


def previous_rows(lake_root: Path, suite: str, day: date, site: str | None = None) -> int | None:
    """Rows of the same partition on the previous day; for the asset register, of the latest
    register delivered before `day`. None when there is no such partition."""
    if suite == "assets":
        days = sorted(p.name.removeprefix("date=") for p in (Path(lake_root) / "assets").glob("date=*"))
        earlier = [d for d in days if d < day.isoformat()]
        if not earlier:
            return None
        prev = partition_dir(lake_root, suite, date.fromisoformat(earlier[-1]))
    else:
        prev = partition_dir(lake_root, suite, day - timedelta(days=1), site)
    files = sorted(prev.glob("*.parquet"))
    return rows_in(files) if files else None


def validate_partition(lake_root: Path, suite: str, day: date, inventory: Inventory,
                       site: str | None = None, batch_rows: int | None = None) -> SuiteResult:
    """Run `suite` on one lake partition (`site` for requests, power_readings and cost_lines),
    in batches of `batch_rows` rows (default BATCH_ROWS) when it is larger."""
    d = partition_dir(lake_root, suite, day, site)
    files = sorted(d.glob("*.parquet"))
    ctx = SuiteContext(inventory=inventory, day=day, previous_rows=previous_rows(lake_root, suite, day, site))
    label = d.relative_to(lake_root).as_posix() if files else f"{d.relative_to(lake_root).as_posix()} (no file)"
    return validate_files(suite, files, ctx, label, batch_rows)


def validate_inventory(inventory: Inventory, day: date | None = None) -> SuiteResult:
    return validate_frame("inventory", inventory.nodes_frame(), SuiteContext(inventory=inventory, day=day),
                          partition="nodes")


def run_suites(lake_root: Path, day: date, inventory: Inventory,
               suites: Iterable[str] = ALL_SUITES, batch_rows: int | None = None) -> list[SuiteResult]:
    """Every suite on every partition of `day` that exists in the lake (and the inventory's
    nodes), and the source checks on every ingest audit of the day: one SuiteResult per batch. A missing dataset is skipped, not failed: freshness is
    the warehouse's check."""
    lake_root = Path(lake_root)
    out: list[SuiteResult] = []
    for suite in suites:
        if suite == "inventory":
            out.append(validate_inventory(inventory, day))
        elif suite == "sources":
            out += [validate_sources(lake_root, dataset, day, site) for dataset in SOURCE_DATASETS
                    for site in audited_sites(lake_root, dataset, day)]
        elif suite in PER_SITE:
            for site_dir in sorted(partition_dir(lake_root, suite, day).glob("site=*")):
                out.append(validate_partition(lake_root, suite, day, inventory, site_dir.name.removeprefix("site="),
                                              batch_rows))
        elif partition_dir(lake_root, suite, day).is_dir():
            out.append(validate_partition(lake_root, suite, day, inventory, batch_rows=batch_rows))
    return out


def run_suite_on_files(suite: str, files: list[Path], inventory: Inventory, day: date | None = None,
                       previous: int | None = None, batch_rows: int | None = None) -> SuiteResult:
    """Run `suite` on Parquet files outside the lake layout (real samples, a file under review)."""
    ctx = SuiteContext(inventory=inventory, day=day, previous_rows=previous)
    return validate_files(suite, sorted(files), ctx, ", ".join(Path(f).name for f in files), batch_rows)
