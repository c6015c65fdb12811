"""What a cost step makes of its source lines (docs/attribution.md, steps 5-8), declared once.

A source line (a bill or invoice line, an asset's day of depreciation) becomes, for the day:

- its **line day** (`LINE_DAYS`): the day's share of the line, once per line considered;
- **allocations** (`ALLOCATIONS`): amounts spread evenly over slots `[slot_from, slot_to)` of a
  node (steps 6-8; step 5 places its lines on site-slots by energy instead);
- **unattributed** rows (`UNATTRIBUTED`): amounts that reach no node, with a reason.

For every line: its allocations + its unattributed rows = its `day_amount` (egress lines reach
requests directly, by response bytes: `rates.egress_by_response_bytes`). `reconcile` stacks
every step's frames, so they share these shapes.

Amounts are in the reporting currency, converted at the day's reference rate (`fx.to_reporting`):
a line day carries its `source_currency`, its `source_amount` (the day amount in that currency)
and the `fx_rate` applied. A line or asset whose currency has no rate is not converted: its whole
day amount stays unattributed (`no_fx_rate`) in its own `currency` (`fx_rate` null).
"""

import polars as pl

from transforms.attribution.grid import SlotGrid
from transforms.contracts import UTC_US

ALLOCATIONS = pl.Schema({"source": pl.String, "line_id": pl.String, "node_id": pl.String, "slot_from": pl.Int32,
                         "slot_to": pl.Int32, "component": pl.String, "amount": pl.Float64})
UNATTRIBUTED = pl.Schema({"source": pl.String, "line_id": pl.String, "component": pl.String, "amount": pl.Float64,
                          "currency": pl.String, "reason": pl.String, "service_name": pl.String})
LINE_DAYS = pl.Schema({"source": pl.String, "line_id": pl.String, "component": pl.String, "day_amount": pl.Float64,
                       "billed_day_amount": pl.Float64, "currency": pl.String, "source_currency": pl.String,
                       "source_amount": pl.Float64, "fx_rate": pl.Float64})

DAY_US = 86_400_000_000


def conform(lf: pl.LazyFrame, schema: pl.Schema, *key: str) -> pl.LazyFrame:
    """The schema's columns, cast, sorted by `key` so that a re-run writes the same bytes."""
    return lf.select(pl.col(name).cast(dtype) for name, dtype in schema.items()).sort(*key)


def allocation_rows(lf: pl.LazyFrame) -> pl.LazyFrame:
    return conform(lf, ALLOCATIONS, "source", "line_id", "node_id", "slot_from")


def unattributed_rows(lines: pl.LazyFrame) -> pl.LazyFrame:
    """Lines with a `reason`: their whole `day_amount` unattributed."""
    unattributed = lines.filter(pl.col("reason").is_not_null()).rename({"day_amount": "amount"})
    return conform(unattributed, UNATTRIBUTED, "source", "line_id")


def line_day_rows(lines: pl.LazyFrame) -> pl.LazyFrame:
    return conform(lines, LINE_DAYS, "source", "line_id")


def whole_day(lines: pl.LazyFrame, grid: SlotGrid) -> pl.LazyFrame:
    """Lines spread over every slot of the day, [0, n_slots)."""
    return lines.with_columns(pl.lit(0).alias("slot_from"), pl.lit(grid.n_slots).alias("slot_to"))


def day_lines(cost_lines: pl.LazyFrame, grid: SlotGrid) -> pl.LazyFrame:
    """Lines touching the grid's day, with the day's share of their amounts.

    `a_us`, `b_us`: the charge period clipped to the day, in microseconds from the day's start.
    `day_amount` = effective_amount x (period microseconds within the day / period microseconds),
    `billed_day_amount` likewise. A zero-length period puts its whole amount on the day holding
    `period_start` (`point` true)."""
    day_start = pl.lit(grid.start, UTC_US)
    start_us = (pl.col("period_start") - day_start).dt.total_microseconds()
    end_us = (pl.col("period_end") - day_start).dt.total_microseconds()
    period_us = end_us - start_us
    point = (period_us == 0) & (start_us >= 0) & (start_us < DAY_US)
    share = pl.when(pl.col("point")).then(1.0).otherwise(
        (pl.col("b_us") - pl.col("a_us")).cast(pl.Float64) / period_us.cast(pl.Float64))
    return (
        cost_lines.with_columns(start_us.clip(0, DAY_US).alias("a_us"), end_us.clip(0, DAY_US).alias("b_us"),
                                point.alias("point"))
        .filter((pl.col("b_us") > pl.col("a_us")) | pl.col("point"))
        .with_columns((pl.col("effective_amount") * share).alias("day_amount"),
                      (pl.col("billed_amount") * share).alias("billed_day_amount"))
    )


def period_slots(lines: pl.LazyFrame, grid: SlotGrid) -> pl.LazyFrame:
    """Each line's `day_amount` over the slots of its period within the day, by time.

    The slots the period covers wholly get one allocation [first, last); a slot it covers only
    partly (a period edge inside a slot) gets an allocation of its own with its fraction of the
    line, so a line makes at most three allocations. A zero-length period goes to the slot
    holding its instant."""
    slot_us = grid.slot_s * 1_000_000
    a, b, first, last = pl.col("a_us"), pl.col("b_us"), pl.col("first"), pl.col("last")
    lines = lines.with_columns(
        ((a + slot_us - 1) // slot_us).alias("first"),  # first slot starting at or after a
        (b // slot_us).alias("last"),  # slots [first, last) lie wholly inside [a, b)
        pl.when(pl.col("point")).then(1).otherwise(b - a).alias("span_us"),
    )
    spread = pl.col("point").not_()
    pieces = [
        # head: the slot before `first`, partly covered (the only slot, when [a, b) sits inside one)
        lines.filter(spread & (a < first * slot_us)).with_columns(
            (first - 1).alias("slot_from"), first.alias("slot_to"),
            (pl.min_horizontal(first * slot_us, b) - a).alias("piece_us")),
        lines.filter(spread & (last > first)).with_columns(
            first.alias("slot_from"), last.alias("slot_to"), ((last - first) * slot_us).alias("piece_us")),
        # tail: slot `last`, partly covered, unless it is the head's slot
        lines.filter(spread & (last >= first) & (b > last * slot_us)).with_columns(
            last.alias("slot_from"), (last + 1).alias("slot_to"), (b - last * slot_us).alias("piece_us")),
        lines.filter(pl.col("point")).with_columns(
            (a // slot_us).alias("slot_from"), (a // slot_us + 1).alias("slot_to"), pl.lit(1).alias("piece_us")),
    ]
    fraction = pl.col("piece_us").cast(pl.Float64) / pl.col("span_us").cast(pl.Float64)
    return pl.concat(pieces, how="vertical_relaxed").with_columns((pl.col("day_amount") * fraction).alias("amount"))
