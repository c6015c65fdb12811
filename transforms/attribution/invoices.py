"""The electricity invoice lines of a day, judged and made ready for step 5 (`electricity`).

An invoice is the lines of one source, site and period. A line is used on a day when its period
overlaps the day, or, for a demand line, when its peak interval starts on it. Lines that cannot
be used as they are (two versions of one line, an unknown cost type or energy unit, an empty
period) raise: the invoice must be corrected. Amounts are converted to the reporting currency at
the day's reference rate (`fx`). Lines that can be read but not placed on the day's energy (a
currency without a rate, a TOU period the tariff does not have, an energy line stating no kWh)
are marked, and their time share stays unattributed.
"""

import polars as pl

from transforms.attribution.fx import day_rates
from transforms.attribution.grid import SlotGrid, fsum
from transforms.attribution.prices import MAX_LISTED
from transforms.contracts import COST_LINES, UTC_US
from transforms.inventory import Inventory

ENERGY_UNITS = {"kwh": 1.0, "mwh": 1000.0, "wh": 0.001}  # invoice energy quantity -> kWh
LINE_COST_TYPES = {"energy": "energy_cost", "demand": "demand_cost", "other": "fixed_cost"}
INVOICE = ["source", "site_id", "period_start", "period_end"]  # the lines of one invoice


def _peak_on_day(grid: SlotGrid) -> pl.Expr:
    """A demand line's peak interval starts on the grid's day."""
    day_start, day_end = pl.lit(grid.start, UTC_US), pl.lit(grid.end, UTC_US)
    return pl.col("peak_at").is_between(day_start, day_end, closed="left").fill_null(False)


def invoice_lines_of_day(invoice_lines: pl.LazyFrame, site_ids: list[str], inventory: Inventory,
                         grid: SlotGrid, rates: pl.LazyFrame | None = None) -> pl.LazyFrame:
    """The electricity invoice lines of `site_ids` whose period overlaps the day (or whose demand
    peak starts on it), judged (`check_invoice_lines`; exact copies, one invoice delivered twice,
    collapse) and read: `amount` (effective amount), `q_kwh` (an energy line's quantity in kWh),
    `period_s`, `overlap_s` (seconds of the period, and of it within the day), `peak_on_day`,
    `component` (`LINE_COST_TYPES`), and for a line that cannot be placed `_unplaceable` (a reason
    code) and `_unplaceable_detail` (a sentence). `amount` and `billed_amount` are converted to the
    reporting currency at the day's rate (`rates`: `fx.day_rates`; None: the reporting currency's
    only), `currency` then the reporting one; `source_currency`, `source_amount` (the effective
    amount as billed) and `fx_rate` (null: no rate, `_unplaceable` `no_fx_rate`, the line kept in
    its own currency) say how. Small: collected to be judged."""
    day_start, day_end = pl.lit(grid.start, UTC_US), pl.lit(grid.end, UTC_US)
    lines = (COST_LINES.conform(invoice_lines)
             .filter(pl.col("site_id").is_in(site_ids)
                     & (((pl.col("period_start") < day_end) & (pl.col("period_end") > day_start))
                        | ((pl.col("cost_type") == "demand") & _peak_on_day(grid))))
             .unique().sort("source", "line_id").collect())
    check_invoice_lines(lines, inventory, grid)
    rates = day_rates(None, grid.day, inventory.currency) if rates is None else rates
    return _read_lines(lines, site_ids, inventory, grid, rates)


def check_invoice_lines(lines: pl.DataFrame, inventory: Inventory, grid: SlotGrid) -> None:
    """Raises ValueError naming the lines and the fix when lines come in two versions, are of a
    cost type other than energy/demand/other, of an energy unit not in ENERGY_UNITS, or of a
    period that does not end after it starts."""
    def listed(frame: pl.DataFrame, *cols: str) -> str:
        return "; ".join(" ".join(f"{c} {v}" for c, v in zip(("line", *cols), row, strict=True))
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


def _tariff_periods(site_ids: list[str], inventory: Inventory) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Which TOU periods each site's tariff has (market tariffs: none), to tell placeable lines:
    `site_id, tou_period, _known`, and per site `_tariff` and `_names` (for the messages)."""
    tariff_of = {t.id: t for t in inventory.tariffs}
    sites = [inventory.site(s) for s in site_ids]
    known = pl.LazyFrame({"site_id": [s.id for s in sites for _ in tariff_of[s.tariff].periods],
                          "tou_period": [p.name for s in sites for p in tariff_of[s.tariff].periods],
                          "_known": [True for s in sites for _ in tariff_of[s.tariff].periods]},
                         schema={"site_id": pl.String, "tou_period": pl.String, "_known": pl.Boolean}).unique()
    names = pl.LazyFrame({"site_id": [s.id for s in sites], "_tariff": [s.tariff for s in sites],
                          "_names": [", ".join(dict.fromkeys(p.name for p in tariff_of[s.tariff].periods)) or "none"
                                     for s in sites]},
                         # typed: with no priced site (a cloud-only fleet) the lists are empty (issue 16, item 6)
                         schema={"site_id": pl.String, "_tariff": pl.String, "_names": pl.String})
    return known, names


def _seconds(d: pl.Expr) -> pl.Expr:
    return d.dt.total_microseconds().cast(pl.Float64) / 1e6


def _read_lines(lines: pl.DataFrame, site_ids: list[str], inventory: Inventory, grid: SlotGrid,
                rates: pl.LazyFrame) -> pl.LazyFrame:
    """`invoice_lines_of_day`'s columns of judged lines."""
    day_start, day_end = pl.lit(grid.start, UTC_US), pl.lit(grid.end, UTC_US)
    known, names = _tariff_periods(site_ids, inventory)
    factor = pl.col("unit").str.to_lowercase().replace_strict(ENERGY_UNITS, default=None, return_dtype=pl.Float64)
    q_kwh = pl.col("quantity") * pl.when(pl.col("unit").is_null()).then(1.0).otherwise(factor)
    energy = pl.col("cost_type") == "energy"
    unknown_tou = energy & pl.col("tou_period").is_not_null() & pl.col("_known").is_null()
    no_kwh = energy & ~(pl.col("q_kwh") > 0).fill_null(False)
    no_rate = pl.col("fx_rate").is_null()
    converted = pl.when(no_rate).then(1.0).otherwise(pl.col("fx_rate"))
    return (
        lines.lazy()
        .join(known, on=["site_id", "tou_period"], how="left")
        .join(names, on="site_id", how="left")
        .join(rates.select("currency", "fx_rate"), on="currency", how="left")
        .with_columns(
            pl.col("currency").alias("source_currency"),
            pl.col("effective_amount").alias("source_amount"),
            (pl.col("effective_amount") * converted).alias("amount"),
            (pl.col("billed_amount") * converted).alias("billed_amount"),
            pl.when(no_rate).then(pl.col("currency")).otherwise(pl.lit(inventory.currency)).alias("currency"),
            pl.when(energy).then(q_kwh).alias("q_kwh"),
            _seconds(pl.col("period_end") - pl.col("period_start")).alias("period_s"),
            _seconds(pl.min_horizontal("period_end", day_end) - pl.max_horizontal("period_start", day_start))
            .clip(lower_bound=0).alias("overlap_s"),
            _peak_on_day(grid).alias("peak_on_day"),
            pl.col("cost_type").replace_strict(LINE_COST_TYPES, return_dtype=pl.String).alias("component"),
        )
        .with_columns(
            pl.when(no_rate).then(pl.lit("no_fx_rate"))
            .when(unknown_tou).then(pl.lit("tou_period_not_in_tariff"))
            .when(no_kwh).then(pl.lit("no_billed_kwh")).alias("_unplaceable"),
            pl.when(no_rate).then(pl.format(
                "no reference rate of {} to {} on {} (nor in the week before): the line's time share stays "
                "unattributed in {}; deliver the rates (`_fleet/fx/`)", pl.col("source_currency"),
                pl.lit(inventory.currency), pl.lit(grid.day.isoformat()), pl.col("source_currency")))
            .when(unknown_tou).then(pl.format(
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


def period_kwh(lines: pl.LazyFrame) -> pl.LazyFrame:
    """kWh of each invoice (`INVOICE` columns, `_period_kwh`): its TOU energy lines, else its flat
    ones (a flat delivery line repeats the energy the TOU supply lines bill)."""
    energy = lines.filter((pl.col("cost_type") == "energy") & (pl.col("q_kwh") > 0))
    tou = pl.col("tou_period").is_not_null()
    return energy.group_by(INVOICE).agg(
        pl.when(tou.any()).then(pl.col("q_kwh").filter(tou).pipe(fsum)).otherwise(pl.col("q_kwh").pipe(fsum))
        .alias("_period_kwh"))
