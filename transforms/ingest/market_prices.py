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

A tariff may name a file in another layout (`market_price_format:`, docs/inventory.md): Energinet's
Elspotprices export (`energinet_elspot`) or any hourly CSV it describes (`hourly_csv`). The reader
reads each file with its tariff's separator, every column as text (`market_price_separators`);
`parse_market_price_csv` turns each layout into the same rows (`tariff_id, hour_utc,
price_per_kwh`), prices converted to per kWh as decimals (exactly, not by a float division).
"""

from datetime import date
from pathlib import PurePosixPath

import polars as pl

from transforms.contracts import MARKET_PRICES, UTC_US
from transforms.ingest.common import (column_missing, day_bounds, decimal, field, first_reason, parse_utc, raw_text,
                                      unreadable)
from transforms.inventory import Inventory, Tariff

# Prices are read as decimals of this scale (digits after the point) before the conversion to per
# kWh: 131,570007 EUR/MWh is 0.131570007 EUR/kWh, the float nearest that decimal.
_PRICE_DECIMAL = pl.Decimal(38, 15)
# Energinet's Elspotprices export: the columns read, and the price column of each currency.
ENERGINET_HOUR, ENERGINET_AREA = "HourUTC", "PriceArea"
ENERGINET_PRICE = {"EUR": "SpotPriceEUR", "DKK": "SpotPriceDKK"}
# Parsed-frame column: the price area of an Energinet row no tariff reads (null on records).
UNREAD_AREA = "_unread_area"


def market_price_files(inventory: Inventory) -> dict[str, list[str]]:
    """The price file of each market tariff, relative to the raw directory (`a/./b.csv` is
    `a/b.csv`), with the tariffs that name it."""
    files: dict[str, list[str]] = {}
    for t in inventory.tariffs:
        if t.kind == "market" and t.market_price_file:
            files.setdefault(PurePosixPath(t.market_price_file).as_posix(), []).append(t.id)
    return files


def _file(t: Tariff) -> str:
    return PurePosixPath(t.market_price_file or "").as_posix()


def market_price_separators(inventory: Inventory) -> dict[str, str]:
    """The field separator of each market price file (the inventory holds every tariff naming a
    file to one format and separator): `;` for Energinet's export, `,` for the canonical file."""
    return {_file(t): t.price_separator for t in inventory.tariffs if t.kind == "market" and t.market_price_file}


def _layout_tariffs(inventory: Inventory) -> list[Tariff]:
    return [t for t in inventory.tariffs
            if t.kind == "market" and t.market_price_file and t.market_price_format != "canonical"]


def parse_market_price_csv(raw: pl.LazyFrame, inventory: Inventory, site_id: str | None = None) -> pl.LazyFrame:
    """`scan_csv_text` of the market price files to a parsed MARKET_PRICES frame: one row per data
    row and tariff naming the file (`tariff_id`), `hour_utc` (UTC, the start of an hour) and
    `price_per_kwh`; the rows of the files of other layouts (`market_price_format:`) after those of
    canonical files. `site_id` is unused (prices are fleet-wide)."""
    others = _layout_tariffs(inventory)
    other_files = {_file(t) for t in others}
    canonical = _parse_canonical(raw.filter(~pl.col("_source_file").is_in(sorted(other_files))), inventory,
                                 other_files) if other_files else _parse_canonical(raw, inventory, other_files)
    areas: dict[str, set[str]] = {}
    for t in others:
        if t.market_price_format == "energinet_elspot":
            areas.setdefault(_file(t), set()).add(t.market_price_area or "")
    return pl.concat([canonical, *(_parse_layout(raw.filter(pl.col("_source_file") == _file(t)), t)
                                   for t in others),
                      *(_unread_areas(raw.filter(pl.col("_source_file") == f), read) for f, read in areas.items())],
                     how="vertical")


def _unread_areas(raw: pl.LazyFrame, read: set[str]) -> pl.LazyFrame:
    """The rows of an Energinet file whose `PriceArea` no tariff naming the file reads: not records
    of any tariff, each marked `UNREAD_AREA` with its area and hour (so a day keeps its own),
    counted in the audit as an ignored entry per area (`unread_areas`)."""
    text = raw_text(raw, (ENERGINET_HOUR, ENERGINET_AREA))
    area = field(ENERGINET_AREA)
    rows = text.filter(area.is_not_null() & ~area.is_in(sorted(read))).with_columns(
        pl.lit(None, pl.String).alias("tariff_id"), _hour_columns(field(ENERGINET_HOUR), "UTC")[0],
        pl.lit(None, pl.Float64).alias("price_per_kwh"), pl.lit(None, pl.String).alias("_reason"),
        pl.lit(None, pl.String).alias("_detail"))
    return _finish(rows.with_columns(area.alias(UNREAD_AREA)))


def _parse_canonical(raw: pl.LazyFrame, inventory: Inventory, other_files: set[str]) -> pl.LazyFrame:
    """The canonical files (`hour_utc,price_per_kwh`), as before other layouts existed."""
    tariffs = pl.LazyFrame([(f, t) for f, ids in market_price_files(inventory).items() for t in ids
                            if f not in other_files],
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
    return _finish(parsed.with_columns(first_reason(checks)))


def _finish(parsed: pl.LazyFrame) -> pl.LazyFrame:
    unread = pl.col(UNREAD_AREA) if UNREAD_AREA in parsed.collect_schema() else pl.lit(None, pl.String)
    return parsed.select(*(pl.col(c.name).cast(c.dtype) for c in MARKET_PRICES.columns),
                         "_source_file", pl.col("_source_row").cast(pl.Int64), "_reason", "_detail",
                         unread.alias(UNREAD_AREA))


def unread_areas(parsed: pl.LazyFrame, day: date) -> tuple[pl.LazyFrame, list[tuple[str, str]]]:
    """`parsed` (of day `day`'s hours) without the rows of price areas no tariff reads, and one
    ignored audit entry per file and area (`<file>:PriceArea=<area>`, why, and the count), so each
    row of the day's hours is accounted once: a record of its tariff (read, accepted or
    quarantined) or a row of an unread area (docs/raw-formats.md, "Market prices")."""
    if UNREAD_AREA not in parsed.collect_schema():
        return parsed, []
    counts = (parsed.filter(pl.col(UNREAD_AREA).is_not_null()).group_by("_source_file", UNREAD_AREA)
              .agg(pl.len().alias("n")).sort("_source_file", UNREAD_AREA).collect())
    entries = [(f"{file}:PriceArea={area}",
                f"holds {n:,} row(s) of {day.isoformat()}'s hours of price area {area}, which no market tariff "
                "naming the file reads (`market_price_area:`): not records of any tariff, not read. Nothing to do "
                f"unless a site buys in {area} (then add its tariff)")
               for file, area, n in counts.iter_rows()]
    return parsed.filter(pl.col(UNREAD_AREA).is_null()).drop(UNREAD_AREA), entries


def _exact_price(text: pl.Expr, comma: bool, per_mwh: bool) -> pl.Expr:
    """A price written with the decimal mark `,` (`comma`) or `.`, no thousands marks, no exponent,
    as a decimal per kWh (divided by 1000 when `per_mwh`), then Float64; null when unreadable."""
    mark = "," if comma else r"\."
    s = pl.when(text.str.contains(rf"^[+-]?(\d+({mark}\d*)?|{mark}\d+)$")).then(text)
    value = (s.str.replace(",", ".", literal=True) if comma else s).cast(_PRICE_DECIMAL, strict=False)
    return (value / pl.lit(1000) if per_mwh else value).cast(pl.Float64)


def _layout(t: Tariff) -> tuple[str, str, bool, bool, str]:
    """hour column, price column, decimal comma, per MWh, zone of naive times of a tariff's layout."""
    if t.market_price_format == "energinet_elspot":
        return ENERGINET_HOUR, ENERGINET_PRICE[t.currency], True, True, "UTC"
    cols = t.market_price_columns
    assert cols is not None  # the inventory refuses an hourly_csv tariff without them
    return (cols.hour, cols.price, t.market_price_decimal == ",", t.market_price_unit == "MWh",
            t.market_price_timezone or "UTC")


def _parse_layout(raw: pl.LazyFrame, t: Tariff) -> pl.LazyFrame:
    """The rows of tariff `t`'s file in its layout (`energinet_elspot` or `hourly_csv`): the
    rows of its price area only (Energinet's other areas are not its records), hour and price read
    as the tariff says, each defect quarantined with its reason and fix."""
    hour_col, price_col, comma, per_mwh, zone = _layout(t)
    energinet = t.market_price_format == "energinet_elspot"
    names = (hour_col, price_col, *((ENERGINET_AREA,) if energinet else ()))
    text = raw_text(raw, names, required=names)
    if energinet:
        text = text.filter(field(ENERGINET_AREA).is_null() | (field(ENERGINET_AREA) == t.market_price_area))
    where = f"tariff {t.id}, `market_price_format: {t.market_price_format}`"
    parsed = text.with_columns(pl.lit(t.id).alias("tariff_id"), pl.lit(None, pl.String).alias("_reason"),
                               pl.lit(None, pl.String).alias("_detail"),
                               _exact_price(field(price_col), comma, per_mwh).alias("price_per_kwh"))
    parsed = parsed.with_columns(_hour_columns(field(hour_col), zone))
    unit = "MWh" if per_mwh else "kWh"
    mark = "a decimal comma (131,570007)" if comma else "a decimal point (131.570007)"
    checks = [column_missing(n, f"{where} reads it; docs/raw-formats.md, \"Market prices\"") for n in names]
    checks += [
        (field(hour_col).is_null(), "missing_required_field",
         f"`{hour_col}` is empty; write the start of the hour ({where})"),
        (pl.col("_hour_problem").is_not_null(), "bad_timestamp", pl.format(
            "`{}` {} {}", pl.lit(hour_col), field(hour_col).str.head(40), pl.col("_hour_problem"))),
        (pl.col("hour_utc") != pl.col("hour_utc").dt.truncate("1h"), "invalid_value",
         pl.format(f"`{hour_col}` {{}} is not the start of an hour; write one price per hour, at its start",
                   field(hour_col).str.head(40))),
        (field(price_col).is_null(), "missing_required_field",
         f"`{price_col}` is empty: an hour without a price is not a zero price; export the file again once the "
         f"price is published, or remove the row ({where})"),
        (unreadable(price_col, pl.col("price_per_kwh")), "invalid_value",
         pl.format(f"`{price_col}` {{}} is not a number per {unit} with {mark} and no thousands mark; "
                   f"fix the export ({where})", field(price_col).str.head(40))),
    ]
    if energinet:
        checks.insert(len(names) + 1, (field(ENERGINET_AREA).is_null(), "missing_required_field",
                                       f"`PriceArea` is empty; the row's area cannot be told ({where})"))
    return _finish(parsed.with_columns(first_reason(checks)))


def _hour_columns(text: pl.Expr, zone: str) -> list[pl.Expr]:
    """`hour_utc` from `text`, and `_hour_problem` (why it cannot be read, else null). A time with
    an offset is converted; one without is local time in `zone` (docs/raw-formats.md: a local hour
    that does not exist is refused; the autumn's repeated hour is read in the file's order, its
    two rows the earlier and the later hour; given once or more than twice, it is refused)."""
    s = text.str.replace(r"^(\d{4}-\d\d-\d\d)T", "${1} ")
    naive = pl.coalesce(s.str.to_datetime("%Y-%m-%d %H:%M", time_unit="us", strict=False),
                        s.str.to_datetime("%Y-%m-%d %H:%M:%S", time_unit="us", strict=False))
    aware = pl.when(text.str.contains(r"([zZ]|[+-]\d\d:?\d\d)$")).then(parse_utc(text))
    earliest = naive.dt.replace_time_zone(zone, ambiguous="earliest", non_existent="null")
    latest = naive.dt.replace_time_zone(zone, ambiguous="latest", non_existent="null")
    ambiguous = earliest != latest
    file = pl.col("_source_file")
    copies = pl.len().over(file, naive)
    first = pl.int_range(pl.len()).over(file, naive, order_by="_source_row") == 0
    in_order = naive.sort_by("_source_row").drop_nulls()
    ascending = in_order.first().over(file) <= in_order.last().over(file)
    local = pl.when(~ambiguous).then(earliest).when(copies == 2).then(
        pl.when(first == ascending).then(earliest).otherwise(latest))
    hour = pl.coalesce(aware, local.dt.convert_time_zone("UTC"))
    problem = (pl.when(text.is_null() | hour.is_not_null()).then(pl.lit(None, pl.String))
               .when(naive.is_null()).then(pl.lit(
                   "is not a time; write `YYYY-MM-DD HH:MM` (local time in the tariff's `market_price_timezone`, "
                   "UTC by default) or RFC 3339 with an offset"))
               .when(earliest.is_null()).then(pl.lit(
                   f"does not exist in {zone} (the clocks go forward over it): the file is not an hourly series "
                   "in that zone; fix `market_price_timezone:` or the export"))
               .otherwise(pl.format(
                   f"is given {{}} time(s) and is ambiguous in {zone} (the clocks go back over it): its two rows "
                   "are read in the file's order; export UTC times or offsets, or give the hour exactly twice",
                   copies)))
    return [hour.alias("hour_utc"), problem.alias("_hour_problem")]


def hours_of_day(parsed: pl.LazyFrame, day: date) -> pl.LazyFrame:
    """The rows of `parsed` the partition of `day` holds: the hours of that UTC day, and the rows
    no hour could be read from (every day that reads the file reports them)."""
    start, end = day_bounds(day)
    hour = pl.col("hour_utc")
    return parsed.filter(hour.is_null() | hour.is_between(pl.lit(start, UTC_US), pl.lit(end, UTC_US), closed="left"))
