"""Requests in flight at midnight (DOMAIN 3.2, docs/attribution.md "Days a request touches"):
when a day's request log reveals requests that started the day before, that earlier day must be
attributed again.

Request logs are partitioned by the day a request completed. Attributing day D reads D's log and
D+1's (when ingested) for the requests that started on the GPU before D ended, and charges them
their seconds before midnight. D+1's log usually arrives after D was attributed: then D is stale.
`previous_day_stale(lake, D + 1)` tells whether D must be attributed again; the runner does so
right after attributing D + 1 (`inferledger run`, `backfill`), and the `downstream` sensor does
the same from the ingest's metadata (`pipelines/automation.py`).
"""

from datetime import date, datetime, time, timedelta, UTC

import polars as pl

from lake.store import Lake
from transforms.attribution.occupancy import gpu_start
from transforms.contracts import REQUESTS


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def started_before(files: list, day: date) -> int:
    """How many requests of a log of `day` (its Parquet `files`) started on the GPU before the
    day began: in flight at midnight, they occupy the day before too."""
    if not files:
        return 0
    lf = pl.scan_parquet(files, schema=REQUESTS.schema, hive_partitioning=False)
    return lf.filter(gpu_start() < pl.lit(_day_start(day), pl.Datetime("us", "UTC"))).select(pl.len()).collect().item()


def in_flight_rows(lake: Lake, day: date) -> int:
    """Fact rows of `day` for requests that completed on a later day (their part before midnight)."""
    files = lake.partition_files("request_costs", day)
    if not files:
        return 0
    end = pl.lit(_day_start(day + timedelta(days=1)), pl.Datetime("us", "UTC"))
    return pl.scan_parquet(files).filter(pl.col("completed_at") >= end).select(pl.len()).collect().item()


def previous_day_stale(lake: Lake, day: date, *, changed_only: bool = True) -> bool:
    """Whether the day before `day` must be attributed again because of `day`'s request log:
    it was attributed, `day`'s log changed since (a file newer than its facts; `changed_only`
    False skips this test, for days attributed while the next one was being ingested), and
    either the log has requests that started before `day` or the earlier attribution charged
    some."""
    prev = day - timedelta(days=1)
    facts = lake.partition_files("request_costs", prev)
    log = lake.day_files("requests", day)
    if not facts or not log:
        return False
    attributed_at = min(lake.mtime_ns(f) for f in facts)
    if changed_only and all(lake.mtime_ns(f) <= attributed_at for f in log):
        return False
    return started_before(log, day) > 0 or in_flight_rows(lake, prev) > 0
