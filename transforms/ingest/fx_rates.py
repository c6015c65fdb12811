"""Reference exchange rates (`<raw>/<day>/_fleet/fx/`, docs/raw-formats.md) to parsed FX_RATES frames.

Two layouts, one dataset (units of `currency` per 1 EUR, the ECB's convention):

- the ECB's reference-rate file (`eurofxref-hist.csv`, or the day's `eurofxref.csv`): a `Date`
  column (`YYYY-MM-DD`, or `24 April 2025` as in the daily file) and one column per currency
  (`USD,JPY,...`), rates per 1 EUR, `N/A` (or empty) where a currency is not quoted that day, a
  trailing comma on every line (an unnamed empty column, ignored). Each quoted rate is one record
  (its row in the file is the CSV row); an `N/A` is no record: the ECB published no rate.
- the canonical table (`fx_rates*.csv`): `date,currency,rate`, one record a row.

A rate must be a positive number (`invalid_value`, `out_of_range` otherwise), a date a date
(`bad_timestamp`), a currency three upper-case letters (`unknown_currency`). The same date and
currency twice with the same rate is an `exact_duplicate`, with two rates a
`conflicting_duplicate` (none kept: that day then takes the latest rate before it).
"""

import polars as pl

from transforms.contracts import FX_RATES
from transforms.ingest.canonical import parse_canonical
from transforms.ingest.common import decimal, first_reason
from transforms.inventory import Inventory

# Not a currency column of the ECB file: the date, the reader's bookkeeping, the trailing empty column.
_NOT_RATES = {"Date", "_source_file", "_source_row", ""}
# A rate per EUR outside (0, MAX_RATE_PER_EUR] is not a rate (the largest the ECB ever quoted,
# IDR and the old ROL/TRL, are below 1e5; 1e7 leaves room for any redenominated currency).
MAX_RATE_PER_EUR = 1e7
NOT_QUOTED = ("N/A", "")


def _checks(rate_text: pl.Expr, date_text: pl.Expr) -> list[tuple[pl.Expr, str, pl.Expr | str]]:
    """The judgements of one rate record (`date`, `currency`, `rate` parsed; `rate_text` and
    `date_text` as given: a value given but unreadable is rejected here, a missing one by
    `classify`, as `missing_required_field`)."""
    return [
        (pl.col("date").is_null() & date_text.is_not_null(), "bad_timestamp",
         pl.format("date {} is not a date (YYYY-MM-DD, or `24 April 2025` in the ECB's daily file); fix the file",
                   date_text.str.head(40))),
        (pl.col("currency").is_not_null() & ~pl.col("currency").str.contains(r"^[A-Z]{3}$"), "unknown_currency",
         pl.format("currency {} is not a three-letter ISO 4217 code; name the currency as ISO 4217 does (USD, JPY)",
                   pl.col("currency"))),
        (pl.col("rate").is_null() & rate_text.is_not_null(), "invalid_value",
         pl.format("rate {} is not a plain decimal number (units of the currency per 1 EUR, e.g. 1.1357)",
                   rate_text.str.head(40))),
        (pl.col("rate").is_not_null() & ~pl.col("rate").is_between(0.0, MAX_RATE_PER_EUR, closed="right"),
         "out_of_range",
         pl.format("rate {} per EUR is not above 0 and at most {}; a reference rate is a positive number of units "
                   "of the currency per 1 EUR", pl.col("rate"), pl.lit(MAX_RATE_PER_EUR))),
    ]


def _finish(parsed: pl.LazyFrame, rate_text: pl.Expr, date_text: pl.Expr) -> pl.LazyFrame:
    if "_reason" not in parsed.collect_schema():
        parsed = parsed.with_columns(pl.lit(None, pl.String).alias("_reason"), pl.lit(None, pl.String).alias("_detail"))
    return (parsed.with_columns(first_reason(_checks(rate_text, date_text)))
            .select(*(pl.col(c.name).cast(c.dtype) for c in FX_RATES.columns),
                    "_source_file", pl.col("_source_row").cast(pl.Int64), "_reason", "_detail"))


def parse_ecb_rates(raw: pl.LazyFrame, inventory: Inventory | None = None, site_id: str | None = None) -> pl.LazyFrame:
    """`scan_csv_text` of ECB reference-rate files (one column per currency) to a parsed FX_RATES
    frame: one record per quoted rate (date, currency, rate per EUR), `N/A` and empty cells
    left out. `inventory` and `site_id` are unused (rates are fleet-wide)."""
    currencies = [c for c in raw.collect_schema().names() if c not in _NOT_RATES]
    if not currencies:
        return _finish(raw.select("_source_file", "_source_row",
                                  pl.lit(None, pl.Date).alias("date"), pl.lit(None, pl.String).alias("currency"),
                                  pl.lit(None, pl.Float64).alias("rate"), pl.lit(None, pl.String).alias("_text"),
                                  pl.lit(None, pl.String).alias("Date"))
                       .filter(pl.lit(False)), pl.col("_text"), pl.col("Date"))
    text = pl.col("_text")
    day = pl.col("Date").cast(pl.String).str.strip_chars()
    day = pl.when(day != "").then(day)
    long = (
        raw.select("_source_file", "_source_row", day.alias("Date"),
                   *(pl.col(c).cast(pl.String).str.strip_chars() for c in currencies))
        .unpivot(on=currencies, index=["_source_file", "_source_row", "Date"], variable_name="currency",
                 value_name="_text")
        .filter(text.is_not_null() & ~text.str.to_uppercase().is_in(list(NOT_QUOTED)))
        .with_columns(pl.coalesce(pl.col("Date").str.to_date("%Y-%m-%d", strict=False),
                                  pl.col("Date").str.to_date("%d %B %Y", strict=False)).alias("date"),
                      pl.col("currency").str.strip_chars(),
                      decimal(text).alias("rate"))
        .sort("_source_file", "_source_row", "currency")
    )
    return _finish(long, text, pl.col("Date"))


def parse_canonical_fx_rates(raw: pl.LazyFrame, inventory: Inventory | None = None,
                             site_id: str | None = None) -> pl.LazyFrame:
    """The canonical `date,currency,rate` table (rate: units of `currency` per 1 EUR) to a parsed
    FX_RATES frame, currency upper-cased."""
    parsed = parse_canonical(raw, FX_RATES).with_columns(pl.col("currency").str.to_uppercase())
    # unreadable dates and rates are parse_canonical's (`bad_timestamp`, `invalid_value`)
    return _finish(parsed, pl.lit(None, pl.String), pl.lit(None, pl.String))
