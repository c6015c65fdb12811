"""One day of attribution, end to end: canonical inputs in, cost facts and reconciliation out.

`attribute_day` wires the steps of docs/attribution.md together. Frames that several later
steps read (node-slot energy, prices, costs, occupancy) are collected once at their stage
(`_materialize`): left lazy, Polars would plan them again for every reader. Node-slot frames
are nodes x slots in size (2.2 M rows for 1,500 nodes at 60 s), request frames one row per
request; the outputs stay lazy for the caller to collect together.
"""

from dataclasses import dataclass

import polars as pl

from transforms.attribution.energy import attach_overhead, node_slot_energy, site_hour_overhead
from transforms.attribution.facts import idle_by_pool, idle_shares, request_facts, span_methods
from transforms.attribution.grid import COMPONENTS, SlotGrid, fsum
from transforms.attribution.occupancy import Weight, request_segments, share_slot_costs
from transforms.attribution.prices import energy_costs, site_slot_prices
from transforms.attribution.rates import (amortization_allocations, asset_depreciation, cloud_allocations,
                                          egress_to_requests, fixed_site_allocations)
from transforms.attribution.reconcile import (allocations_to_node_slots, reconcile_allocated_lines, reconcile_energy,
                                              reconcile_site_slot_lines)
from transforms.inventory import Inventory

ENERGY_COMPONENTS = ["it_energy_j", "overhead_j"]
SHARED = [*ENERGY_COMPONENTS, *COMPONENTS]


def _materialize(*frames: pl.LazyFrame) -> list[pl.LazyFrame]:
    """Collect frames read by several later steps, together, once."""
    return [f.lazy() for f in pl.collect_all(list(frames))]


@dataclass(frozen=True)
class DayInputs:
    """Canonical inputs of one UTC day: its requests and power readings (all sites), the cost
    lines whose periods may touch it (any delivery day, latest version of each line), the
    asset register in force, and hourly market prices (`tariff_id, hour_utc, price_per_kwh`)."""

    requests: pl.LazyFrame
    power_readings: pl.LazyFrame
    cost_lines: pl.LazyFrame
    assets: pl.LazyFrame
    market_prices: pl.LazyFrame | None = None


@dataclass(frozen=True)
class DayOutputs:
    request_costs: pl.LazyFrame
    node_slots: pl.LazyFrame
    pool_idle: pl.LazyFrame
    site_hours: pl.LazyFrame
    true_up: pl.LazyFrame
    unattributed: pl.LazyFrame
    reconciliation: pl.LazyFrame
    totals: pl.LazyFrame


def attribute_day(inputs: DayInputs, inventory: Inventory, grid: SlotGrid, *, weight: Weight = "time",
                  gap_limit_s: float = 300.0) -> DayOutputs:
    nodes, meters, sites = inventory.nodes_frame(), inventory.meters_frame(), inventory.sites_frame()
    currency = inventory.currency

    # 1, 4. Energy per node-slot and its share of facility overhead.
    readings, cost_lines = _materialize(inputs.power_readings, inputs.cost_lines)
    (energy,) = _materialize(node_slot_energy(readings, nodes, meters, grid, gap_limit_s=gap_limit_s))
    (site_hours,) = _materialize(site_hour_overhead(energy, nodes, readings, meters, sites, grid))
    (energy,) = _materialize(attach_overhead(energy, nodes, site_hours, grid))

    # 5. Energy price, invoice true-up, demand charges.
    prices = site_slot_prices(inventory, inputs.market_prices, grid)
    invoices = cost_lines.filter(pl.col("source") == "electricity_invoice")
    priced = energy_costs(energy, nodes, prices, invoices, inventory, grid)
    priced = type(priced)(*_materialize(*(getattr(priced, f) for f in priced.__dataclass_fields__)))

    # 6-8. Amortization, cloud bills, fixed site costs: even spreads over node-slots.
    am = _materialize(*amortization_allocations(asset_depreciation(inputs.assets, grid), grid, currency))
    cl_alloc, cl_unatt, cl_days, egress_lines = _materialize(*cloud_allocations(cost_lines, nodes, grid, currency))
    fx = _materialize(*fixed_site_allocations(cost_lines, nodes, grid, currency))
    allocations = pl.concat([am[0], cl_alloc, fx[0]])
    spread = allocations_to_node_slots(allocations, energy.select("node_id", "slot"),
                                       ["amortization_cost", "cloud_cost", "fixed_cost"]).rename({"fixed_cost": "_fixed_spread"})
    (costs,) = _materialize(
        energy.join(priced.node_slot_costs, on=["node_id", "slot"], how="left")
        .join(spread, on=["node_id", "slot"], how="left")
        .with_columns(pl.col(*COMPONENTS, "_fixed_spread").fill_null(0.0))
        .with_columns((pl.col("fixed_cost") + pl.col("_fixed_spread")).alias("fixed_cost"))
        .drop("_fixed_spread")
        .join(nodes.select("node_id", "pool_id", "site_id"), on="node_id")
    )

    # 2, 3. Occupancy: requests share each slot by weight; unoccupied slots are idle.
    (requests,) = _materialize(inputs.requests)
    (segments,) = _materialize(request_segments(requests, grid, weight))
    shares, node_out = _materialize(*share_slot_costs(segments, costs, SHARED, grid))
    request_egress, eg_unatt = _materialize(*egress_to_requests(egress_lines, requests))

    # 9. Direct cost, idle share by tier policy, fully loaded cost.
    direct = (requests.select("request_id", "pool_id", "tier")
              .join(shares, on="request_id", how="left").join(request_egress, on="request_id", how="left")
              .select("request_id", "pool_id", "tier",
                      pl.sum_horizontal(pl.col(*COMPONENTS, "egress_cost").fill_null(0.0)).alias("direct_cost")))
    pool_idle_amounts = idle_by_pool(node_out, nodes)
    request_idle, pool_idle = idle_shares(direct, pool_idle_amounts, inventory)
    occupied_s = segments.group_by("request_id").agg((pl.col("e") - pl.col("s")).pipe(fsum).alias("occupied_s"))
    facts = request_facts(requests, shares, request_egress, request_idle, span_methods(segments, node_out, grid.slot_s),
                          occupied_s, currency=currency, weight=weight)

    # 10. Reconciliation per source line, and totals across the engine.
    line_days = pl.concat([am[2], cl_days, fx[2]])
    unattributed = pl.concat([am[1], cl_unatt, fx[1], eg_unatt, priced.unattributed])
    egress_paid = (egress_lines.select("source", "line_id", pl.lit("egress_cost").alias("component"), "day_amount")
                   .join(eg_unatt.group_by("source", "line_id").agg(pl.col("amount").pipe(fsum).alias("_u")),
                         on=["source", "line_id"], how="left")
                   .select("source", "line_id", "component", (pl.col("day_amount") - pl.col("_u").fill_null(0.0)).alias("amount")))
    reconciliation = pl.concat([
        reconcile_allocated_lines(allocations, line_days, pl.concat([am[1], cl_unatt, fx[1], eg_unatt]), node_out,
                                  paid_to_requests=egress_paid),
        reconcile_site_slot_lines(priced.line_site_slots, priced.line_days, priced.unattributed, node_out),
        reconcile_energy(node_out, grid),
    ]).sort("source", "line_id", "component")
    totals = component_totals(reconciliation, facts, node_out)
    pool_idle = pool_idle_amounts.join(pool_idle.select("pool_id", "absorbed", "unabsorbed", "policy", "reserved_by"),
                                       on="pool_id", how="left")
    return DayOutputs(
        request_costs=facts,
        node_slots=node_out.with_columns(grid.slot_start(pl.col("slot")).alias("slot_start")).sort("node_id", "slot"),
        pool_idle=pool_idle.sort("pool_id"),
        site_hours=site_hours.sort("site_id", "hour"),
        true_up=priced.true_up,
        unattributed=unattributed.sort("source", "line_id", "component"),
        reconciliation=reconciliation,
        totals=totals,
    )


def component_totals(reconciliation: pl.LazyFrame, facts: pl.LazyFrame, node_out: pl.LazyFrame) -> pl.LazyFrame:
    """Per component: what the source lines say went to requests and idle, against what the
    request facts and the idle node-slots actually hold. `requests_difference` and
    `idle_difference` must be zero (to a cent, or 1e-9 relative for energy)."""
    by_line = reconciliation.group_by("component").agg(
        pl.col("unit").first(), pl.col("source_amount").pipe(fsum), pl.col("to_requests").pipe(fsum), pl.col("to_idle").pipe(fsum),
        pl.col("unattributed").pipe(fsum))
    fact_cols = {c: c for c in [*COMPONENTS, "egress_cost", "it_energy_j"]} | {"overhead_j": "overhead_energy_j"}
    in_facts = pl.concat([facts.select(pl.lit(c).alias("component"), pl.col(f).pipe(fsum).alias("in_requests"))
                          for c, f in fact_cols.items()])
    in_idle = pl.concat([node_out.select(pl.lit(c).alias("component"), pl.col(f"idle_{c}").pipe(fsum).alias("in_idle"))
                         for c in SHARED])
    return (by_line.join(in_facts, on="component", how="left").join(in_idle, on="component", how="left")
            .with_columns(pl.col("in_idle").fill_null(0.0))
            .with_columns((pl.col("to_requests") - pl.col("in_requests")).alias("requests_difference"),
                          (pl.col("to_idle") - pl.col("in_idle")).alias("idle_difference"))
            .sort("component"))
