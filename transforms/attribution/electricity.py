"""Step 5 of docs/attribution.md: the energy, demand and fixed electricity cost of every node-slot,
priced at the tariff (`prices.site_slot_prices`) and trued up to the electricity invoice.

The energy bought is IT + overhead (J). Without an invoice a node-slot costs kWh x tariff price.
An electricity invoice whose period contains a slot's start is the truth for that slot (so a UTC
day partly covered by an invoice period is trued up for its covered slots only, and split between
two invoices at a month change):

- energy line with `tou_period` p (`true_up_to_invoice`): the slots of p get the invoiced rate
  `amount / kWh` instead of the tariff price, so the day carries `amount x day kWh in p / invoice
  kWh`; a line without `tou_period` (flat) prices every covered slot. Several lines covering one
  slot (supply by period + flat delivery) add up. Within a line the cost follows energy (kWh),
  also at market-priced sites (the invoice bills a rate per kWh).
- demand line (`demand_and_fixed_charges`): entirely on the slots overlapping the 15-minute
  interval starting at `peak_at`, on the day that interval starts in, by energy x the slot's
  overlap with it; nothing on other days. Without `peak_at`: `amount x day kWh / period kWh`
  (period kWh = the invoice's TOU energy lines, else its flat ones; with none, the time share
  below), spread by energy over the covered slots.
- fixed and tax lines (`cost_type` other) and every time share: `amount x seconds of the
  period in the day / seconds of the period` (= amount / days of the period when the period
  has no DST change), spread by energy over the covered slots.

Money is conserved per line: the node-slot costs a line causes sum to its `day_amount` minus
`unattributed_amount`. What cannot be placed stays unattributed with a reason: an energy line
whose TOU period the tariff does not have, or that states no kWh (its time share); a demand or
fixed share with no energy at the site's nodes in its slots.
"""

from dataclasses import dataclass

import polars as pl

from transforms.attribution.grid import SlotGrid, fsum
from transforms.attribution.invoices import INVOICE, invoice_lines_of_day, period_kwh
from transforms.attribution.lines import LINE_DAYS, UNATTRIBUTED, conform
from transforms.attribution.prices import J_PER_KWH, iso_utc, stranded_sites
from transforms.inventory import Inventory

PEAK_INTERVAL_S = 900  # a demand charge's `peak_at` starts a 15-minute interval

LINE_ALLOCATIONS_SCHEMA = pl.Schema({"source": pl.String, "line_id": pl.String, "component": pl.String,
                                     "day_amount": pl.Float64, "unattributed_amount": pl.Float64,
                                     "reason": pl.String, "detail": pl.String})
# What each line's share of the day is made of, energy and demand/fixed lines alike.
LINE_SHARE_COLUMNS = ("source", "line_id", "component", "amount", "billed_amount", "service_name", "_share",
                      "_unplaced", "reason", "detail", "currency", "source_currency", "source_amount", "fx_rate")

# A site-slot's start is inside the line's invoice period.
COVERED = pl.col("slot_start").is_between(pl.col("period_start"), pl.col("period_end"), closed="left")
# The line's share of the day by time: seconds of its period in the day / seconds of its period.
TIME_SHARE = pl.col("overlap_s") / pl.col("period_s")


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
    - `line_days`: the same lines in the shape of `lines.LINE_DAYS` (`billed_day_amount` from
      `billed_amount`, `currency` the reporting one).
    - `unattributed`: lines with a non-zero unattributed amount, in the shape of
      `lines.UNATTRIBUTED` (`amount`, `currency`, `reason` code, `service_name`).
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


def energy_costs(node_energy: pl.LazyFrame, nodes: pl.LazyFrame, prices: pl.LazyFrame,
                 invoice_lines: pl.LazyFrame, inventory: Inventory, grid: SlotGrid,
                 rates: pl.LazyFrame | None = None) -> EnergyCostResult:
    """Energy, demand and fixed electricity cost per node and slot of `grid`'s day.

    `node_energy`: `node_id, slot, it_energy_j, overhead_j` (J; their sum is the energy bought),
    nodes of `nodes` (`inventory.nodes_frame()`). `prices`: `site_slot_prices` of the same day.
    `invoice_lines`: canonical `cost_lines` of electricity invoices (any delivery day); lines of
    sites with no priced node are not used. Cloud-site nodes cost 0 here (their energy is in the
    cloud bill). See the module docstring for the rules; see `EnergyCostResult` for the frames.
    Raises ValueError when prices miss a slot of a priced site or invoice lines are inconsistent
    (two versions of a line, an unknown energy unit). Invoice amounts are converted at the day's
    rate (`rates`: `fx.day_rates`; a line whose currency has none stays unattributed,
    `no_fx_rate`, in its own currency). A site whose tariff's currency has no rate
    (`prices.stranded_sites`, priced in that currency) has its energy that no invoice line covers
    cost 0 in its node-slots and kept whole as its `tariff` line, unattributed (`no_fx_rate`) in
    the tariff's currency (`_stranded_tariff_lines`)."""
    cloud = [s.id for s in inventory.sites if s.kind == "cloud"]
    stranded = stranded_sites(inventory, rates, grid)
    node_site = nodes.select("node_id", "site_id")
    site_ids = sorted(set(node_site.select("site_id").unique().collect()["site_id"].to_list()) - set(cloud))
    _check_prices_cover(prices, site_ids, grid)
    lines = invoice_lines_of_day(invoice_lines, site_ids, inventory, grid, rates)

    energy = (node_energy.select("node_id", pl.col("slot").cast(pl.Int32),
                                 (pl.col("it_energy_j") + pl.col("overhead_j")).alias("energy_j"))
              .join(node_site, on="node_id", how="inner"))
    site_slots = _site_slots_at_tariff(energy, site_ids, prices, grid)
    true_up = true_up_to_invoice(site_slots, lines)
    spread = demand_and_fixed_charges(site_slots, lines, grid)
    allocated = pl.concat([f.select(*LINE_SHARE_COLUMNS) for f in (true_up.lines, spread.lines)]).with_columns(
        (pl.col("amount") * pl.col("_share")).alias("day_amount"),
        (pl.col("billed_amount") * pl.col("_share")).alias("billed_day_amount"),
        (pl.col("source_amount") * pl.col("_share")).alias("source_amount"))
    allocated = allocated.with_columns(
        pl.when(pl.col("_unplaced")).then(pl.col("day_amount")).otherwise(0.0).alias("unattributed_amount"))

    line_allocations = conform(allocated, LINE_ALLOCATIONS_SCHEMA, "source", "line_id")
    unpriced = _stranded_tariff_lines(site_slots, true_up, stranded, grid)
    line_days = conform(pl.concat([allocated.select(*LINE_DAYS), unpriced.select(*LINE_DAYS)]), LINE_DAYS,
                        "source", "line_id")
    unattributed = conform(pl.concat([allocated.filter(pl.col("unattributed_amount") != 0)
                                      .with_columns(pl.col("unattributed_amount").alias("amount"))
                                      .select(*UNATTRIBUTED), unpriced.select(*UNATTRIBUTED)]),
                           UNATTRIBUTED, "source", "line_id")
    return EnergyCostResult(_node_slot_costs(energy, site_slots, true_up, spread, allocated, cloud, list(stranded)),
                            true_up.true_up, line_allocations, line_days, unattributed,
                            _line_site_slots(site_slots, true_up, spread, allocated, cloud, grid, list(stranded)))


def _stranded_tariff_lines(site_slots: pl.LazyFrame, true_up: "TrueUp", stranded: dict[str, str],
                           grid: SlotGrid) -> pl.LazyFrame:
    """The `tariff` line (`<site>:<day>`) of each site whose tariff's currency has no rate: its
    energy no invoice line covers at the tariff's prices, in the tariff's currency, with the
    columns of `lines.LINE_DAYS` and `lines.UNATTRIBUTED` (reason `no_fx_rate`, `fx_rate` null)."""
    currency = pl.col("site_id").replace_strict(stranded, return_dtype=pl.String)
    return (
        site_slots.filter(pl.col("site_id").is_in(list(stranded)))
        .join(true_up.invoiced, on=["site_id", "slot"], how="anti")
        .group_by("site_id").agg(pl.col("tariff_cost").pipe(fsum).alias("day_amount"))
        .select(pl.lit("tariff").alias("source"), (pl.col("site_id") + f":{grid.day.isoformat()}").alias("line_id"),
                pl.lit("energy_cost").alias("component"), "day_amount",
                pl.col("day_amount").alias("billed_day_amount"), pl.col("day_amount").alias("amount"),
                currency.alias("currency"), currency.alias("source_currency"),
                pl.col("day_amount").alias("source_amount"),
                pl.lit(None, pl.Float64).alias("fx_rate"), pl.lit("no_fx_rate").alias("reason"),
                pl.lit(None, pl.String).alias("service_name"))
    )


def _check_prices_cover(prices: pl.LazyFrame, site_ids: list[str], grid: SlotGrid) -> None:
    """Raises ValueError naming the sites whose prices miss slots of the day."""
    have = dict(prices.filter(pl.col("site_id").is_in(site_ids) & pl.col("price_per_kwh").is_not_null())
                .group_by("site_id").agg(pl.col("slot").n_unique()).collect().rows())
    short = [f"{s} ({have.get(s, 0)} of {grid.n_slots} slots)" for s in site_ids if have.get(s, 0) != grid.n_slots]
    if short:
        raise ValueError(f"energy prices of {grid.day.isoformat()} miss slots of site(s) {', '.join(short)}; "
                         "pass the frame of site_slot_prices for the same inventory and grid")


def _site_slots_at_tariff(energy: pl.LazyFrame, site_ids: list[str], prices: pl.LazyFrame,
                          grid: SlotGrid) -> pl.LazyFrame:
    """Per priced site and slot: `energy_j` (its nodes' energy bought), `kwh`, the tariff's
    `price_per_kwh` and `tou_period`, `tariff_cost` (kWh x price) and `slot_start`."""
    return (
        energy.filter(pl.col("site_id").is_in(site_ids))
        .group_by("site_id", "slot").agg(pl.col("energy_j").pipe(fsum))
        .join(prices.select("site_id", pl.col("slot").cast(pl.Int32), "price_per_kwh", "tou_period"),
              on=["site_id", "slot"], how="left")
        .with_columns(grid.slot_start(pl.col("slot")).alias("slot_start"),
                      (pl.col("energy_j") / J_PER_KWH).alias("kwh"))
        .with_columns((pl.col("kwh") * pl.col("price_per_kwh")).alias("tariff_cost"))
    )


@dataclass(frozen=True)
class TrueUp:
    """The invoice's energy lines against the day's site-slots (lazy).

    - `matches`: a row per site-slot and energy line covering it (`rate` = amount / kWh billed).
    - `invoiced`: `site_id, slot, _invoiced_rate`: the sum of the rates of the lines covering
      the site-slot, which replaces its tariff price.
    - `true_up`: `EnergyCostResult.true_up`.
    - `lines`: every energy line with its share of the day (`_share`: the day's kWh of its slots
      / its kWh, or its time share when it cannot be placed) and `_unplaced`, `reason`, `detail`.
    """

    matches: pl.LazyFrame
    invoiced: pl.LazyFrame
    true_up: pl.LazyFrame
    lines: pl.LazyFrame


def true_up_to_invoice(site_slots: pl.LazyFrame, lines: pl.LazyFrame) -> TrueUp:
    """The invoiced rate of each energy line in place of the tariff price on the slots it covers
    (`site_slots`: `_site_slots_at_tariff`; `lines`: `invoices.invoice_lines_of_day`)."""
    energy_lines = lines.filter((pl.col("cost_type") == "energy") & pl.col("_unplaceable").is_null()).select(
        "source", "line_id", "site_id", pl.col("tou_period").alias("_line_tou"), "period_start", "period_end",
        (pl.col("amount") / pl.col("q_kwh")).alias("rate"))
    matches = (site_slots.join(energy_lines, on="site_id", how="inner")
               .filter(COVERED & (pl.col("_line_tou").is_null() | (pl.col("_line_tou") == pl.col("tou_period")))))
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
        .agg(pl.col("kwh").pipe(fsum).alias("day_kwh"), pl.col("tariff_cost").pipe(fsum),
             pl.col("invoiced_rate").first())
        .with_columns(pl.when(pl.col("invoice_line_id").is_null()).then(pl.col("tariff_cost"))
                      .otherwise(pl.col("day_kwh") * pl.col("invoiced_rate")).alias("energy_cost"))
        .with_columns(pl.when(pl.col("invoice_line_id").is_null()).then(1.0)
                      .when(pl.col("tariff_cost") != 0).then(pl.col("energy_cost") / pl.col("tariff_cost"))
                      .alias("true_up_factor"))
        .select("site_id", "tou_period", "invoice_line_id", "day_kwh", "tariff_cost", "invoiced_rate",
                "energy_cost", "true_up_factor")
        .sort("site_id", "tou_period", "invoice_line_id", nulls_last=True)
    )

    unplaceable = pl.col("_unplaceable").is_not_null()
    shares = (
        lines.filter(pl.col("cost_type") == "energy")
        .join(matches.group_by("source", "line_id").agg(pl.col("kwh").pipe(fsum).alias("_day_kwh")),
              on=["source", "line_id"], how="left")
        .with_columns(pl.col("_day_kwh").fill_null(0.0))
        .with_columns(
            pl.when(pl.col("_unplaceable").is_null()).then(pl.col("_day_kwh") / pl.col("q_kwh"))
            .otherwise(TIME_SHARE).alias("_share"),
            unplaceable.alias("_unplaced"),
            pl.when(unplaceable).then(pl.col("_unplaceable"))
            .when(pl.col("_day_kwh") == 0).then(pl.lit("no_energy_today")).alias("reason"),
            pl.when(unplaceable).then(pl.col("_unplaceable_detail"))
            .when(pl.col("_day_kwh") == 0).then(pl.format(
                "no energy at site {} in {} slots of the invoice period today: nothing of the line is due today",
                pl.col("site_id"), pl.col("tou_period").fill_null("any"))).alias("detail"))
    )
    return TrueUp(matches, invoiced, true_up, shares)


@dataclass(frozen=True)
class SpreadCharges:
    """Demand and fixed invoice lines, spread by energy over their slots (lazy).

    - `weights`: `source, line_id, site_id, slot, _f, _w`: per line, the slots it is spread over,
      with `_f` the slot's weight (its overlap with the peak interval in slots, or 1 on every
      covered slot) and `_w` = energy_j x `_f`.
    - `lines`: every demand and fixed line with `_weight` (the sum of its `_w`), its share of the
      day (`_share`) and `_unplaced`, `reason`, `detail`.
    """

    weights: pl.LazyFrame
    lines: pl.LazyFrame


def demand_and_fixed_charges(site_slots: pl.LazyFrame, lines: pl.LazyFrame, grid: SlotGrid) -> SpreadCharges:
    """Demand charges on the slots of their peak interval (or, without `peak_at`, the day's share
    of the invoice's kWh over the covered slots), fixed and tax lines by their time share over
    the covered slots, spread by energy."""
    spread_lines = lines.filter(pl.col("cost_type") != "energy").join(period_kwh(lines), on=INVOICE, how="left")
    unplaceable = pl.col("_unplaceable").is_not_null()  # no reference rate: its share stays unattributed
    peak = pl.col("cost_type").eq("demand") & pl.col("peak_at").is_not_null()
    slot_end = pl.col("slot_start") + pl.duration(seconds=grid.slot_s)
    peak_end = pl.col("peak_at") + pl.duration(seconds=PEAK_INTERVAL_S)
    peak_overlap = (pl.min_horizontal(slot_end, peak_end) - pl.max_horizontal("slot_start", "peak_at")) \
        .dt.total_microseconds().cast(pl.Float64) / 1e6
    weights = (
        site_slots.join(spread_lines.filter(~unplaceable)
                        .select("source", "line_id", "site_id", "cost_type", "peak_at", "peak_on_day", "period_start",
                                "period_end"), on="site_id", how="inner")
        .with_columns(pl.when(peak).then(pl.when(pl.col("peak_on_day")).then(peak_overlap.clip(lower_bound=0)
                                                                            / grid.slot_s).otherwise(0.0))
                      .otherwise(pl.when(COVERED).then(1.0).otherwise(0.0)).alias("_f"))
        .filter(pl.col("_f") > 0)
        .select("source", "line_id", "site_id", "slot", "_f", (pl.col("energy_j") * pl.col("_f")).alias("_w"))
    )
    shares = (
        spread_lines.join(weights.group_by("source", "line_id").agg(pl.col("_w").pipe(fsum).alias("_weight")),
                          on=["source", "line_id"], how="left")
        .with_columns(pl.col("_weight").fill_null(0.0))
        .with_columns(
            pl.when(peak).then(pl.when(pl.col("peak_on_day")).then(1.0).otherwise(0.0))
            .when(unplaceable).then(TIME_SHARE)
            .when((pl.col("cost_type") == "demand") & (pl.col("_period_kwh") > 0))
            .then(pl.col("_weight") / J_PER_KWH / pl.col("_period_kwh"))
            .otherwise(TIME_SHARE).alias("_share"))
        .with_columns((~(pl.col("_weight") > 0) | unplaceable).alias("_unplaced"))
        .with_columns(
            pl.when(peak & ~pl.col("peak_on_day")).then(pl.lit("peak_on_other_day"))
            .when(unplaceable).then(pl.col("_unplaceable"))
            .when(peak & pl.col("_unplaced")).then(pl.lit("no_energy_in_peak_interval"))
            .when(pl.col("_unplaced") & (pl.col("_share") != 0)).then(pl.lit("no_energy_in_period"))
            .alias("reason"),
            pl.when(peak & ~pl.col("peak_on_day")).then(pl.format(
                "demand peak interval starts {}, not on this day: nothing of the line is due today",
                iso_utc(pl.col("peak_at"))))
            .when(unplaceable).then(pl.col("_unplaceable_detail"))
            .when(peak & pl.col("_unplaced")).then(pl.format(
                "no energy at site {}'s nodes in the demand peak interval starting {}", pl.col("site_id"),
                iso_utc(pl.col("peak_at"))))
            .when(pl.col("_unplaced") & (pl.col("_share") != 0)).then(pl.format(
                "no energy at site {}'s nodes in the invoice period today", pl.col("site_id")))
            .alias("detail"))
    )
    return SpreadCharges(weights, shares)


def _spread_amounts(spread: SpreadCharges, allocated: pl.LazyFrame) -> pl.LazyFrame:
    """The weights of the spread lines that have energy to carry them, with each line's
    `_weight`, `component` and `day_amount`."""
    return (spread.weights.join(spread.lines.filter(pl.col("_weight") > 0).select("source", "line_id", "_weight"),
                                on=["source", "line_id"], how="inner")
            .join(allocated.select("source", "line_id", "component", "day_amount"), on=["source", "line_id"]))


def _node_slot_costs(energy: pl.LazyFrame, site_slots: pl.LazyFrame, true_up: TrueUp, spread: SpreadCharges,
                     allocated: pl.LazyFrame, cloud: list[str], stranded: list[str]) -> pl.LazyFrame:
    """Each node-slot's energy at its site-slot's price (the invoiced rate, else the tariff's; at
    a `stranded` site the invoiced rate only, else 0: the tariff is in a currency without a rate)
    and its share, by energy, of the demand and fixed charges spread on its site-slot."""
    per_j = (
        _spread_amounts(spread, allocated)
        .with_columns((pl.col("day_amount") * pl.col("_f") / pl.col("_weight")).alias("_per_j"))
        .group_by("site_id", "slot")
        .agg(fsum(pl.col("_per_j").filter(pl.col("component") == c), scale=1e9).alias(f"_{c}_per_j")
             for c in ("demand_cost", "fixed_cost"))
    )
    site_rates = (site_slots.join(true_up.invoiced, on=["site_id", "slot"], how="left")
                  .join(per_j, on=["site_id", "slot"], how="left")
                  .select("site_id", "slot",
                          pl.when(pl.col("site_id").is_in(stranded)).then(pl.col("_invoiced_rate"))
                          .otherwise(pl.coalesce("_invoiced_rate", "price_per_kwh")).alias("_price"),
                          "_demand_cost_per_j", "_fixed_cost_per_j"))
    is_cloud = pl.col("site_id").is_in(cloud)
    return (
        energy.join(site_rates, on=["site_id", "slot"], how="left")
        .select("node_id", "slot",
                pl.when(is_cloud).then(0.0)
                .otherwise((pl.col("energy_j") / J_PER_KWH * pl.col("_price")).fill_null(0.0))
                .alias("energy_cost"),
                (pl.col("energy_j") * pl.col("_demand_cost_per_j")).fill_null(0.0).alias("demand_cost"),
                (pl.col("energy_j") * pl.col("_fixed_cost_per_j")).fill_null(0.0).alias("fixed_cost"))
        .sort("node_id", "slot")
    )


def _line_site_slots(site_slots: pl.LazyFrame, true_up: TrueUp, spread: SpreadCharges, allocated: pl.LazyFrame,
                     cloud: list[str], grid: SlotGrid, stranded: list[str] = ()) -> pl.LazyFrame:
    """`EnergyCostResult.line_site_slots`: each line's placed amount per site-slot, and the
    tariff-priced energy no invoice line covers as the site's `tariff` line of the day (none for
    the `stranded` sites, whose tariff has no rate: `_stranded_tariff_lines`)."""
    cols = ["source", "line_id", "component", "site_id", "slot", "amount"]
    return pl.concat([
        true_up.matches.filter(~pl.col("site_id").is_in(cloud)).select(
            "source", "line_id", pl.lit("energy_cost").alias("component"), "site_id", "slot",
            (pl.col("kwh") * pl.col("rate")).alias("amount")),
        site_slots.filter(~pl.col("site_id").is_in([*cloud, *stranded]))
        .join(true_up.invoiced, on=["site_id", "slot"], how="anti")
        .select(pl.lit("tariff").alias("source"), (pl.col("site_id") + f":{grid.day.isoformat()}").alias("line_id"),
                pl.lit("energy_cost").alias("component"), "site_id", "slot", pl.col("tariff_cost").alias("amount")),
        _spread_amounts(spread, allocated)
        .select("source", "line_id", "component", "site_id", "slot",
                (pl.col("day_amount") * pl.col("_w") / pl.col("_weight")).alias("amount")),
    ]).select(pl.col(c) for c in cols).sort("source", "line_id", "site_id", "slot")
