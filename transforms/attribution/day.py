"""One day of attribution, end to end: canonical inputs in, cost facts and reconciliation out.

`share_day` (steps 1-8 and 10 of docs/attribution.md), `finish_day` (step 9) and `day_outputs`
wire the steps together; `pipelines/attribution.py` calls them in that order, streaming the
facts to a file between the last two. Frames that several later steps read (node-slot energy,
prices, costs, occupancy) are collected once at their stage (`grid.materialize`): left lazy,
Polars would plan them again for every reader. Node-slot frames are nodes x slots in size
(2.2 M rows for 1,500 nodes at 60 s), request frames one row per request; the outputs stay
lazy for the caller to collect together.
"""

from dataclasses import dataclass
from datetime import date

import polars as pl

from transforms.attribution.electricity import energy_costs
from transforms.attribution.energy import attach_overhead, node_slot_energy, site_hour_overhead
from transforms.attribution.facts import REQUEST_COSTS_SCHEMA, idle_by_pool, idle_by_policy, request_facts
from transforms.attribution.fx import day_rates
from transforms.attribution.grid import COMPONENTS, SlotGrid, fsum, materialize
from transforms.attribution.infrastructure import (ENERGY, infrastructure_costs, infrastructure_energy,
                                                   reconcile_energy_lines, served_nodes, spread_allocations,
                                                   spread_energy)
from transforms.attribution.occupancy import Weight, gpu_start, share_node_slots
from transforms.attribution.prices import site_slot_prices, tariff_lines
from transforms.attribution.rates import (amortization_allocations, asset_depreciation, cloud_allocations,
                                          egress_by_response_bytes, fixed_site_allocations)
from transforms.attribution.reconcile import (allocations_to_node_slots, reconcile_allocated_lines, reconcile_energy,
                                              reconcile_site_slot_lines)
from transforms.contracts import REQUESTS
from transforms.inventory import Inventory

ENERGY_COMPONENTS = ["it_energy_j", "overhead_j"]
SHARED = [*ENERGY_COMPONENTS, *COMPONENTS]
# Slot flags counted per request (`n_<flag>`): the methods behind its energy.
METHOD_FLAGS = ("estimated", "interpolated", "design_pue")
# Energy (IT + overhead) of the node-slots whose IT energy was estimated or interpolated, shared
# like the energy itself: the marts' energy_<method>_share columns (measured = the rest).
METHOD_ENERGY = ("estimated_energy_j", "interpolated_energy_j")
# Request columns the facts keep (read once, carried along the requests' own rows).
REQUEST_COLUMNS = tuple(c for c in REQUEST_COSTS_SCHEMA if c in REQUESTS.schema)


@dataclass(frozen=True)
class DayInputs:
    """Canonical inputs of one UTC day: its requests and power readings (all sites), the cost
    lines whose periods may touch it (any delivery day, latest version of each line), the
    asset register in force, hourly market prices (`tariff_id, hour_utc, price_per_kwh`) and the
    reference exchange rates (`date, currency, rate` per EUR, the lake's `fx_rates`: one row per
    date and currency; None: no rates, nothing but the reporting currency is converted).
    `next_day_requests`: the requests logged (completed) the day after, when ingested: those
    that started on the GPU before midnight occupy this day's slots too (DOMAIN 3.2)."""

    requests: pl.LazyFrame
    power_readings: pl.LazyFrame
    cost_lines: pl.LazyFrame
    assets: pl.LazyFrame
    market_prices: pl.LazyFrame | None = None
    fx_rates: pl.LazyFrame | None = None
    next_day_requests: pl.LazyFrame | None = None


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


@dataclass(frozen=True)
class SharedDay:
    """Everything of a day up to each request's shares (`per_request`, lazy and one row per
    request: large; a plan over the day's requests, cheap to run again). The rest is node-,
    site- or line-sized and materialized."""

    per_request: pl.LazyFrame
    node_out: pl.LazyFrame
    pool_idle_amounts: pl.LazyFrame
    site_hours: pl.LazyFrame
    true_up: pl.LazyFrame
    unattributed: pl.LazyFrame
    reconciliation: pl.LazyFrame
    day: date


# Nodes whose energy per slot is computed together. A node's energy depends on its own meters'
# readings only, and the day's readings grow with the fleet: held whole, the 30 M-request
# benchmark day's 6.7 M readings made `share_day` peak at 2.1 GiB (7.2 GiB at 100 M).
ENERGY_NODE_GROUP = 128


def node_slot_energy_by_group(readings: pl.LazyFrame, nodes: pl.LazyFrame, meters: pl.LazyFrame, grid: SlotGrid, *,
                              gap_limit_s: float = 300.0, group: int | None = None) -> pl.DataFrame:
    """`node_slot_energy` of every node, computed ENERGY_NODE_GROUP nodes at a time (each group
    reads only its nodes' meters' readings): the same frame, in memory bounded by a group.

    Each group runs in the in-memory engine. The streaming engine's group-by does not always add
    a group's values in the sorted order `_stable_sum` asks for: on the demo day, a group of three
    nodes gave one node-slot a different last bit than the whole day did (the in-memory engine
    gives the whole day's value for every group size; tests/test_attribution_energy.py)."""
    group = group or ENERGY_NODE_GROUP
    ids = nodes.select("node_id").collect(engine="streaming").get_column("node_id").sort()
    parts = []
    for lo in range(0, max(len(ids), 1), group):
        some = ids.slice(lo, group).implode()
        their_meters = meters.filter(pl.col("node_id").is_in(some))
        meter_ids = their_meters.select("meter_id").collect().get_column("meter_id").implode()
        parts.append(node_slot_energy(readings.filter(pl.col("meter_id").is_in(meter_ids)),
                                      nodes.filter(pl.col("node_id").is_in(some)), their_meters, grid,
                                      gap_limit_s=gap_limit_s).collect(engine="in-memory"))
    return pl.concat(parts).sort("node_id", "slot")


def share_day(inputs: DayInputs, inventory: Inventory, grid: SlotGrid, *, weight: Weight = "time",
              gap_limit_s: float = 300.0) -> SharedDay:
    """Steps 1-8 and 10 of docs/attribution.md: node-slot costs, and each request's shares of
    them (lazy: the caller collects it, or streams it to a file for days larger than memory)."""
    nodes, currency = inventory.nodes_frame(), inventory.currency
    cost_lines, pairs, rates = materialize(inputs.cost_lines, served_nodes(inventory),
                                           day_rates(inputs.fx_rates, grid.day, currency))
    # 1, 4. Energy per node-slot and its share of facility overhead; infrastructure nodes' energy
    # spread over the node-slots they serve.
    own_energy, site_hours = _energy_and_overhead(inputs.power_readings, inventory, grid, gap_limit_s)
    (energy,) = materialize(spread_energy(own_energy.with_columns(_method_energy()), pairs, METHOD_ENERGY))

    # 5. Energy price, invoice true-up, demand charges.
    prices = site_slot_prices(inventory, inputs.market_prices, grid, rates)
    invoices = cost_lines.filter(pl.col("source") == "electricity_invoice")
    priced = energy_costs(energy, nodes, prices, invoices, inventory, grid, rates)
    priced = type(priced)(*materialize(*(getattr(priced, f) for f in priced.__dataclass_fields__)))

    # 6-8. Amortization, cloud bills, fixed site costs: even spreads over node-slots.
    am = materialize(*amortization_allocations(asset_depreciation(inputs.assets, grid), grid, currency, rates))
    cl_alloc, cl_unatt, cl_days, egress_lines = materialize(*cloud_allocations(cost_lines, nodes, grid, currency,
                                                                               rates))
    fx = materialize(*fixed_site_allocations(cost_lines, nodes, grid, currency, rates))
    allocations = spread_allocations(pl.concat([am[0], cl_alloc, fx[0]]), pairs)
    (costs,) = materialize(_node_slot_costs(energy, priced.node_slot_costs, allocations, nodes))
    shared_columns = [*SHARED, *METHOD_ENERGY]
    if has_infrastructure := pairs.select(pl.len()).collect().item() > 0:  # else 0, and nothing more to share
        (costs,) = materialize(infrastructure_costs(costs, priced.node_slot_costs,
                                                    pl.concat([am[0], cl_alloc, fx[0]]), pairs))
        shared_columns.append("infrastructure_cost")

    # 2, 3. Occupancy: requests share each slot by weight; unoccupied slots are idle.
    costs = costs.with_columns((pl.col("energy_method") == "estimated").alias("estimated"),
                               (pl.col("energy_method") == "interpolated").alias("interpolated"),
                               (pl.col("pue_method") == "design_pue").alias("design_pue"))
    per_request, node_out = share_node_slots(occupying_requests(inputs, grid), costs, shared_columns, grid,
                                             weight, keep=REQUEST_COLUMNS, flags=METHOD_FLAGS)
    if not has_infrastructure:
        per_request = per_request.with_columns(pl.lit(0.0).alias("infrastructure_cost"))
    (node_out,) = materialize(node_out.drop(METHOD_FLAGS)
                              .with_columns(grid.slot_start(pl.col("slot")).alias("slot_start")))
    # 7. Egress: every request takes response_bytes x amount / line_bytes of its lines in its own row.
    add_egress_cost, eg_unatt = egress_by_response_bytes(egress_lines, inputs.requests, grid)
    per_request = add_egress_cost(per_request)

    # 10. Reconciliation per source line (the totals against the facts come in `finish_day`).
    reconciliation = pl.concat([
        reconcile_allocated_lines(allocations, pl.concat([am[2], cl_days, fx[2]]),
                                  pl.concat([am[1], cl_unatt, fx[1], eg_unatt]), node_out,
                                  paid_to_requests=_egress_paid(egress_lines, eg_unatt)),
        reconcile_site_slot_lines(priced.line_site_slots, priced.line_days, priced.unattributed, node_out, currency,
                                  tariff_lines(inventory, rates, grid)),
        # A served node's own line: its energy without the infrastructure's part, and that part's idle
        # share (its unoccupied seconds) out of the node's idle; the infrastructure's lines below hold it.
        reconcile_energy(node_out.with_columns(
            *(pl.col(c) - pl.col(f"infra_{c}") for c in ENERGY),
            *(pl.col(f"idle_{c}") - pl.col(f"infra_{c}") * (1 - pl.col("occupied_share")) for c in ENERGY)), grid),
        reconcile_energy_lines(infrastructure_energy(own_energy, pairs), pairs, node_out, grid),
    ]).sort("source", "line_id", "component")
    unattributed = pl.concat([am[1], cl_unatt, fx[1], eg_unatt, priced.unattributed])
    pool_idle_amounts, reconciliation, unattributed = materialize(
        idle_by_pool(node_out, nodes), reconciliation, unattributed.sort("source", "line_id", "component"))
    return SharedDay(per_request, node_out, pool_idle_amounts, site_hours,
                     priced.true_up, unattributed, reconciliation, grid.day)


def occupying_requests(inputs: DayInputs, grid: SlotGrid) -> pl.LazyFrame:
    """The requests that occupy the day's slots: the day's own (completed in it), and those of
    the next day's log that started on the GPU before the day's end (in flight at midnight;
    each is charged here for its seconds before midnight and there for the rest). A request
    logged on a later day still, longer than a day, is not looked for."""
    if inputs.next_day_requests is None:
        return inputs.requests
    in_flight = inputs.next_day_requests.filter(gpu_start() < pl.lit(grid.end, pl.Datetime("us", "UTC")))
    return pl.concat([inputs.requests, in_flight])


def _energy_and_overhead(power_readings: pl.LazyFrame, inventory: Inventory, grid: SlotGrid,
                         gap_limit_s: float) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Steps 1 and 4: (node-slot energy with its share of facility overhead, site hours), both
    collected."""
    nodes, meters, sites = inventory.nodes_frame(), inventory.meters_frame(), inventory.sites_frame()
    energy = node_slot_energy_by_group(power_readings, nodes, meters, grid, gap_limit_s=gap_limit_s).lazy()
    facility_meters = meters.filter(pl.col("scope") == "facility").select("meter_id")
    (facility_readings,) = materialize(power_readings.join(facility_meters, on="meter_id", how="semi"))
    (site_hours,) = materialize(site_hour_overhead(energy, nodes, facility_readings, meters, sites, grid))
    (energy,) = materialize(attach_overhead(energy, nodes, site_hours, grid))
    return energy, site_hours


def _node_slot_costs(energy: pl.LazyFrame, electricity: pl.LazyFrame, allocations: pl.LazyFrame,
                     nodes: pl.LazyFrame) -> pl.LazyFrame:
    """Every node-slot's energy and cost components: step 5's electricity costs, and steps 6-8's
    allocations spread evenly over their slots (fixed site costs add to the invoice's fixed
    lines)."""
    spread = allocations_to_node_slots(allocations, energy.select("node_id", "slot"),
                                       ["amortization_cost", "cloud_cost", "fixed_cost"])
    return (
        energy.join(electricity, on=["node_id", "slot"], how="left")
        .join(spread.rename({"fixed_cost": "_fixed_spread"}), on=["node_id", "slot"], how="left")
        .with_columns(pl.col(*COMPONENTS, "_fixed_spread").fill_null(0.0))
        .with_columns((pl.col("fixed_cost") + pl.col("_fixed_spread")).alias("fixed_cost"))
        .drop("_fixed_spread")
        .join(nodes.select("node_id", "pool_id", "site_id"), on="node_id")
    )


def _method_energy() -> list[pl.Expr]:
    """A node-slot's energy (IT + overhead) under each of METHOD_ENERGY's methods (0 under another)."""
    return [pl.when(pl.col("energy_method") == c.split("_")[0]).then(pl.col("it_energy_j") + pl.col("overhead_j"))
            .otherwise(0.0).alias(c) for c in METHOD_ENERGY]


def _egress_paid(egress_lines: pl.LazyFrame, unattributed: pl.LazyFrame) -> pl.LazyFrame:
    """What each egress line paid to requests: its day amount less its unattributed part."""
    return (egress_lines.select("source", "line_id", pl.lit("egress_cost").alias("component"), "day_amount")
            .join(unattributed.group_by("source", "line_id").agg(pl.col("amount").pipe(fsum).alias("_u")),
                  on=["source", "line_id"], how="left")
            .select("source", "line_id", "component",
                    (pl.col("day_amount") - pl.col("_u").fill_null(0.0)).alias("amount")))


def finish_day(shared: SharedDay, per_request: pl.LazyFrame, inventory: Inventory, *,
               weight: Weight = "time") -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Step 9: direct cost, idle share by tier policy, fully loaded cost. Returns the request
    facts (in the order of `per_request`) and the pools' idle summary. `per_request` (usually
    `shared.per_request`, a plan over the requests) is read twice: the pool-tier sums here,
    then the facts by whoever collects them."""
    factors, pool_idle = idle_by_policy(per_request, shared.pool_idle_amounts, inventory)
    return request_facts(per_request, factors, currency=inventory.currency, weight=weight, day=shared.day), pool_idle


def day_outputs(shared: SharedDay, facts: pl.LazyFrame, pool_idle: pl.LazyFrame,
                facts_for_totals: pl.LazyFrame | None = None) -> DayOutputs:
    """The day's outputs; the totals are checked against `facts_for_totals` (default `facts`;
    the file the facts were written to, when they were streamed)."""
    return DayOutputs(
        request_costs=facts,
        node_slots=shared.node_out,
        pool_idle=pool_idle,
        site_hours=shared.site_hours.sort("site_id", "hour"),
        true_up=shared.true_up,
        unattributed=shared.unattributed,
        reconciliation=shared.reconciliation,
        totals=component_totals(shared.reconciliation, facts if facts_for_totals is None else facts_for_totals,
                                shared.node_out),
    )


def component_totals(reconciliation: pl.LazyFrame, facts: pl.LazyFrame, node_out: pl.LazyFrame) -> pl.LazyFrame:
    """Per component: what the source lines say went to requests and idle, against what the
    request facts and the idle node-slots actually hold. `requests_difference` and
    `idle_difference` must be zero (to a cent, or 1e-9 relative for energy). Lines left in their
    own currency (no reference rate: `fx_rate` null, wholly unattributed) are not summed here:
    the totals are in the reporting currency (and J)."""
    in_reporting = (pl.col("unit") == "J") | pl.col("fx_rate").is_not_null()
    by_line = reconciliation.filter(in_reporting).group_by("component").agg(
        pl.col("unit").first(), pl.col("source_amount").pipe(fsum), pl.col("to_requests").pipe(fsum),
        pl.col("to_idle").pipe(fsum), pl.col("unattributed").pipe(fsum))
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
