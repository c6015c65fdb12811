"""Hardware amortization, cloud bills and fixed site costs of one day (docs/attribution.md, steps 6-8).

Each step turns source lines into the day's allocations, unattributed rows and line days (the
frames of `lines`): for every line of its `line_days`, its allocations + its unattributed rows =
`day_amount`, except `egress` lines, which reach requests by response bytes
(`egress_by_response_bytes`: its request shares + its unattributed rows = `day_amount`).
"""

from collections.abc import Callable

import polars as pl

from transforms.attribution.fx import day_rates, no_fx_rate, to_reporting
from transforms.attribution.grid import SlotGrid, fsum, materialize
from transforms.attribution.lines import (allocation_rows, conform, day_lines, line_day_rows, period_slots,
                                          unattributed_rows, whole_day)
from transforms.attribution.occupancy import IDX, node_index
from transforms.contracts import UTC_US

EGRESS_LINES = pl.Schema({"source": pl.String, "line_id": pl.String, "node_id": pl.String, "period_start": UTC_US,
                          "period_end": UTC_US, "day_amount": pl.Float64, "currency": pl.String,
                          "service_name": pl.String})

ASSET_SOURCE = "asset_register"


# --- step 6: hardware amortization ---------------------------------------------------------

def asset_depreciation(assets: pl.LazyFrame, grid: SlotGrid) -> pl.LazyFrame:
    """Depreciation of every asset on the grid's day, in the asset's currency.

    One row per asset depreciating that day: `asset_id, node_id, site_id, day_amount, currency,
    method, book_value_start` (book value at the start of the day). The day is the unit, since
    `in_service_date` is a date: an asset depreciates whole days from its in-service date (that
    day included) to the earlier of its disposal date and the end of its life (both excluded);
    life_days = days from `in_service_date` to `in_service_date + useful_life_months` (calendar
    months). Straight-line: (cost - salvage) / life_days a day. Declining balance (double): daily
    rate r = 2 / life_days, book(d) = max(salvage, cost x (1 - r)^d) after d days, the day's
    depreciation book(d) - book(d + 1); the last day of life takes all the book above salvage, so
    the asset ends exactly at salvage. Any method but `declining_balance` is straight-line.
    """
    day = pl.lit(grid.day, pl.Date)
    start = pl.col("in_service_date")
    life = (start.dt.offset_by(pl.format("{}mo", pl.col("useful_life_months"))) - start).dt.total_days()
    cost, salvage = pl.col("acquisition_cost"), pl.col("salvage_value")
    days_in, life_days = pl.col("days_in"), pl.col("life_days")

    straight = (cost - salvage) / life_days
    rate = 2.0 / life_days

    def book(d: pl.Expr) -> pl.Expr:
        return pl.max_horizontal(salvage, cost * (1.0 - rate).pow(d))

    declining = (pl.when(days_in == life_days - 1).then(book(days_in) - salvage)
                 .otherwise(book(days_in) - book(days_in + 1)))
    is_declining = pl.col("method") == "declining_balance"
    return (
        assets.with_columns(life.alias("life_days"), (day - start).dt.total_days().alias("days_in"))
        .filter((days_in >= 0) & (days_in < life_days)
                & (pl.col("disposal_date").is_null() | (day < pl.col("disposal_date"))))
        .select(
            "asset_id", "node_id", "site_id",
            pl.when(is_declining).then(declining).otherwise(straight).alias("day_amount"),
            "currency", "method",
            pl.when(is_declining).then(book(days_in)).otherwise(cost - straight * days_in).alias("book_value_start"),
        )
        .sort("asset_id")
    )


def amortization_allocations(depreciation: pl.LazyFrame, grid: SlotGrid, currency: str,
                             rates: pl.LazyFrame | None = None) -> tuple[pl.LazyFrame, pl.LazyFrame, pl.LazyFrame]:
    """(allocations, unattributed, line_days) of `asset_depreciation` rows: each asset-day
    (`source` `asset_register`, `line_id` `<asset_id>:<YYYY-MM-DD>`) over the whole day
    [0, n_slots) of its node, component `amortization_cost`, converted to the reporting
    `currency` at the day's rate (`rates`: `fx.day_rates`; None: none but the reporting
    currency's); an asset whose currency has no rate stays unattributed (`no_fx_rate`)."""
    rates = day_rates(None, grid.day, currency) if rates is None else rates
    lines = to_reporting(depreciation.with_columns(pl.col("day_amount").alias("billed_day_amount")), rates, currency)
    lines = lines.with_columns(
        pl.lit(ASSET_SOURCE).alias("source"),
        (pl.col("asset_id") + pl.lit(f":{grid.day.isoformat()}")).alias("line_id"),
        pl.lit("amortization_cost").alias("component"),
        no_fx_rate(currency).alias("reason"),
        pl.lit(None, pl.String).alias("service_name"),
    )
    allocations = whole_day(lines.filter(pl.col("reason").is_null()), grid).with_columns(
        pl.col("day_amount").alias("amount"))
    return allocation_rows(allocations), unattributed_rows(lines), line_day_rows(lines)


# --- step 7: cloud bills (FOCUS) -------------------------------------------------------------

def cloud_allocations(
        cost_lines: pl.LazyFrame, nodes: pl.LazyFrame, grid: SlotGrid, currency: str,
        rates: pl.LazyFrame | None = None) -> tuple[pl.LazyFrame, pl.LazyFrame, pl.LazyFrame, pl.LazyFrame]:
    """(allocations, unattributed, line_days, egress_lines) of the `focus` lines touching the day.

    The day's share of a line: `effective_amount` (and `billed_amount`, in `billed_day_amount`)
    x time of the charge period within the day / time of the period. `cloud_compute` lines
    whose `resource_id` is a node's `cloud_resource_id` go to that node's slots covering the
    period within the day, by time (component `cloud_cost`). `egress` lines go to
    `egress_lines` for `egress_by_response_bytes`: there `period_start`/`period_end` are the charge
    period clipped to the day (the window `day_amount` belongs to), `node_id` is null when the
    resource is no node. Amounts converted to `currency` at the day's rate (`rates`, as for
    `amortization_allocations`). Unattributed: a currency without a rate (`no_fx_rate`), other
    cost types (`not_a_serving_cost`), compute of a resource that is no node
    (`resource_not_a_serving_node`)."""
    rates = day_rates(None, grid.day, currency) if rates is None else rates
    serving = (nodes.filter(pl.col("cloud_resource_id").is_not_null())
               .group_by("cloud_resource_id").agg(pl.col("node_id").min()))  # never two nodes for one line
    is_egress = pl.col("cost_type") == "egress"
    lines = (
        to_reporting(day_lines(cost_lines.filter(pl.col("source") == "focus"), grid), rates, currency)
        .join(serving, left_on="resource_id", right_on="cloud_resource_id", how="left")
        .with_columns(
            pl.when(is_egress).then(pl.lit("egress_cost")).otherwise(pl.lit("cloud_cost")).alias("component"),
            no_fx_rate(currency)
            .when(~pl.col("cost_type").is_in(["cloud_compute", "egress"])).then(pl.lit("not_a_serving_cost"))
            .when(~is_egress & pl.col("node_id").is_null()).then(pl.lit("resource_not_a_serving_node"))
            .alias("reason"),
        )
    )
    routed = lines.filter(pl.col("reason").is_null())
    day_start = pl.lit(grid.start, UTC_US)
    egress = routed.filter(is_egress).with_columns(
        (day_start + pl.duration(microseconds=pl.col("a_us"))).alias("period_start"),
        (day_start + pl.duration(microseconds=pl.col("b_us"))).alias("period_end"))
    return (allocation_rows(period_slots(routed.filter(~is_egress), grid)), unattributed_rows(lines),
            line_day_rows(lines), conform(egress, EGRESS_LINES, "source", "line_id"))


def egress_by_response_bytes(egress_lines: pl.LazyFrame, requests: pl.LazyFrame,
                             grid: SlotGrid) -> tuple[Callable[[pl.LazyFrame], pl.LazyFrame], pl.LazyFrame]:
    """Egress lines to requests by response bytes: `(add_egress_cost, unattributed)`.

    `egress_lines`: `cloud_allocations`' fourth frame. Each line's `day_amount` goes to the
    requests of its node completed in its [period_start, period_end), by `response_bytes`: a
    request takes `day_amount x response_bytes / line_bytes` of every such line, `line_bytes`
    the bytes of the line's requests (`egress_line_bytes`, one pass over the requests of the
    egress lines' nodes). `add_egress_cost` adds that sum, `egress_cost`, to a frame of requests
    (`node_id, completed_at, response_bytes`), reporting currency, 0 for a request of unknown
    size or of no line (`EgressRates`: computed in the request's own row, no join). `unattributed`:
    the lines no request takes a share of (`no_requests_with_bytes`, or `resource_not_a_serving_node`
    for a line of no node), in the shape of `lines.UNATTRIBUTED`."""
    egress_nodes = egress_lines.select(pl.col("node_id").drop_nulls().unique()).collect()["node_id"].to_list()
    (line_bytes,) = materialize(egress_line_bytes(egress_lines, requests.filter(pl.col("node_id").is_in(egress_nodes))))
    rates = EgressRates(egress_lines.collect(), line_bytes.collect(), grid)
    (unattributed,) = materialize(egress_unattributed(egress_lines, line_bytes))
    return rates.add, unattributed


def _egress_hours(egress_lines: pl.LazyFrame) -> pl.LazyFrame:
    """Egress lines, one row per UTC hour their window touches (`hour`)."""
    return (
        egress_lines.filter(pl.col("period_end") > pl.col("period_start"))
        .with_columns(pl.datetime_ranges(pl.col("period_start").dt.truncate("1h"),
                                         (pl.col("period_end") - pl.duration(microseconds=1)).dt.truncate("1h"),
                                         "1h").alias("hour"))
        .explode("hour")
    )


def egress_line_bytes(egress_lines: pl.LazyFrame, requests: pl.LazyFrame) -> pl.LazyFrame:
    """`source, line_id, line_bytes`: the response bytes of the requests of each egress line's
    node completed in its [period_start, period_end) (requests of unknown size left out), for
    the lines with some (`line_bytes > 0`): the lines' rates come from it (`EgressRates`)."""
    sized = (requests.filter(pl.col("response_bytes").is_not_null())
             .select("node_id", "completed_at", "response_bytes",
                     pl.col("completed_at").dt.truncate("1h").alias("hour")))
    return (
        _egress_hours(egress_lines).join(sized, on=["node_id", "hour"], how="inner")
        .filter((pl.col("completed_at") >= pl.col("period_start")) & (pl.col("completed_at") < pl.col("period_end")))
        .group_by("source", "line_id").agg(pl.col("response_bytes").sum().alias("line_bytes"))
        .filter(pl.col("line_bytes") > 0)
        .sort("source", "line_id")
    )


# Hours of `EgressRates`' table per node: the day's 24 and one empty row before and after.
HOURS = 26


class EgressRates:
    """Egress lines by rate: each request takes `day_amount x response_bytes / line_bytes` of
    every line of its node whose window holds its completion, in its own row: no row per
    matched request, no join on request_id.

    The lines (with `line_bytes` from `egress_line_bytes`) are laid out densely by node, UTC
    hour of the day and rank within the hour (`k` slots: the most lines any node-hour has), so
    a request finds them by position (`gather`)."""

    def __init__(self, egress_lines: pl.DataFrame, line_bytes: pl.DataFrame, grid: SlotGrid):
        self.grid = grid
        paid = (egress_lines.lazy().filter(pl.col("node_id").is_not_null())
                .join(line_bytes.lazy(), on=["source", "line_id"], how="inner"))
        hours = (_egress_hours(paid)
                 .with_columns(((pl.col("hour") - pl.lit(grid.start, UTC_US)).dt.total_microseconds() // 3_600_000_000)
                               .alias("h"))
                 .filter(pl.col("h").is_between(0, 23))
                 .sort("node_id", "h", "source", "line_id")
                 .with_columns(pl.int_range(pl.len()).over("node_id", "h").alias("j"))
                 .collect())
        self.nodes = sorted(hours["node_id"].unique().to_list())
        self.k = int(hours["j"].max()) + 1 if hours.height else 0
        # HOURS rows a node: the day's 24 at h + 1, and an empty one on each side for the hours
        # before and after the day (a request completed then finds no line: nulls, as if no node).
        n = len(self.nodes) * HOURS * self.k
        hours = hours.with_columns((node_index(self.nodes) * (HOURS * self.k) + (pl.col("h") + 1) * self.k
                                    + pl.col("j")).alias("_i"))
        self.table = (pl.DataFrame({"_i": pl.int_range(0, n, dtype=pl.Int64, eager=True)})
                      .join(hours.select("_i", "period_start", "period_end", "day_amount", "line_bytes"), on="_i",
                            how="left", maintain_order="left"))

    def add(self, requests: pl.LazyFrame) -> pl.LazyFrame:
        """`requests` (`node_id, completed_at, response_bytes`, ...) with `egress_cost`: the sum
        of its lines' shares, exact (as `fsum` over the matched lines), 0 when none matches. The
        position of a request's node-hour is a column of its own, made once: in an expression
        the streaming engine computes each of the k x 4 gathers' positions anew (the node cast
        to its index each time, in each of the two passes over the requests)."""
        if not self.k:
            return requests.with_columns(self.cost())
        h = (pl.col("completed_at") - pl.lit(self.grid.start, UTC_US)).dt.total_microseconds() // 3_600_000_000
        # Off the day, the empty hour rows.
        base = node_index(self.nodes) * (HOURS * self.k) + (h.clip(-1, 24) + 1) * self.k
        return (requests.with_columns(base.cast(IDX).alias("_egress_at")).with_columns(self.cost(pl.col("_egress_at")))
                .drop("_egress_at"))

    def cost(self, base: pl.Expr | None = None) -> pl.Expr:
        """`egress_cost` (`add`) as one expression over a request frame; `base` the position of
        the request's node-hour in the table (default: computed here)."""
        if not self.k:
            return pl.lit(0.0).alias("egress_cost")
        if base is None:
            h = (pl.col("completed_at") - pl.lit(self.grid.start, UTC_US)).dt.total_microseconds() // 3_600_000_000
            base = (node_index(self.nodes) * (HOURS * self.k) + (h.clip(-1, 24) + 1) * self.k).cast(IDX)
        terms = []
        for j in range(self.k):
            def at(name: str, j: int = j) -> pl.Expr:
                return pl.lit(self.table[name]).gather(base + j if j else base)
            inside = (pl.col("completed_at") >= at("period_start")) & (pl.col("completed_at") < at("period_end"))
            terms.append(pl.when(inside).then(at("day_amount") * pl.col("response_bytes") / at("line_bytes"))
                         .cast(pl.Decimal(38, 18)))
        total = terms[0] if self.k == 1 else pl.sum_horizontal(terms)
        return total.cast(pl.Float64).fill_null(0.0).alias("egress_cost")


def egress_unattributed(egress_lines: pl.LazyFrame, line_bytes: pl.LazyFrame) -> pl.LazyFrame:
    """Egress lines no request takes a share of: `no_requests_with_bytes`, or
    `resource_not_a_serving_node` for a line of no node."""
    unattributed = (
        egress_lines.join(line_bytes.select("source", "line_id"), on=["source", "line_id"], how="anti")
        .with_columns(pl.lit("egress_cost").alias("component"),
                      pl.when(pl.col("node_id").is_null()).then(pl.lit("resource_not_a_serving_node"))
                      .otherwise(pl.lit("no_requests_with_bytes")).alias("reason"))
    )
    return unattributed_rows(unattributed)


# --- step 8: fixed site costs ----------------------------------------------------------------

def fixed_site_allocations(cost_lines: pl.LazyFrame, nodes: pl.LazyFrame, grid: SlotGrid, currency: str,
                           rates: pl.LazyFrame | None = None) -> tuple[pl.LazyFrame, pl.LazyFrame, pl.LazyFrame]:
    """(allocations, unattributed, line_days) of fixed site costs touching the day: every
    `colocation_invoice` line, and `canonical` lines of cost type `colocation` or `other` with no
    `resource_id`. The day's share (as for cloud lines) goes to the nodes of the line's site by
    `reserved_kw` (evenly when the site reserves none), each node's part over the whole day
    [0, n_slots), component `fixed_cost`, converted at the day's rate (`rates`, as for
    `amortization_allocations`). Unattributed: `no_fx_rate`, `site_has_no_nodes`."""
    rates = day_rates(None, grid.day, currency) if rates is None else rates
    fixed = cost_lines.filter(
        (pl.col("source") == "colocation_invoice")
        | ((pl.col("source") == "canonical") & pl.col("cost_type").is_in(["colocation", "other"])
           & pl.col("resource_id").is_null()))
    site_kw = pl.col("reserved_kw").pipe(fsum).over("site_id")
    node_share = nodes.select(
        "site_id", "node_id",
        pl.when(site_kw > 0).then(pl.col("reserved_kw") / site_kw).otherwise(1.0 / pl.len().over("site_id"))
        .alias("node_share"))
    sites = nodes.select("site_id").unique().with_columns(pl.lit(True).alias("has_nodes"))
    lines = (
        to_reporting(day_lines(fixed, grid), rates, currency)
        .join(sites, on="site_id", how="left")
        .with_columns(
            pl.lit("fixed_cost").alias("component"),
            no_fx_rate(currency).when(pl.col("has_nodes").is_null()).then(pl.lit("site_has_no_nodes"))
            .alias("reason"),
        )
    )
    allocations = (lines.filter(pl.col("reason").is_null()).join(node_share, on="site_id", how="inner")
                   .with_columns((pl.col("day_amount") * pl.col("node_share")).alias("amount")))
    return allocation_rows(whole_day(allocations, grid)), unattributed_rows(lines), line_day_rows(lines)
