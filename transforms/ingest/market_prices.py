"""Hourly market prices (`<raw>/prices/<tariff>.csv`, docs/raw-formats.md) to parsed MARKET_PRICES
frames.

A market tariff of the inventory names its price file (`market_price_file:`, relative to the raw
directory): `hour_utc,price_per_kwh`, one row per hour, the start of the hour in RFC 3339 (an
offset is converted; none means UTC), the price a plain decimal in the tariff's currency. A price
file is not delivered per day: it covers as many hours as the market published, and the
partition of day D holds the hours of D (`hours_of_day`), the ones D's attribution prices its
slots with. The pipeline then calls `classify(parsed, MARKET_PRICES, day)`: an hour given twice
with the same price is an `exact_duplicate` (one kept), with two prices a `conflicting_duplicate`
(none kept: attribution then names the unpriced slots).
"""

from datetime import date
from pathlib import PurePosixPath

import polars as pl

from transforms.contracts import MARKET_PRICES, UTC_US
from transforms.ingest.common import day_bounds, decimal, field, first_reason, parse_utc, raw_text, unreadable
from transforms.inventory import Inventory


def market_price_files(inventory: Inventory) -> dict[str, list[str]]:
    """The price file of each market tariff, relative to the raw directory (`a/./b.csv` is
    `a/b.csv`), with the tariffs that name it."""
    files: dict[str, list[str]] = {}
    for t in inventory.tariffs:
        if t.kind == "market" and t.market_price_file:
            files.setdefault(PurePosixPath(t.market_price_file).as_posix(), []).append(t.id)
    return files


def parse_market_price_csv(raw: pl.LazyFrame, inventory: Inventory, site_id: str | None = None) -> pl.LazyFrame:
    """`scan_csv_text` of the market price files to a parsed MARKET_PRICES frame: one row per data
    row and tariff naming the file (`tariff_id`), `hour_utc` (UTC, the start of an hour) and
    `price_per_kwh`. `site_id` is unused (prices are fleet-wide)."""
    tariffs = pl.LazyFrame([(f, t) for f, ids in market_price_files(inventory).items() for t in ids],
                           schema={"_source_file": pl.String, "tariff_id": pl.String}, orient="row")
    text = raw_text(raw, ("hour_utc", "price_per_kwh"))
    hour = parse_utc(field("hour_utc"), naive_is_utc=True)
    parsed = (text.join(tariffs, on="_source_file", how="left", maintain_order="left")
              .with_columns(hour.alias("hour_utc"), decimal(field("price_per_kwh")).alias("price_per_kwh"),
                            pl.lit(None, pl.String).alias("_reason"), pl.lit(None, pl.String).alias("_detail")))
    checks = [
        (pl.col("tariff_id").is_null(), "invalid_value",
         "no market tariff names this file (`market_price_file:` in inventory.yaml); name it, or remove the file"),
        (unreadable("hour_utc", pl.col("hour_utc")), "bad_timestamp",
         pl.format("`hour_utc` {} is not an RFC 3339 time; write the start of a UTC hour (e.g. 2026-11-24T05:00:00Z)",
                   field("hour_utc").str.head(40))),
        (pl.col("hour_utc") != pl.col("hour_utc").dt.truncate("1h"), "invalid_value",
         pl.format("`hour_utc` {} is not the start of an hour; write one price per UTC hour, at its start",
                   field("hour_utc").str.head(40))),
        (unreadable("price_per_kwh", pl.col("price_per_kwh")), "invalid_value",
         pl.format("`price_per_kwh` {} is not a plain decimal number; write e.g. 0.0431",
                   field("price_per_kwh").str.head(40))),
    ]
    return (parsed.with_columns(first_reason(checks))
            .select(*(pl.col(c.name).cast(c.dtype) for c in MARKET_PRICES.columns),
                    "_source_file", pl.col("_source_row").cast(pl.Int64), "_reason", "_detail"))


def hours_of_day(parsed: pl.LazyFrame, day: date) -> pl.LazyFrame:
    """The rows of `parsed` the partition of `day` holds: the hours of that UTC day, and the rows
    no hour could be read from (every day that reads the file reports them)."""
    start, end = day_bounds(day)
    hour = pl.col("hour_utc")
    return parsed.filter(hour.is_null() | hour.is_between(pl.lit(start, UTC_US), pl.lit(end, UTC_US), closed="left"))
