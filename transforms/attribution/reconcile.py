"""Conservation: every source line's day amount ends in requests, idle or unattributed.

`RECONCILIATION` rows, one per source line and day: `source_amount` (the day's share of the
line), `to_requests`, `to_idle`, `unattributed`, `difference`, all in `unit`: `J` for energy, else
the ISO code of the currency they are in (the reporting one; a line without a reference rate
stays in its own). `source_currency`, `source_currency_amount` and `fx_rate` show a money line as
billed and the rate it was converted at (`source_amount = source_currency_amount x fx_rate`;
`fx_rate` null: not converted). Conservation holds in `unit`, to the cent after conversion.
`conservation_failures` lists the lines and totals that do not add up; the pipeline fails the
run on any.
"""

import polars as pl

from transforms.attribution.grid import SlotGrid, fsum

RECONCILIATION = pl.Schema({
    "source": pl.String, "line_id": pl.String, "component": pl.String, "unit": pl.String,
    "source_amount": pl.Float64, "to_requests": pl.Float64, "to_idle": pl.Float64,
    "unattributed": pl.Float64, "difference": pl.Float64, "source_currency": pl.String,
    "source_currency_amount": pl.Float64, "fx_rate": pl.Float64,
})
# The columns of a money line as billed (`lines.LINE_DAYS` -> RECONCILIATION).
AS_BILLED = (pl.col("currency").alias("unit"), "source_currency",
             pl.col("source_amount").alias("source_currency_amount"), "fx_rate")
MONEY_TOLERANCE = 0.01  # one cent, in the reporting currency
ENERGY_RELATIVE_TOLERANCE = 1e-9


def allocations_to_node_slots(allocations: pl.LazyFrame, node_slots: pl.LazyFrame,
                              components: list[str]) -> pl.LazyFrame:
    """Spread every allocation evenly over its slots and sum per node-slot: `node_slots`
    (`node_id, slot`, one row per node and slot) with one column per component (0 where none)."""
    steps = pl.concat([
        allocations.select("node_id", "component", pl.col("slot_from").alias("slot"),
                           (pl.col("amount") / (pl.col("slot_to") - pl.col("slot_from"))).alias("rate")),
        allocations.select("node_id", "component", pl.col("slot_to").alias("slot"),
                           (-pl.col("amount") / (pl.col("slot_to") - pl.col("slot_from"))).alias("rate")),
    ]).group_by("node_id", "component", "slot").agg(pl.col("rate").pipe(fsum))
    out = node_slots.select("node_id", "slot")
    for c in components:
        per = steps.filter(pl.col("component") == c).select("node_id", "slot", pl.col("rate").alias(c))
        out = out.join(per, on=["node_id", "slot"], how="left").with_columns(pl.col(c).fill_null(0.0))
    return out.sort("node_id", "slot").with_columns(pl.col(c).cum_sum().over("node_id") for c in components)


def _occupied_prefix(node_out: pl.LazyFrame) -> pl.LazyFrame:
    """`node_id, slot, occ_before`: the occupied shares of the node's slots before `slot` added
    up (exclusive prefix; a slot occupied throughout counts 1, one occupied 30 s of 60 counts
    0.5), with one extra row per node at `slot = n` holding the day's total."""
    occ = node_out.select("node_id", "slot", pl.col("occupied_share").alias("occupied")).sort("node_id", "slot")
    before = occ.with_columns((pl.col("occupied").cum_sum().over("node_id") - pl.col("occupied")).alias("occ_before"))
    # The day's total is the prefix's last value, not a group sum: a float sum follows row order,
    # which differs between runs (threads, processes), and the shares are fractions now.
    end = before.group_by("node_id").agg((pl.col("slot").max() + 1).alias("slot"),
                                         (pl.col("occ_before") + pl.col("occupied")).sort_by("slot").last()
                                         .alias("occ_before"))
    return pl.concat([before.select("node_id", "slot", "occ_before"), end.select("node_id", "slot", "occ_before")])


def reconcile_allocated_lines(allocations: pl.LazyFrame, line_days: pl.LazyFrame, unattributed: pl.LazyFrame,
                              node_out: pl.LazyFrame, *, paid_to_requests: pl.LazyFrame | None = None) -> pl.LazyFrame:
    """Reconciliation of lines placed on slots by `allocations` (even spreads): the part over
    occupied slots went to requests, the rest to idle. `paid_to_requests` (`source, line_id,
    component, amount`) adds lines paid to requests directly (egress by bytes)."""
    prefix = _occupied_prefix(node_out)
    placed = (
        allocations.join(prefix.rename({"slot": "slot_from", "occ_before": "occ_from"}), on=["node_id", "slot_from"],
                         how="left")
        .join(prefix.rename({"slot": "slot_to", "occ_before": "occ_to"}), on=["node_id", "slot_to"], how="left")
        .with_columns(((pl.col("occ_to") - pl.col("occ_from")) / (pl.col("slot_to") - pl.col("slot_from")))
                      .alias("frac"))
        .group_by("source", "line_id", "component")
        .agg((pl.col("amount") * pl.col("frac")).pipe(fsum).alias("to_requests"),
             (pl.col("amount") * (1 - pl.col("frac"))).pipe(fsum).alias("to_idle"))
    )
    if paid_to_requests is not None:
        direct = paid_to_requests.group_by("source", "line_id", "component").agg(
            pl.col("amount").pipe(fsum).alias("to_requests")).with_columns(pl.lit(0.0).alias("to_idle"))
        placed = pl.concat([placed, direct])
    return _finish(line_days.select("source", "line_id", "component", *AS_BILLED,
                                    pl.col("day_amount").alias("source_amount")), placed, unattributed)


def _finish(lines: pl.LazyFrame, placed: pl.LazyFrame, unattributed: pl.LazyFrame) -> pl.LazyFrame:
    """`RECONCILIATION` rows of `lines` (`source_amount`), from what was `placed` (`to_requests`,
    `to_idle`) and their `unattributed` rows (`amount`)."""
    keys = ["source", "line_id", "component"]
    unatt = unattributed.group_by(keys).agg(pl.col("amount").pipe(fsum).alias("unattributed"))
    return (
        lines.join(placed.group_by(keys).agg(pl.col("to_requests", "to_idle").pipe(fsum)), on=keys, how="left")
        .join(unatt, on=keys, how="left")
        .with_columns(pl.col("to_requests", "to_idle", "unattributed").fill_null(0.0))
        .with_columns((pl.col("source_amount") - pl.col("to_requests") - pl.col("to_idle") - pl.col("unattributed"))
                      .alias("difference"))
        .select(pl.col(n).cast(t) for n, t in RECONCILIATION.items())
        .sort(keys)
    )


def reconcile_site_slot_lines(line_site_slots: pl.LazyFrame, line_days: pl.LazyFrame, unattributed: pl.LazyFrame,
                              node_out: pl.LazyFrame, currency: str,
                              tariffs: pl.LazyFrame | None = None) -> pl.LazyFrame:
    """Reconciliation of lines placed on site-slots and shared there by energy (electricity
    invoices, tariff-priced energy): a site-slot's part went to requests in the proportion of
    its energy drawn by occupied nodes (times their occupied share). `node_out` needs `site_id,
    slot, occupied_share` and the energy columns. Tariff-priced energy (no invoice line) gets
    its own line per site and day, in the reporting `currency`; `tariffs` (`line_id,
    source_currency, fx_rate` of each site's tariff line) says what currency its tariff was in
    (default: the reporting one, rate 1)."""
    energy = pl.col("it_energy_j") + pl.col("overhead_j")
    occ = node_out.group_by("site_id", "slot").agg(
        (energy * pl.col("occupied_share")).pipe(fsum).alias("_occ"), energy.pipe(fsum).alias("_all")
    ).with_columns(pl.when(pl.col("_all") > 0).then(pl.col("_occ") / pl.col("_all")).otherwise(0.0).alias("frac"))
    placed = line_site_slots.join(occ.select("site_id", "slot", "frac"), on=["site_id", "slot"], how="left").select(
        "source", "line_id", "component", (pl.col("amount") * pl.col("frac")).alias("to_requests"),
        (pl.col("amount") * (1 - pl.col("frac"))).alias("to_idle"))
    tariff_days = line_site_slots.filter(pl.col("source") == "tariff").group_by("source", "line_id", "component").agg(
        pl.col("amount").pipe(fsum).alias("day_amount"))
    if tariffs is not None:
        tariff_days = tariff_days.join(tariffs.select("line_id", "source_currency", "fx_rate"), on="line_id",
                                       how="left")
    else:
        tariff_days = tariff_days.with_columns(pl.lit(None, pl.String).alias("source_currency"),
                                               pl.lit(None, pl.Float64).alias("fx_rate"))
    tariff_days = tariff_days.with_columns(
        pl.lit(currency).alias("currency"), pl.col("source_currency").fill_null(currency),
        pl.col("fx_rate").fill_null(1.0),
    ).with_columns((pl.col("day_amount") / pl.col("fx_rate")).alias("source_amount"))
    cols = ["source", "line_id", "component", "day_amount", "currency", "source_currency", "source_amount", "fx_rate"]
    lines = pl.concat([line_days.select(cols), tariff_days.select(cols)])
    return _finish(lines.select("source", "line_id", "component", *AS_BILLED,
                                pl.col("day_amount").alias("source_amount")), placed, unattributed)


def reconcile_energy(node_out: pl.LazyFrame, grid: SlotGrid) -> pl.LazyFrame:
    """Energy sources: each node's IT energy of the day (its meter, or its estimate) and each
    node's share of its site's facility overhead, in J: the idle part of each slot (`idle_<col>`)
    to idle, the rest to requests."""
    day = grid.day.isoformat()
    rows = []
    for col, source in (("it_energy_j", "node_energy"), ("overhead_j", "facility_overhead")):
        rows.append(node_out.group_by("node_id").agg(
            pl.col(col).pipe(fsum).alias("source_amount"),
            (pl.col(col) - pl.col(f"idle_{col}")).pipe(fsum).alias("to_requests"),
            pl.col(f"idle_{col}").pipe(fsum).alias("to_idle"),
        ).select(pl.lit(source).alias("source"), (pl.col("node_id") + f":{day}").alias("line_id"),
                 pl.lit(col).alias("component"), pl.lit("J").alias("unit"), "source_amount", "to_requests", "to_idle",
                 pl.lit(0.0).alias("unattributed")))
    return (pl.concat(rows).with_columns(
        (pl.col("source_amount") - pl.col("to_requests") - pl.col("to_idle")).alias("difference"),
        pl.lit(None, pl.String).alias("source_currency"), pl.lit(None, pl.Float64).alias("source_currency_amount"),
        pl.lit(None, pl.Float64).alias("fx_rate"))
        .select(pl.col(n).cast(t) for n, t in RECONCILIATION.items()).sort("source", "line_id"))


def conservation_failures(reconciliation: pl.DataFrame) -> pl.DataFrame:
    """Lines whose difference exceeds a cent (money, in its `unit`) or 1e-9 of the amount (energy, J)."""
    money = (pl.col("unit") != "J") & (pl.col("difference").abs() > MONEY_TOLERANCE)
    allowed_j = ENERGY_RELATIVE_TOLERANCE * pl.col("source_amount").abs().clip(lower_bound=1.0)
    energy = (pl.col("unit") == "J") & (pl.col("difference").abs() > allowed_j)
    return reconciliation.filter(money | energy)
