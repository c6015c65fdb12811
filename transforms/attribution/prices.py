"""Step 5 of docs/attribution.md: the price of energy per site and slot, and the energy,
demand and fixed cost of every node-slot, trued up to the electricity invoice.

Prices (`site_slot_prices`): a time-of-use tariff is read in the site's local time at the
START of each slot (IANA zone, so DST-correct: the US spring-forward local day has 23 hours,
the fall-back day 25); `days` (weekdays, weekends, all) is judged by the LOCAL date, windows
are `[start, end)` (a window with `end < start` wraps past local midnight and belongs to the
date it starts on). A market tariff takes the hourly price of the UTC hour the slot starts in,
plus `adder_per_kwh`. A slot no period or no market hour prices, or more than one period
prices, is an inventory gap and raises: it must never cost 0 silently.

Costs (`energy_costs`): the energy bought is IT + overhead (J). Without an invoice a
node-slot costs kWh x tariff price. An electricity invoice whose period contains a slot's
start is the truth for that slot (so a UTC day partly covered by an invoice period is
trued up for its covered slots only, and split between two invoices at a month change):

- energy line with `tou_period` p: the slots of p get the invoiced rate `amount / kWh`
  instead of the tariff price, so the day carries `amount x day kWh in p / invoice kWh`;
  a line without `tou_period` (flat) prices every covered slot. Several lines covering one
  slot (supply by period + flat delivery) add up. Within a line the cost follows energy
  (kWh), also at market-priced sites (the invoice bills a rate per kWh).
- demand line: entirely on the slots overlapping the 15-minute interval starting at
  `peak_at`, on the day that interval starts in, by energy x the slot's overlap with it;
  nothing on other days. Without `peak_at`: `amount x day kWh / period kWh` (period kWh =
  the invoice's TOU energy lines, else its flat ones; with none, the time share below),
  spread by energy over the covered slots.
- fixed and tax lines (`cost_type` other) and every time share: `amount x seconds of the
  period in the day / seconds of the period` (= amount / days of the period when the period
  has no DST change), spread by energy over the covered slots.

Money is conserved per line: the node-slot costs a line causes sum to its `day_amount`
minus `unattributed_amount`. What cannot be placed stays unattributed with a reason: an
energy line whose TOU period the tariff does not have, or that states no kWh (its time
share); a demand or fixed share with no energy at the site's nodes in its slots.
"""

from dataclasses import dataclass

import polars as pl

from transforms.attribution.grid import SlotGrid, fsum
from transforms.contracts import COST_LINES, UTC_US
from transforms.ingest.common import decimal
from transforms.ingest.common import parse_utc
from transforms.inventory import Inventory, Site, Tariff

J_PER_KWH = 3.6e6
PEAK_INTERVAL_S = 900  # a demand charge's `peak_at` starts a 15-minute interval
ENERGY_UNITS = {"kwh": 1.0, "mwh": 1000.0, "wh": 0.001}  # invoice energy quantity -> kWh
LINE_COST_TYPES = {"energy": "energy_cost", "demand": "demand_cost", "other": "fixed_cost"}
MAX_LISTED = 5  # problems named in one error message

MARKET_PRICES_SCHEMA = pl.Schema({"tariff_id": pl.String, "hour_utc": UTC_US, "price_per_kwh": pl.Float64})
LINE_ALLOCATIONS_SCHEMA = pl.Schema({"source": pl.String, "line_id": pl.String, "component": pl.String,
                                     "day_amount": pl.Float64, "unattributed_amount": pl.Float64,
                                     "reason": pl.String, "detail": pl.String})
# The shapes of transforms.attribution.rates (LINE_DAYS, UNATTRIBUTED), so reconciliation can
# stack every step's frames.
LINE_DAYS_SCHEMA = pl.Schema({"source": pl.String, "line_id": pl.String, "component": pl.String,
                              "day_amount": pl.Float64, "billed_day_amount": pl.Float64, "currency": pl.String})
UNATTRIBUTED_SCHEMA = pl.Schema({"source": pl.String, "line_id": pl.String, "component": pl.String,
                                 "amount": pl.Float64, "currency": pl.String, "reason": pl.String,
                                 "service_name": pl.String})
LINE_ALLOCATIONS_KEEP = ("source", "line_id", "component", "amount", "billed_amount", "service_name", "_share",
                         "_unplaced", "reason", "detail")
SITE_SLOT_PRICES_SCHEMA = pl.Schema({"site_id": pl.String, "slot": pl.Int32, "price_per_kwh": pl.Float64,
                                     "tou_period": pl.String, "price_source": pl.String})


def _iso(ts: pl.Expr) -> pl.Expr:
    return ts.dt.to_string("%Y-%m-%dT%H:%M:%SZ")


# --- market prices ---------------------------------------------------------------------------

def parse_market_prices(raw_csv_text: pl.LazyFrame, tariff_id: str) -> pl.LazyFrame:
    """The hourly market price file of tariff `tariff_id` (`hour_utc,price_per_kwh`, every column
    text, as `pipelines.readers.scan_csv_text` reads it) to `tariff_id, hour_utc, price_per_kwh`
    (UTC datetime of the hour's start; price per kWh in the tariff's currency).

    `hour_utc` is RFC 3339 (an offset is converted; none means UTC) and must be the start of an
    hour. Identical repeated rows collapse; an unreadable row or an hour with two different
    prices raises ValueError naming the file and row (`_source_file`, `_source_row` when the
    frame has them). The file is small (an hour per row): it is collected here to be judged."""
    names = raw_csv_text.collect_schema().names()
    missing = [c for c in ("hour_utc", "price_per_kwh") if c not in names]
    if missing:
        raise ValueError(f"market price file of tariff {tariff_id!r} lacks column(s) {', '.join(missing)}; "
                         "its header must be `hour_utc,price_per_kwh`")
    where = (pl.format("{} row {}", pl.col("_source_file"), pl.col("_source_row")) if "_source_file" in names
             else pl.format("row {}", pl.int_range(1, pl.len() + 1)))
    text = pl.col("hour_utc").cast(pl.String).str.strip_chars()
    price_text = pl.col("price_per_kwh").cast(pl.String).str.strip_chars()
    parsed = raw_csv_text.select(
        where.alias("_where"),
        text.alias("_hour_text"),
        price_text.alias("_price_text"),
        parse_utc(text, naive_is_utc=True).alias("hour_utc"),
        decimal(price_text).alias("price_per_kwh"),
    ).collect()
    bad = parsed.filter(pl.col("hour_utc").is_null() | pl.col("price_per_kwh").is_null()
                        | (pl.col("hour_utc") != pl.col("hour_utc").dt.truncate("1h")))
    if bad.height:
        shown = "; ".join(f"{w}: hour_utc {h!r}, price_per_kwh {p!r}"
                          for w, h, p in bad.select("_where", "_hour_text", "_price_text").head(MAX_LISTED).rows())
        raise ValueError(f"market price file of tariff {tariff_id!r}: {bad.height} unreadable row(s) ({shown}); "
                         "write the start of a UTC hour (e.g. 2026-11-24T05:00:00Z) and a plain decimal price")
    prices = parsed.select(pl.lit(tariff_id, pl.String).alias("tariff_id"), "hour_utc", "price_per_kwh").unique()
    clash = prices.filter(pl.len().over("hour_utc") > 1).sort("hour_utc", "price_per_kwh")
    if clash.height:
        shown = "; ".join(f"{h:%Y-%m-%dT%H:%M:%SZ}: {p}" for h, p in clash.select("hour_utc", "price_per_kwh")
                          .head(MAX_LISTED).rows())
        raise ValueError(f"market price file of tariff {tariff_id!r} gives different prices for one hour ({shown}); "
                         "keep one price per hour")
    return prices.sort("hour_utc").lazy().cast(dict(MARKET_PRICES_SCHEMA))


# --- price per site and slot -----------------------------------------------------------------

def _priced_sites(inventory: Inventory) -> list[tuple[Site, Tariff]]:
    """Every non-cloud site with its tariff; a tariff in another currency than the reporting one
    raises (no FX here)."""
    tariffs = {t.id: t for t in inventory.tariffs}
    out = []
    for site in inventory.sites:
        if site.kind == "cloud":
            continue
        tariff = tariffs[site.tariff]
        if tariff.currency != inventory.currency:
            raise ValueError(f"tariff {tariff.id!r} of site {site.id!r} is in {tariff.currency}, the reporting "
                             f"currency is {inventory.currency}; state the tariff in {inventory.currency} "
                             "(prices are not converted)")
        out.append((site, tariff))
    return out


def _seconds(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 3600 + int(m) * 60


def _tou_candidates(site: Site, tariff: Tariff, slots: pl.LazyFrame) -> pl.LazyFrame:
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
             pl.col("_price").filter(hit).first().alias("price_per_kwh"),
             pl.col("_name").filter(hit).str.join(", ").alias("_matched"))
        .with_columns(pl.lit("time_of_use").alias("price_source"))
    )


def _market_candidates(site: Site, tariff: Tariff, market_prices: pl.LazyFrame | None,
                       slots: pl.LazyFrame) -> pl.LazyFrame:
    if market_prices is None:
        raise ValueError(f"site {site.id!r} buys at market tariff {tariff.id!r} but no market prices were given; "
                         f"read {tariff.market_price_file} with parse_market_prices and pass the frame")
    hourly = (market_prices.filter(pl.col("tariff_id") == tariff.id)
              .select(pl.col("hour_utc").cast(UTC_US).alias("_hour"), pl.col("price_per_kwh").cast(pl.Float64)))
    return (
        slots.with_columns(pl.col("slot_start").dt.truncate("1h").alias("_hour"))
        .join(hourly, on="_hour", how="left")
        .group_by("slot", "slot_start", "_hour")
        .agg(pl.col("price_per_kwh").count().cast(pl.Int32).alias("_matches"),
             (pl.col("price_per_kwh").first() + tariff.adder_per_kwh).alias("price_per_kwh"),
             pl.col("price_per_kwh").cast(pl.String).str.join(", ").alias("_matched"))
        .with_columns(pl.lit(None, pl.String).alias("tou_period"), pl.lit("market").alias("price_source"),
                      _iso(pl.col("_hour")).alias("_local_text"))
        .drop("_hour")
    )


def _price_gap_message(site: Site, tariff: Tariff, grid: SlotGrid, bad: pl.DataFrame) -> str:
    first = bad.row(0, named=True)
    when = f"slot {first['slot']} at {first['slot_start']:%Y-%m-%dT%H:%M:%SZ}"
    head = f"site {site.id!r} (tariff {tariff.id!r}) on {grid.day.isoformat()}: "
    if tariff.kind == "market":
        if first["_matches"] == 0:
            return (head + f"no market price for {bad.height} slot(s), first {when} (hour {first['_local_text']}); "
                    f"add the missing hours to {tariff.market_price_file} (hour_utc,price_per_kwh)")
        return (head + f"{first['_matches']} prices ({first['_matched']}) for hour {first['_local_text']} ({when}); "
                "pass one price per hour")
    local = f"local {first['_local_text']} in {site.timezone}"
    if first["_matches"] == 0:
        return (head + f"no time-of-use period covers {bad.height} slot(s), first {when} ({local}); add a period "
                "covering that local time and day (days weekdays/weekends/all, [start, end)) to the tariff's "
                "`periods:` in the inventory")
    return (head + f"{first['_matches']} time-of-use periods ({first['_matched']}) cover {when} ({local}); "
            "make the tariff's periods not overlap")


def site_slot_prices(inventory: Inventory, market_prices: pl.LazyFrame | None, grid: SlotGrid) -> pl.LazyFrame:
    """Price of energy per non-cloud site and slot of `grid`'s day: `site_id, slot, price_per_kwh`
    (reporting currency per kWh), `tou_period` (null for market prices), `price_source`
    (`time_of_use`, `market`). `market_prices`: `tariff_id, hour_utc, price_per_kwh` of every
    market tariff in use (`parse_market_prices`), may be None when no site buys at market.

    Raises ValueError naming the site, the slot time (UTC and local) and what to fix when a
    slot has no price or two, or when a tariff is not in the reporting currency. The frame is
    small (sites x slots) and collected here to be judged."""
    slots = grid.slots()
    frames = []
    for site, tariff in _priced_sites(inventory):  # a loop over sites of the inventory, not rows
        cand = (_tou_candidates(site, tariff, slots) if tariff.kind == "time_of_use"
                else _market_candidates(site, tariff, market_prices, slots))
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


# --- energy, demand and fixed cost per node and slot -----------------------------------------

@dataclass(frozen=True)
class EnergyCostResult:
    """The frames of step 5 (all lazy, money in the reporting currency).

    - `node_slot_costs`: `node_id, slot, energy_cost, demand_cost, fixed_cost`.
    - `true_up`: per `site_id, tou_period, invoice_line_id` (null: slots no invoice energy line
      covers): `day_kwh`, `tariff_cost` (kWh x tariff price), `invoiced_rate` (amount / kWh of
      the line), `energy_cost` (trued up: day_kwh x invoiced_rate, or the tariff cost),
      `true_up_factor` (energy_cost / tariff_cost; 1.0 without invoice; null when the tariff
      cost is 0). Several lines covering one period (supply + delivery) each have a row; their
      factors add up.
    - `line_allocations`: per invoice line touched today: `source, line_id, component,
      day_amount` (the day's share of the line), `unattributed_amount` (the part no node-slot
      carries; the node-slot costs the line causes sum to `day_amount - unattributed_amount`),
      `reason` (a code, null when the whole day share is placed) and `detail` (a sentence):
      `tou_period_not_in_tariff`, `no_billed_kwh` (energy lines: their time share unattributed),
      `no_energy_in_peak_interval`, `no_energy_in_period` (demand or fixed share with no energy to
      carry it: unattributed), `no_energy_today`, `peak_on_other_day` (nothing due today).
    - `line_days`: the same lines in the shape of `rates.LINE_DAYS` (`billed_day_amount` from
      `billed_amount`, `currency` the reporting one).
    - `unattributed`: lines with a non-zero unattributed amount, in the shape of
      `rates.UNATTRIBUTED` (`amount`, `currency`, `reason` code, `service_name`).
    - `line_site_slots`: where each line's placed amount went: `source, line_id, component,
      site_id, slot, amount` (the site-slot's part; its nodes share it by energy). Energy priced
      at the tariff, with no invoice line behind it, appears as `source = 'tariff'`,
      `line_id = '<site>:<day>'`, so every energy cost of the day traces to a source.
    """

    node_slot_costs: pl.LazyFrame
    true_up: pl.LazyFrame
    line_allocations: pl.LazyFrame
    line_days: pl.LazyFrame
    unattributed: pl.LazyFrame
    line_site_slots: pl.LazyFrame


def _check_prices_cover(prices: pl.LazyFrame, site_ids: list[str], grid: SlotGrid) -> None:
    have = dict(prices.filter(pl.col("site_id").is_in(site_ids) & pl.col("price_per_kwh").is_not_null())
                .group_by("site_id").agg(pl.col("slot").n_unique()).collect().rows())
    short = [f"{s} ({have.get(s, 0)} of {grid.n_slots} slots)" for s in site_ids if have.get(s, 0) != grid.n_slots]
    if short:
        raise ValueError(f"energy prices of {grid.day.isoformat()} miss slots of site(s) {', '.join(short)}; "
                         "pass the frame of site_slot_prices for the same inventory and grid")


def _invoice_lines_of_day(invoice_lines: pl.LazyFrame, site_ids: list[str], inventory: Inventory,
                          grid: SlotGrid) -> pl.LazyFrame:
    """The electricity invoice lines of `site_ids` whose period overlaps the day (or whose demand
    peak starts on it), judged: exact copies (one invoice delivered twice) collapse; two versions
    of one line, a cost type other than energy/demand/other, another currency than the reporting
    one, or an energy unit not in ENERGY_UNITS raise. Small: collected to be judged."""
    day_start, day_end = pl.lit(grid.start, UTC_US), pl.lit(grid.end, UTC_US)
    peak_on_day = pl.col("peak_at").is_between(day_start, day_end, closed="left").fill_null(False)
    lines = (COST_LINES.conform(invoice_lines)
             .filter(pl.col("site_id").is_in(site_ids)
                     & (((pl.col("period_start") < day_end) & (pl.col("period_end") > day_start))
                        | ((pl.col("cost_type") == "demand") & peak_on_day)))
             .unique().sort("source", "line_id").collect())

    def listed(frame: pl.DataFrame, *cols: str) -> str:
        return "; ".join(" ".join(f"{c} {v}" for c, v in zip(("line", *cols), row))
                         for row in frame.select("line_id", *cols).unique(maintain_order=True).head(MAX_LISTED).rows())

    problems = []
    twice = lines.filter(pl.len().over("source", "line_id") > 1)
    if twice.height:
        problems.append(f"lines delivered in different versions ({listed(twice)}); keep one version of each invoice "
                        "in the lake (remove the superseded delivery and re-run its ingest)")
    odd = lines.filter(~pl.col("cost_type").is_in(list(LINE_COST_TYPES)))
    if odd.height:
        problems.append(f"lines of cost type other than {', '.join(LINE_COST_TYPES)} ({listed(odd, 'cost_type')}); "
                        "pass electricity invoice lines only (source electricity_invoice)")
    fx = lines.filter(pl.col("currency") != inventory.currency)
    if fx.height:
        problems.append(f"lines not in the reporting currency {inventory.currency} ({listed(fx, 'currency')}); "
                        "amounts are not converted")
    units = lines.filter((pl.col("cost_type") == "energy") & pl.col("unit").is_not_null()
                         & ~pl.col("unit").str.to_lowercase().is_in(list(ENERGY_UNITS)))
    if units.height:
        problems.append(f"energy lines with a unit other than kWh, MWh or Wh ({listed(units, 'unit')}); "
                        "state energy quantities in kWh")
    empty = lines.filter(pl.col("period_end") <= pl.col("period_start"))
    if empty.height:
        problems.append(f"lines whose period does not end after it starts ({listed(empty, 'period_start')}); "
                        "correct the invoice period")
    if problems:
        raise ValueError(f"electricity invoice lines for {grid.day.isoformat()}:\n  - " + "\n  - ".join(problems))

    # Which TOU periods each site's tariff has (market tariffs: none), to tell placeable lines.
    tariff_of = {t.id: t for t in inventory.tariffs}
    sites = [inventory.site(s) for s in site_ids]
    known = pl.LazyFrame({"site_id": [s.id for s in sites for _ in tariff_of[s.tariff].periods],
                          "tou_period": [p.name for s in sites for p in tariff_of[s.tariff].periods],
                          "_known": [True for s in sites for _ in tariff_of[s.tariff].periods]},
                         schema={"site_id": pl.String, "tou_period": pl.String, "_known": pl.Boolean}).unique()
    names = pl.LazyFrame({"site_id": [s.id for s in sites], "_tariff": [s.tariff for s in sites],
                          "_names": [", ".join(dict.fromkeys(p.name for p in tariff_of[s.tariff].periods)) or "none"
                                     for s in sites]})
    def seconds(d: pl.Expr) -> pl.Expr:
        return d.dt.total_microseconds().cast(pl.Float64) / 1e6

    factor = pl.col("unit").str.to_lowercase().replace_strict(ENERGY_UNITS, default=None, return_dtype=pl.Float64)
    q_kwh = pl.col("quantity") * pl.when(pl.col("unit").is_null()).then(1.0).otherwise(factor)
    energy = pl.col("cost_type") == "energy"
    unknown_tou = energy & pl.col("tou_period").is_not_null() & pl.col("_known").is_null()
    no_kwh = energy & ~(pl.col("q_kwh") > 0).fill_null(False)
    return (
        lines.lazy()
        .join(known, on=["site_id", "tou_period"], how="left")
        .join(names, on="site_id", how="left")
        .with_columns(
            pl.col("effective_amount").alias("amount"),
            pl.when(energy).then(q_kwh).alias("q_kwh"),
            seconds(pl.col("period_end") - pl.col("period_start")).alias("period_s"),
            seconds(pl.min_horizontal("period_end", day_end) - pl.max_horizontal("period_start", day_start))
            .clip(lower_bound=0).alias("overlap_s"),
            peak_on_day.alias("peak_on_day"),
            pl.col("cost_type").replace_strict(LINE_COST_TYPES, return_dtype=pl.String).alias("component"),
        )
        .with_columns(
            pl.when(unknown_tou).then(pl.lit("tou_period_not_in_tariff"))
            .when(no_kwh).then(pl.lit("no_billed_kwh")).alias("_unplaceable"),
            pl.when(unknown_tou).then(pl.format(
                "TOU period {} of the invoice is not a period of tariff {} of site {} (periods: {}); its time share "
                "stays unattributed: name the tariff's periods as the invoice does", pl.col("tou_period"),
                pl.col("_tariff"), pl.col("site_id"), pl.col("_names")))
            .when(no_kwh).then(pl.format(
                "energy line states no billed kWh (quantity {} {}), which the true-up needs; its time share "
                "stays unattributed", pl.col("quantity").cast(pl.String).fill_null("empty"),
                pl.col("unit").fill_null("")))
            .alias("_unplaceable_detail"))
        .drop("_known", "_tariff", "_names")
    )


def _period_kwh(lines: pl.LazyFrame) -> pl.LazyFrame:
    """kWh of each invoice (lines of one source, site and period): its TOU energy lines, else
    its flat ones (a flat delivery line repeats the energy the TOU supply lines bill)."""
    invoice = ["source", "site_id", "period_start", "period_end"]
    energy = lines.filter((pl.col("cost_type") == "energy") & (pl.col("q_kwh") > 0))
    tou = pl.col("tou_period").is_not_null()
    return energy.group_by(invoice).agg(
        pl.when(tou.any()).then(pl.col("q_kwh").filter(tou).pipe(fsum)).otherwise(pl.col("q_kwh").pipe(fsum))
        .alias("_period_kwh"))


def energy_costs(node_energy: pl.LazyFrame, nodes: pl.LazyFrame, prices: pl.LazyFrame,
                 invoice_lines: pl.LazyFrame, inventory: Inventory, grid: SlotGrid) -> EnergyCostResult:
    """Energy, demand and fixed electricity cost per node and slot of `grid`'s day.

    `node_energy`: `node_id, slot, it_energy_j, overhead_j` (J; their sum is the energy bought),
    nodes of `nodes` (`inventory.nodes_frame()`). `prices`: `site_slot_prices` of the same day.
    `invoice_lines`: canonical `cost_lines` of electricity invoices (any delivery day); lines of
    sites with no priced node are not used. Cloud-site nodes cost 0 here (their energy is in the
    cloud bill). See the module docstring for the rules; see `EnergyCostResult` for the frames.
    Raises ValueError when prices miss a slot of a priced site or invoice lines are inconsistent
    (two versions of a line, another currency, an unknown energy unit)."""
    cloud = [s.id for s in inventory.sites if s.kind == "cloud"]
    node_site = nodes.select("node_id", "site_id")
    site_ids = sorted(set(node_site.select("site_id").unique().collect()["site_id"].to_list()) - set(cloud))
    _check_prices_cover(prices, site_ids, grid)
    lines = _invoice_lines_of_day(invoice_lines, site_ids, inventory, grid)

    energy = (node_energy.select("node_id", pl.col("slot").cast(pl.Int32),
                                 (pl.col("it_energy_j") + pl.col("overhead_j")).alias("energy_j"))
              .join(node_site, on="node_id", how="inner"))
    slot_start = grid.slot_start(pl.col("slot"))
    site_slots = (
        energy.filter(pl.col("site_id").is_in(site_ids))
        .group_by("site_id", "slot").agg(pl.col("energy_j").pipe(fsum))
        .join(prices.select("site_id", pl.col("slot").cast(pl.Int32), "price_per_kwh", "tou_period"),
              on=["site_id", "slot"], how="left")
        .with_columns(slot_start.alias("slot_start"), (pl.col("energy_j") / J_PER_KWH).alias("kwh"))
        .with_columns((pl.col("kwh") * pl.col("price_per_kwh")).alias("tariff_cost"))
    )
    covered = pl.col("slot_start").is_between(pl.col("period_start"), pl.col("period_end"), closed="left")

    # Energy lines: the invoiced rate replaces the tariff price on the slots each line covers.
    energy_lines = lines.filter((pl.col("cost_type") == "energy") & pl.col("_unplaceable").is_null()).select(
        "source", "line_id", "site_id", pl.col("tou_period").alias("_line_tou"), "period_start", "period_end",
        (pl.col("amount") / pl.col("q_kwh")).alias("rate"))
    matches = (site_slots.join(energy_lines, on="site_id", how="inner")
               .filter(covered & (pl.col("_line_tou").is_null() | (pl.col("_line_tou") == pl.col("tou_period")))))
    invoiced = matches.group_by("site_id", "slot").agg(pl.col("rate").pipe(fsum).alias("_invoiced_rate"))

    true_up = (
        pl.concat([
            matches.select("site_id", "tou_period", pl.col("line_id").alias("invoice_line_id"), "kwh",
                           "tariff_cost", pl.col("rate").alias("invoiced_rate")),
            site_slots.join(invoiced, on=["site_id", "slot"], how="anti").select(
                "site_id", "tou_period", pl.lit(None, pl.String).alias("invoice_line_id"), "kwh", "tariff_cost",
                pl.lit(None, pl.Float64).alias("invoiced_rate")),
        ])
        .group_by("site_id", "tou_period", "invoice_line_id")
        .agg(pl.col("kwh").pipe(fsum).alias("day_kwh"), pl.col("tariff_cost").pipe(fsum), pl.col("invoiced_rate").first())
        .with_columns(pl.when(pl.col("invoice_line_id").is_null()).then(pl.col("tariff_cost"))
                      .otherwise(pl.col("day_kwh") * pl.col("invoiced_rate")).alias("energy_cost"))
        .with_columns(pl.when(pl.col("invoice_line_id").is_null()).then(1.0)
                      .when(pl.col("tariff_cost") != 0).then(pl.col("energy_cost") / pl.col("tariff_cost"))
                      .alias("true_up_factor"))
        .select("site_id", "tou_period", "invoice_line_id", "day_kwh", "tariff_cost", "invoiced_rate",
                "energy_cost", "true_up_factor")
        .sort("site_id", "tou_period", "invoice_line_id", nulls_last=True)
    )

    time_share = pl.col("overlap_s") / pl.col("period_s")
    energy_alloc = (
        lines.filter(pl.col("cost_type") == "energy")
        .join(matches.group_by("source", "line_id").agg(pl.col("kwh").pipe(fsum).alias("_day_kwh")),
              on=["source", "line_id"], how="left")
        .with_columns(pl.col("_day_kwh").fill_null(0.0))
        .with_columns(
            pl.when(pl.col("_unplaceable").is_null()).then(pl.col("_day_kwh") / pl.col("q_kwh"))
            .otherwise(time_share).alias("_share"),
            pl.col("_unplaceable").is_not_null().alias("_unplaced"),
            pl.when(pl.col("_unplaceable").is_not_null()).then(pl.col("_unplaceable"))
            .when(pl.col("_day_kwh") == 0).then(pl.lit("no_energy_today")).alias("reason"),
            pl.when(pl.col("_unplaceable").is_not_null()).then(pl.col("_unplaceable_detail"))
            .when(pl.col("_day_kwh") == 0).then(pl.format(
                "no energy at site {} in {} slots of the invoice period today: nothing of the line is due today",
                pl.col("site_id"), pl.col("tou_period").fill_null("any"))).alias("detail"))
    )

    # Demand and fixed lines: a day share spread by energy x weight `_f` over the line's slots
    # (the peak interval's overlap, or 1 on every covered slot).
    spread_lines = lines.filter(pl.col("cost_type") != "energy").join(
        _period_kwh(lines), on=["source", "site_id", "period_start", "period_end"], how="left")
    peak = pl.col("cost_type").eq("demand") & pl.col("peak_at").is_not_null()
    slot_end = pl.col("slot_start") + pl.duration(seconds=grid.slot_s)
    peak_end = pl.col("peak_at") + pl.duration(seconds=PEAK_INTERVAL_S)
    peak_overlap = (pl.min_horizontal(slot_end, peak_end) - pl.max_horizontal("slot_start", "peak_at")) \
        .dt.total_microseconds().cast(pl.Float64) / 1e6
    weights = (
        site_slots.join(spread_lines.select("source", "line_id", "site_id", "cost_type", "peak_at", "peak_on_day",
                                            "period_start", "period_end"), on="site_id", how="inner")
        .with_columns(pl.when(peak).then(pl.when(pl.col("peak_on_day")).then(peak_overlap.clip(lower_bound=0)
                                                                            / grid.slot_s).otherwise(0.0))
                      .otherwise(pl.when(covered).then(1.0).otherwise(0.0)).alias("_f"))
        .filter(pl.col("_f") > 0)
        .select("source", "line_id", "site_id", "slot", "_f", (pl.col("energy_j") * pl.col("_f")).alias("_w"))
    )
    spread_alloc = (
        spread_lines.join(weights.group_by("source", "line_id").agg(pl.col("_w").pipe(fsum).alias("_weight")),
                          on=["source", "line_id"], how="left")
        .with_columns(pl.col("_weight").fill_null(0.0))
        .with_columns(
            pl.when(peak).then(pl.when(pl.col("peak_on_day")).then(1.0).otherwise(0.0))
            .when((pl.col("cost_type") == "demand") & (pl.col("_period_kwh") > 0))
            .then(pl.col("_weight") / J_PER_KWH / pl.col("_period_kwh"))
            .otherwise(time_share).alias("_share"))
        .with_columns((~(pl.col("_weight") > 0)).alias("_unplaced"))
        .with_columns(
            pl.when(peak & ~pl.col("peak_on_day")).then(pl.lit("peak_on_other_day"))
            .when(peak & pl.col("_unplaced")).then(pl.lit("no_energy_in_peak_interval"))
            .when(pl.col("_unplaced") & (pl.col("_share") != 0)).then(pl.lit("no_energy_in_period"))
            .alias("reason"),
            pl.when(peak & ~pl.col("peak_on_day")).then(pl.format(
                "demand peak interval starts {}, not on this day: nothing of the line is due today",
                _iso(pl.col("peak_at"))))
            .when(peak & pl.col("_unplaced")).then(pl.format(
                "no energy at site {}'s nodes in the demand peak interval starting {}", pl.col("site_id"),
                _iso(pl.col("peak_at"))))
            .when(pl.col("_unplaced") & (pl.col("_share") != 0)).then(pl.format(
                "no energy at site {}'s nodes in the invoice period today", pl.col("site_id")))
            .alias("detail"))
    )
    allocated = pl.concat([f.select(*LINE_ALLOCATIONS_KEEP) for f in (energy_alloc, spread_alloc)]).with_columns(
        (pl.col("amount") * pl.col("_share")).alias("day_amount"),
        (pl.col("billed_amount") * pl.col("_share")).alias("billed_day_amount"))
    allocated = allocated.with_columns(
        pl.when(pl.col("_unplaced")).then(pl.col("day_amount")).otherwise(0.0).alias("unattributed_amount"))

    per_j = (
        weights.join(spread_alloc.filter(pl.col("_weight") > 0).select("source", "line_id", "_weight"),
                     on=["source", "line_id"], how="inner")
        .join(allocated.select("source", "line_id", "component", "day_amount"), on=["source", "line_id"])
        .with_columns((pl.col("day_amount") * pl.col("_f") / pl.col("_weight")).alias("_per_j"))
        .group_by("site_id", "slot")
        .agg(fsum(pl.col("_per_j").filter(pl.col("component") == c), scale=1e9).alias(f"_{c}_per_j")
             for c in ("demand_cost", "fixed_cost"))
    )

    site_rates = (site_slots.join(invoiced, on=["site_id", "slot"], how="left")
                  .join(per_j, on=["site_id", "slot"], how="left")
                  .select("site_id", "slot",
                          pl.coalesce("_invoiced_rate", "price_per_kwh").alias("_price"),
                          "_demand_cost_per_j", "_fixed_cost_per_j"))
    is_cloud = pl.col("site_id").is_in(cloud)
    node_slot_costs = (
        energy.join(site_rates, on=["site_id", "slot"], how="left")
        .select("node_id", "slot",
                pl.when(is_cloud).then(0.0).otherwise(pl.col("energy_j") / J_PER_KWH * pl.col("_price"))
                .alias("energy_cost"),
                (pl.col("energy_j") * pl.col("_demand_cost_per_j")).fill_null(0.0).alias("demand_cost"),
                (pl.col("energy_j") * pl.col("_fixed_cost_per_j")).fill_null(0.0).alias("fixed_cost"))
        .sort("node_id", "slot")
    )
    line_allocations = allocated.select(pl.col(c).cast(t) for c, t in LINE_ALLOCATIONS_SCHEMA.items()) \
        .sort("source", "line_id")
    line_days = allocated.with_columns(pl.lit(inventory.currency).alias("currency")) \
        .select(pl.col(c).cast(t) for c, t in LINE_DAYS_SCHEMA.items()).sort("source", "line_id")
    unattributed = (allocated.filter(pl.col("unattributed_amount") != 0)
                    .with_columns(pl.col("unattributed_amount").alias("amount"),
                                  pl.lit(inventory.currency).alias("currency"))
                    .select(pl.col(c).cast(t) for c, t in UNATTRIBUTED_SCHEMA.items()).sort("source", "line_id"))
    cols = ["source", "line_id", "component", "site_id", "slot", "amount"]
    line_site_slots = pl.concat([
        matches.filter(~pl.col("site_id").is_in(cloud)).select(
            "source", "line_id", pl.lit("energy_cost").alias("component"), "site_id", "slot",
            (pl.col("kwh") * pl.col("rate")).alias("amount")),
        site_slots.filter(~pl.col("site_id").is_in(cloud)).join(invoiced, on=["site_id", "slot"], how="anti").select(
            pl.lit("tariff").alias("source"), (pl.col("site_id") + f":{grid.day.isoformat()}").alias("line_id"),
            pl.lit("energy_cost").alias("component"), "site_id", "slot", pl.col("tariff_cost").alias("amount")),
        weights.join(spread_alloc.filter(pl.col("_weight") > 0).select("source", "line_id", "_weight"),
                     on=["source", "line_id"], how="inner")
        .join(allocated.select("source", "line_id", "component", "day_amount"), on=["source", "line_id"])
        .select("source", "line_id", "component", "site_id", "slot",
                (pl.col("day_amount") * pl.col("_w") / pl.col("_weight")).alias("amount")),
    ]).select(pl.col(c) for c in cols).sort("source", "line_id", "site_id", "slot")
    return EnergyCostResult(node_slot_costs, true_up, line_allocations, line_days, unattributed, line_site_slots)
