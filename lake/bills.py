"""Which bill lines a day uses, whenever they were delivered (DOMAIN.md section 7).

The lake keeps `cost_lines` by the day the bill was delivered (the raw folder's date) and its
site. A day uses every line whose charge period overlaps it (or, for a demand line, whose peak
interval starts on it), delivered before, on or after the day: a month's electricity invoice
delivered on the 3rd of the next month reaches every day of the month.

A bill delivered twice is counted once. **The latest delivery of a bill replaces the earlier
ones**, as an accountant keeps the latest version of an invoice:

- an invoice (electricity, colocation, canonical lines: `line_id` = `<invoice_id>:<line_no>`)
  is all the lines of one `source` and `invoice_id`: its latest delivery day holds the bill,
  and lines of an earlier delivery that the latest one no longer has are dropped with it;
- a FOCUS row is its own bill (its `line_id` hashes the row): the same row delivered again is
  counted once. FOCUS states corrections as rows of their own (`ChargeClass` Correction), so an
  earlier row is never replaced by a different one.

`bill_index` reads only the Parquet footers (the row-group statistics of the period columns),
so finding the deliveries that touch a day does not read the bills themselves; the lines are
then read from those deliveries only, and the winners from the keys (`source`, `line_id`) of
every delivery.
"""

from datetime import date, datetime, timedelta, UTC
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from lake.object_stores import parquet_metadata
from lake.store import Lake
from transforms.contracts import COST_LINES, UTC_US

INDEX = pl.Schema({"file": pl.String, "delivered": pl.Date, "site": pl.String,
                   "first_at": UTC_US, "last_at": UTC_US, "mtime_ns": pl.Int64})


def _stat(meta: pq.FileMetaData, column: str, which: str) -> tuple[bool, datetime | None]:
    """Whether every row group of the file states `column`'s statistics (or is all null there),
    and the min or max over them (None when all null)."""
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
    if column not in names:
        return False, None
    j, values = names.index(column), []
    for g in range(meta.num_row_groups):
        st = meta.row_group(g).column(j).statistics
        if st is not None and st.has_min_max:
            values.append(getattr(st, which))
        elif st is None or st.null_count != meta.row_group(g).num_rows:
            return False, None
    v = (min(values) if which == "min" else max(values)) if values else None
    return True, (v.replace(tzinfo=UTC) if v is not None and v.tzinfo is None else v)


def bill_index(lake: Lake) -> pl.DataFrame:
    """One row per `cost_lines` file: its delivery day and site, and the span its lines touch:
    `first_at` (earliest `period_start`), `last_at` (latest `period_end`, or `peak_at` + the
    15-minute peak interval when later), and its modification time. A file without rows has null
    times."""
    rows = []
    for f in lake.all_files("cost_lines"):
        meta = parquet_metadata(f)
        first, last = _span(f, meta) if meta.num_rows else (None, None)
        delivered, site = lake.day_site(f)
        rows.append({"file": str(f), "delivered": delivered, "site": site, "first_at": first, "last_at": last,
                     "mtime_ns": lake.mtime_ns(f)})
    return pl.DataFrame(rows, schema=INDEX)


def _span(f: Path, meta: pq.FileMetaData) -> tuple[datetime, datetime]:
    """First and last instant the lines of file `f` touch, from its footer's statistics; from
    its columns when the writer kept no statistics (a file is never left out for want of them)."""
    stats = {(c, w): _stat(meta, c, w) for c in ("period_start", "period_end", "peak_at") for w in ("min", "max")}
    if all(known for known, _ in stats.values()):
        got = {k: v for k, (_, v) in stats.items()}
    else:
        cols = [getattr(pl.col(c), w)().alias(f"{c} {w}") for c, w in stats]
        got = dict(zip(stats, pl.scan_parquet(f).select(cols).collect().row(0), strict=True))
    first, end = got[("period_start", "min")], got[("period_end", "max")]
    if got[("peak_at", "min")] is not None:
        first = min(first, got[("peak_at", "min")])
        end = max(end, got[("peak_at", "max")] + timedelta(minutes=15))
    return first, end


def deliveries_touching(index: pl.DataFrame, first: date, last: date) -> pl.DataFrame:
    """The rows of `index` whose lines may touch a day from `first` to `last` (inclusive)."""
    lo = datetime(first.year, first.month, first.day, tzinfo=UTC)
    hi = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)
    return index.filter((pl.col("first_at") < pl.lit(hi, UTC_US)) & (pl.col("last_at") > pl.lit(lo, UTC_US)))


def _bill_of_line() -> pl.Expr:
    """The bill a line belongs to: its invoice (`line_id` before the last `:`), a FOCUS row itself."""
    invoice = pl.col("line_id").str.replace(r":[^:]*$", "")
    return pl.when(pl.col("source") == "focus").then(pl.col("line_id")).otherwise(invoice)


def _scan(files: list[str], columns: list[str]) -> pl.LazyFrame:
    return (pl.scan_parquet(files, hive_partitioning=True).select(*columns, "date")
            .with_columns(pl.col("date").cast(pl.Date)))


def day_bill_lines(lake: Lake, day: date, index: pl.DataFrame | None = None) -> pl.LazyFrame:
    """The `cost_lines` (COST_LINES columns, sorted by source and line_id) of the deliveries
    whose lines touch `day`, each bill in its latest delivery (module docstring). The
    transforms keep those whose period overlaps the day (`lines.day_lines`,
    `invoices.invoice_lines_of_day`)."""
    index = bill_index(lake) if index is None else index
    touching = deliveries_touching(index, day, day)
    if index.is_empty() or touching.is_empty():
        return pl.LazyFrame(schema=COST_LINES.schema)
    latest = (_scan(index["file"].to_list(), ["source", "line_id"])
              .with_columns(_bill_of_line().alias("_bill"))
              .group_by("source", "_bill").agg(pl.col("date").max().alias("_latest")))
    lines = (_scan(touching["file"].to_list(), COST_LINES.names)
             .with_columns(_bill_of_line().alias("_bill"))
             .join(latest, on=["source", "_bill"], how="inner")
             .filter(pl.col("date") == pl.col("_latest")))
    # One row per line: the same line in two site folders of one delivery is one line.
    return (lines.sort("date", "site_id", "source", "line_id").group_by("source", "line_id", maintain_order=True).last()
            .select(COST_LINES.names).sort("source", "line_id"))


def stale_days(lake: Lake) -> list[date]:
    """Attributed days older than a bill delivery touching them: a bill delivered (or delivered
    again) after the day was attributed, whose lines overlap the day. Re-attribute them
    (`inferledger attribute --date D`; `inferledger run` does it for the days its bills touch)."""
    index = bill_index(lake).filter(pl.col("first_at").is_not_null())
    if index.is_empty():
        return []
    out = []
    for day in lake.days_with("request_costs"):
        attributed = lake.mtime_ns(lake.partition_file("request_costs", day))
        if deliveries_touching(index, day, day).filter(pl.col("mtime_ns") > attributed).height:
            out.append(day)
    return out
