"""Reading a lake partition back for the checks: its rows in bounded batches, its row count from
the Parquet footers, the same partition on the previous day, and what an ingest left of its
sources (audit, quarantine counts, canonical readings).
"""

from collections.abc import Iterable, Iterator
from datetime import date, timedelta
from pathlib import Path

import polars as pl

from lake.object_stores import parquet_metadata
from lake.store import Lake
from transforms.quality.sources import PartitionSources

REASON_SCHEMA = {"source_file": pl.String, "reason": pl.String, "n": pl.Int64, "detail": pl.String}
AUDIT_SCHEMA = {"source_file": pl.String, "rows_read": pl.Int64, "rows_accepted": pl.Int64,
                "rows_quarantined": pl.Int64}


def read_files(files: list[Path], schema: pl.Schema) -> pl.LazyFrame:
    """The files' rows as they are (extra or missing columns reach the schema checks); an empty
    frame of `schema` when there is no file."""
    if not files:
        return pl.LazyFrame(schema=schema)
    return pl.concat([pl.scan_parquet(f, hive_partitioning=False) for f in files], how="diagonal_relaxed")


def rows_in(files: Iterable[Path]) -> int:
    """Row count from the Parquet footers (no data read)."""
    return sum(parquet_metadata(f).num_rows for f in files)


def iter_batches(files: list[Path], schema: pl.Schema, batch_rows: int) -> Iterator[pl.DataFrame]:
    """The rows of `read_files(files, schema)` in file order, at most `batch_rows` at a time:
    slices of the lazy scan, which read only the row groups they cover (never a whole file)."""
    scan, total = read_files(files, schema), rows_in(files)
    for offset in range(0, total, batch_rows):
        yield scan.slice(offset, batch_rows).collect()


def previous_rows(lake: Lake, dataset: str, day: date, site: str | None = None) -> int | None:
    """Rows of the same partition on the previous day; for the asset register, of the latest
    register delivered before `day`. None when there is no such partition."""
    if dataset == "assets":
        earlier = [d for d in lake.delivered_days(dataset) if d < day]
        if not earlier:
            return None
        files = lake.partition_files(dataset, earlier[-1])
    else:
        files = lake.partition_files(dataset, day - timedelta(days=1), site)
    return rows_in(files) if files else None


def partition_sources(lake: Lake, dataset: str, day: date, site: str) -> PartitionSources:
    """The audit, quarantine counts and canonical scan of the ingest of `dataset` for `day` and
    `site` (the audit's site directory: `_fleet` for fleet-wide datasets)."""
    audit_file = lake.partition_file("ingest_audit", day, site, name=dataset)
    quarantine_file = lake.partition_file("quarantine", day, site, name=dataset)
    audit = pl.read_parquet(audit_file) if lake.exists(audit_file) else pl.DataFrame(schema=AUDIT_SCHEMA)
    reasons = (pl.scan_parquet(quarantine_file).group_by("source_file", "reason")
               .agg(pl.len().cast(pl.Int64).alias("n"), pl.col("detail").first()).collect()
               if lake.exists(quarantine_file) else pl.DataFrame(schema=REASON_SCHEMA))
    canonical = None
    if dataset == "power_readings":
        files = lake.partition_files(dataset, day, site)
        canonical = pl.scan_parquet(files) if files else None
    return PartitionSources(audit, reasons, canonical)
