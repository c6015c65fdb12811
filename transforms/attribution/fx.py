"""Currency: every amount to the reporting currency at the reference rate of the cost's day
(DOMAIN.md section 7; docs/attribution.md, "Currency").

The rates are the lake's `fx_rates` (the ECB's convention: units of a currency per 1 EUR). An
amount of currency C on day D, reporting currency R, becomes `amount x fx_rate` with

    fx_rate = rate(R) / rate(C)          (reporting units per 1 unit of C; EUR's rate is 1)

each rate the one of D, else the latest published before D, at most MAX_RATE_AGE_DAYS older (the
ECB publishes no rate on weekends and TARGET holidays: an accountant takes the last reference
rate; a rate older than a week is no rate of that day). Neither side EUR: the cross rate through
EUR, as the ECB's own rates are. An amount in R is never converted (`fx_rate` 1, exact). An
amount whose currency has no rate (or whose reporting currency has none) stays in its own
currency, unattributed as `no_fx_rate`; it never blocks the rest of the day.
"""

from datetime import date, timedelta

import polars as pl

# The oldest reference rate a day may take: the last ECB rate before a long weekend (Good Friday
# to Easter Monday) is four days old; a week leaves room, and no more.
MAX_RATE_AGE_DAYS = 7

DAY_RATES = pl.Schema({"currency": pl.String, "fx_rate": pl.Float64, "rate_date": pl.Date})


def day_rates(fx_rates: pl.LazyFrame | None, day: date, reporting: str) -> pl.LazyFrame:
    """`currency, fx_rate, rate_date` of `day`: reporting units per 1 unit of `currency`, from the
    rates (`date, currency, rate`, rate per EUR; several deliveries of one date and currency:
    the caller keeps one) of `day` or the latest of the MAX_RATE_AGE_DAYS before it; `rate_date`
    the older of the two rates used. The reporting currency is always there, at 1.0. Small:
    one row per currency, collected."""
    own = pl.LazyFrame({"currency": [reporting], "fx_rate": [1.0], "rate_date": [day]}, schema=DAY_RATES)
    if fx_rates is None:
        return own
    first = day - timedelta(days=MAX_RATE_AGE_DAYS)
    euro = pl.LazyFrame({"date": [day], "currency": ["EUR"], "rate": [1.0]},
                        schema={"date": pl.Date, "currency": pl.String, "rate": pl.Float64})
    latest = (
        pl.concat([fx_rates.select(pl.col("date").cast(pl.Date), "currency", pl.col("rate").cast(pl.Float64)), euro])
        .filter(pl.col("date").is_between(first, day) & (pl.col("rate") > 0))
        .sort("currency", "date")
        .group_by("currency", maintain_order=True).last()
    )
    base = latest.filter(pl.col("currency") == reporting).select(pl.col("rate").alias("_r"),
                                                                 pl.col("date").alias("_r_date"))
    others = (
        latest.filter(pl.col("currency") != reporting).join(base, how="cross")
        .select("currency", (pl.col("_r") / pl.col("rate")).alias("fx_rate"),
                pl.min_horizontal("date", "_r_date").alias("rate_date"))
    )
    return pl.concat([own, others]).sort("currency").collect().lazy()


def to_reporting(lines: pl.LazyFrame, rates: pl.LazyFrame, reporting: str,
                 amounts: tuple[str, ...] = ("day_amount", "billed_day_amount")) -> pl.LazyFrame:
    """`lines` (with `currency` and the `amounts` columns) converted where their currency has a
    rate (`rates`: `day_rates`): the amounts x `fx_rate`, `currency` the reporting one. Adds
    `source_currency`, `source_amount` (the first of `amounts` as it was) and `fx_rate` (null:
    no rate; the line keeps its own currency and amounts, and `no_fx_rate` gives it its reason)."""
    has = pl.col("fx_rate").is_not_null()
    return (
        lines.join(rates.select("currency", "fx_rate"), on="currency", how="left")
        .with_columns(pl.col("currency").alias("source_currency"), pl.col(amounts[0]).alias("source_amount"))
        .with_columns(*(pl.when(has).then(pl.col(a) * pl.col("fx_rate")).otherwise(pl.col(a)).alias(a)
                        for a in amounts),
                      pl.when(has).then(pl.lit(reporting)).otherwise(pl.col("currency")).alias("currency"))
    )


def no_fx_rate(reporting: str) -> pl.Expr:
    """`no_fx_rate` where a line (after `to_reporting`) is still not in the reporting currency
    (a `reason` to extend with `.when(...)`)."""
    return pl.when(pl.col("currency") != reporting).then(pl.lit("no_fx_rate"))


def rate_of(rates: pl.LazyFrame, currency: str) -> float | None:
    """The `fx_rate` of one currency (`day_rates`), None when it has none."""
    found = rates.filter(pl.col("currency") == currency).select("fx_rate").collect()
    return found.item() if found.height else None
