"""Step 5 of docs/attribution.md, first half: the price of energy per site and slot at the
site's tariff (`site_slot_prices`). The cost of each node-slot's energy, trued up to the invoice,
is `electricity.energy_costs`. The day's hourly market prices come from the lake's
`market_prices` (parsed by `transforms.ingest.market_prices.parse_market_price_csv`).

A time-of-use tariff is read in the site's local time at the START of each slot (IANA zone, so
DST-correct: the US spring-forward local day has 23 hours, the fall-back day 25); `days`
(weekdays, weekends, all) is judged by the LOCAL date, windows are `[start, end)` (a window with
`end < start` wraps past local midnight and belongs to the date it starts on). A market tariff
takes the hourly price of the UTC hour the slot starts in, plus `adder_per_kwh`. A slot no period
or no market hour prices, or more than one period prices, is an inventory gap and raises: it must
never cost 0 silently. A tariff in another currency than the reporting one is converted at the
day's reference rate (`fx.day_rates`): every price (and the market adder) x `fx_rate`; a tariff
whose currency has no rate keeps its prices in that currency (`stranded_sites`).
"""

import polars as pl

from transforms.attribution.fx import day_rates, rate_of
from transforms.attribution.grid import SlotGrid
from transforms.contracts import UTC_US
from transforms.inventory import Inventory, Site, Tariff

J_PER_KWH = 3.6e6
MAX_LISTED = 5  # problems named in one error message

SITE_SLOT_PRICES_SCHEMA = pl.Schema({"site_id": pl.String, "slot": pl.Int32, "price_per_kwh": pl.Float64,
                                     "tou_period": pl.String, "price_source": pl.String})


def iso_utc(ts: pl.Expr) -> pl.Expr:
    """A UTC time as text, `2026-11-24T05:00:00Z`."""
    return ts.dt.to_string("%Y-%m-%dT%H:%M:%SZ")


# --- price per site and slot -----------------------------------------------------------------

def _priced_sites(inventory: Inventory) -> list[tuple[Site, Tariff]]:
    """Every non-cloud site with its tariff."""
    tariffs = {t.id: t for t in inventory.tariffs}
    return [(site, tariffs[site.tariff]) for site in inventory.sites if site.kind != "cloud"]


def tariff_rates(inventory: Inventory, rates: pl.LazyFrame | None, grid: SlotGrid) -> dict[str, float | None]:
    """The `fx_rate` (reporting units per unit of the tariff's currency, `fx.day_rates`) of every
    tariff of a priced site on the grid's day; None when its currency has no rate of the day (nor
    of the MAX_RATE_AGE_DAYS before): `stranded_sites`."""
    rates = day_rates(None, grid.day, inventory.currency) if rates is None else rates
    return {tariff.id: rate_of(rates, tariff.currency) for _, tariff in _priced_sites(inventory)}


def stranded_sites(inventory: Inventory, rates: pl.LazyFrame | None, grid: SlotGrid) -> dict[str, str]:
    """Priced sites whose tariff's currency has no rate of the day -> that currency. Their slots
    are priced in the tariff's own currency (`site_slot_prices`), and the energy no invoice
    covers stays unattributed there (`no_fx_rate`, electricity.energy_costs): never converted at
    a made-up rate, never blocking the day."""
    fx = tariff_rates(inventory, rates, grid)
    return {site.id: tariff.currency for site, tariff in _priced_sites(inventory) if fx[tariff.id] is None}


def tariff_lines(inventory: Inventory, rates: pl.LazyFrame | None, grid: SlotGrid) -> pl.LazyFrame:
    """`line_id, source_currency, fx_rate` of each priced site's `tariff` line of the day
    (`<site>:<day>`, electricity.EnergyCostResult): the currency its tariff states prices in."""
    fx = tariff_rates(inventory, rates, grid)
    sites = _priced_sites(inventory)
    return pl.LazyFrame({"line_id": [f"{s.id}:{grid.day.isoformat()}" for s, _ in sites],  # (stranded: fx_rate null)
                         "source_currency": [t.currency for _, t in sites], "fx_rate": [fx[t.id] for _, t in sites]},
                        schema={"line_id": pl.String, "source_currency": pl.String, "fx_rate": pl.Float64})


def _seconds(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 3600 + int(m) * 60


def _tou_candidates(site: Site, tariff: Tariff, slots: pl.LazyFrame, fx_rate: float = 1.0) -> pl.LazyFrame:
    """Per slot: how many periods price it (`_matches`) and the first one's name and price."""
    periods = pl.LazyFrame(
        {"_name": [p.name for p in tariff.periods], "_days": [p.days for p in tariff.periods],
         "_from": [_seconds(p.start) for p in tariff.periods], "_to": [_seconds(p.end) for p in tariff.periods],
         "_price": [p.price_per_kwh for p in tariff.periods]},
        schema={"_name": pl.String, "_days": pl.String, "_from": pl.Int32, "_to": pl.Int32, "_price": pl.Float64})
    local = pl.col("slot_start").dt.convert_time_zone(site.timezone)
    at = pl.col("_local")
    second_of_day = (at.dt.hour().cast(pl.Int32) * 3600 + at.dt.minute().cast(pl.Int32) * 60
                     + at.dt.second().cast(pl.Int32))
    weekend = at.dt.weekday() >= 6  # Polars: Monday 1 .. Sunday 7, of the local date
    in_window = pl.when(pl.col("_from") <= pl.col("_to")) \
        .then((pl.col("_sec") >= pl.col("_from")) & (pl.col("_sec") < pl.col("_to"))) \
        .otherwise((pl.col("_sec") >= pl.col("_from")) | (pl.col("_sec") < pl.col("_to")))
    on_day = (pl.col("_days") == "all") | ((pl.col("_days") == "weekends") == pl.col("_weekend"))
    hit = in_window & on_day
    return (
        slots.with_columns(local.alias("_local"))
        .with_columns(second_of_day.alias("_sec"), weekend.alias("_weekend"),
                      at.dt.to_string("%a %Y-%m-%d %H:%M %Z").alias("_local_text"))
        .join(periods, how="cross")
        .group_by("slot", "slot_start", "_local_text")
        .agg(hit.sum().cast(pl.Int32).alias("_matches"),
             pl.col("_name").filter(hit).first().alias("tou_period"),
             (pl.col("_price").filter(hit).first() * fx_rate).alias("price_per_kwh"),
             pl.col("_name").filter(hit).str.join(", ").alias("_matched"))
        .with_columns(pl.lit("time_of_use").alias("price_source"))
    )


def _market_candidates(site: Site, tariff: Tariff, market_prices: pl.LazyFrame | None,
                       slots: pl.LazyFrame, fx_rate: float = 1.0) -> pl.LazyFrame:
    if market_prices is None:
        raise ValueError(f"site {site.id!r} buys at market tariff {tariff.id!r} but no market prices were given; "
                         f"pass the day's market prices (the lake's market_prices, ingested from "
                         f"{tariff.market_price_file})")
    hourly = (market_prices.filter(pl.col("tariff_id") == tariff.id)
              .select(pl.col("hour_utc").cast(UTC_US).alias("_hour"), pl.col("price_per_kwh").cast(pl.Float64)))
    return (
        slots.with_columns(pl.col("slot_start").dt.truncate("1h").alias("_hour"))
        .join(hourly, on="_hour", how="left")
        .group_by("slot", "slot_start", "_hour")
        .agg(pl.col("price_per_kwh").count().cast(pl.Int32).alias("_matches"),
             ((pl.col("price_per_kwh").first() + tariff.adder_per_kwh) * fx_rate).alias("price_per_kwh"),
             pl.col("price_per_kwh").cast(pl.String).str.join(", ").alias("_matched"))
        .with_columns(pl.lit(None, pl.String).alias("tou_period"), pl.lit("market").alias("price_source"),
                      iso_utc(pl.col("_hour")).alias("_local_text"))
        .drop("_hour")
    )


def _layout(tariff: Tariff) -> str:
    """How the tariff's price file is written, for a message (docs/raw-formats.md, "Market prices")."""
    if tariff.market_price_format == "energinet_elspot":
        return f"Energinet's Elspotprices export, PriceArea {tariff.market_price_area}"
    if tariff.market_price_format == "hourly_csv" and tariff.market_price_columns is not None:
        return f"columns {tariff.market_price_columns.hour},{tariff.market_price_columns.price}"
    return "hour_utc,price_per_kwh"


def _price_gap_message(site: Site, tariff: Tariff, grid: SlotGrid, bad: pl.DataFrame) -> str:
    first = bad.row(0, named=True)
    when = f"slot {first['slot']} at {first['slot_start']:%Y-%m-%dT%H:%M:%SZ}"
    head = f"site {site.id!r} (tariff {tariff.id!r}) on {grid.day.isoformat()}: "
    if tariff.kind == "market":
        if first["_matches"] == 0:
            return (head + f"no market price for {bad.height} slot(s), first {when} (hour {first['_local_text']}); "
                    f"add the missing hours to {tariff.market_price_file} ({_layout(tariff)}), or see the day's "
                    "market_prices quarantine for the rows refused")
        return (head + f"{first['_matches']} prices ({first['_matched']}) for hour {first['_local_text']} ({when}); "
                "pass one price per hour")
    local = f"local {first['_local_text']} in {site.timezone}"
    if first["_matches"] == 0:
        return (head + f"no time-of-use period covers {bad.height} slot(s), first {when} ({local}); add a period "
                "covering that local time and day (days weekdays/weekends/all, [start, end)) to the tariff's "
                "`periods:` in the inventory")
    return (head + f"{first['_matches']} time-of-use periods ({first['_matched']}) cover {when} ({local}); "
            "make the tariff's periods not overlap")


def site_slot_prices(inventory: Inventory, market_prices: pl.LazyFrame | None, grid: SlotGrid,
                     rates: pl.LazyFrame | None = None) -> pl.LazyFrame:
    """Price of energy per non-cloud site and slot of `grid`'s day: `site_id, slot, price_per_kwh`
    (reporting currency per kWh), `tou_period` (null for market prices), `price_source`
    (`time_of_use`, `market`). `market_prices`: `tariff_id, hour_utc, price_per_kwh` of every
    market tariff in use (the lake's `market_prices` of the day), may be None when no site buys at market.
    A tariff in another currency is converted at the day's rate (`rates`: `fx.day_rates`;
    `tariff_rates`); without a rate its prices stay in its own currency (`stranded_sites`).

    Raises ValueError naming the site, the slot time (UTC and local) and what to fix when a
    slot has no price or two. The frame is
    small (sites x slots) and collected here to be judged."""
    slots = grid.slots()
    frames = []
    fx = {t: 1.0 if r is None else r for t, r in tariff_rates(inventory, rates, grid).items()}  # None: stranded
    for site, tariff in _priced_sites(inventory):  # a loop over sites of the inventory, not rows
        cand = (_tou_candidates(site, tariff, slots, fx[tariff.id]) if tariff.kind == "time_of_use"
                else _market_candidates(site, tariff, market_prices, slots, fx[tariff.id]))
        frames.append(cand.with_columns(pl.lit(site.id).alias("site_id")))
    if not frames:
        return pl.LazyFrame(schema=SITE_SLOT_PRICES_SCHEMA)
    cols = ["site_id", "slot", "slot_start", "_matches", "_matched", "_local_text",
            "price_per_kwh", "tou_period", "price_source"]
    priced = pl.concat([f.select(cols) for f in frames]).sort("site_id", "slot").collect()
    bad = priced.filter(pl.col("_matches") != 1)
    if bad.height:
        by_site = {s.id: (s, t) for s, t in _priced_sites(inventory)}
        messages = [_price_gap_message(*by_site[sid], grid, bad.filter(pl.col("site_id") == sid))
                    for sid in bad["site_id"].unique(maintain_order=True).to_list()]
        raise ValueError("unpriced energy (an unpriced slot must not cost 0):\n  - " + "\n  - ".join(messages))
    return priced.lazy().select(pl.col(c).cast(t) for c, t in SITE_SLOT_PRICES_SCHEMA.items())
