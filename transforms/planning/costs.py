"""The cost model, on any nodes-on and routing: the plan's, or the fleet's actual (calibration).

One function prices both, with the same coefficients the program's objective uses
(`pairs.unit_costs`, `pairs.node_costs`), so a plan, a what-if and "today" are priced alike.
"""

import polars as pl

from transforms.planning.inputs import PlanInputError, PlanInputs
from transforms.planning.pairs import demand, node_costs, pool_frame, routing_pairs, unit_costs

# Actual or planned nodes kept on: one row per (pool, hour); a pool-hour absent has 0 nodes on.
NODES_SCHEMA = pl.Schema({"pool": pl.String, "hour": pl.Datetime("us", "UTC"), "nodes_on": pl.Int64})
# Actual or planned routing: the share of a demand row served by a pool (shares of a row sum to 1).
ROUTING_SCHEMA = pl.Schema({"hour": pl.Datetime("us", "UTC"), "tier": pl.String, "model": pl.String,
                            "bucket": pl.String, "pool": pl.String, "share": pl.Float64})
# Fleet horizon: nodes owned or rented over the window, per pool.
INSTALLED_SCHEMA = pl.Schema({"pool": pl.String, "nodes": pl.Int64})

COMPONENTS = ("energy_cost", "rent_cost", "egress_cost", "amortization_cost")
SHARE_TOLERANCE = 1e-6


def price(inputs: PlanInputs, nodes: pl.LazyFrame, routing: pl.LazyFrame,
          installed: pl.LazyFrame | None = None) -> pl.LazyFrame:
    """Cost per (pool, hour) of `nodes` kept on serving `routing` of the inputs' demand.

    Columns: pool, site, hour, nodes_on, busy_nodes (node-equivalents: routed tokens/s / capacity
    at the tier's objective, or at the pool's best point when the pair is excluded, as actual
    routing may be), facility_kwh (IT kWh x PUE over the hour), energy_cost, rent_cost, egress_cost,
    amortization_cost (fleet horizon: installed nodes x amortization per node-hour; 0 in the day
    horizon, where it is sunk), total_cost, over_capacity (busy_nodes > nodes_on), off_objective
    (some routing to an excluded pair)."""
    pools = pool_frame(inputs)
    pairs = routing_pairs(inputs).select("tier", "model", "bucket", "pool", "capacity_at_objective", "capacity_max",
                                         "excluded")
    routed = (routing.join(demand(inputs), on=["hour", "tier", "model", "bucket"], how="inner")
              .join(pairs, on=["tier", "model", "bucket", "pool"], how="left")
              .join(pools, on="pool").join(inputs.prices, on=["site", "hour"], how="left")
              .with_columns(output_tokens_per_s=pl.col("output_tokens_per_s") * pl.col("share"))
              .with_columns(load=pl.col("output_tokens_per_s")
                            / pl.coalesce("capacity_at_objective", "capacity_max")))
    unit = unit_costs(pl.col("load"))
    by_pool_hour = (routed.with_columns(load_kw=unit["load_kw"], load_energy_cost=unit["load_energy_cost"],
                                        egress_cost=unit["egress_cost"])
                    .group_by("pool", "hour").agg(busy_nodes=pl.col("load").sum(), load_kw=pl.col("load_kw").sum(),
                                                  load_energy_cost=pl.col("load_energy_cost").sum(),
                                                  egress_cost=pl.col("egress_cost").sum(),
                                                  off_objective=pl.col("excluded").is_not_null().any()))
    hours = demand(inputs).select("hour").unique()
    node = node_costs()
    amortized = (installed if installed is not None and inputs.horizon == "fleet"
                 else pl.LazyFrame(schema=INSTALLED_SCHEMA))
    grid = (hours.join(pools, how="cross").join(inputs.prices, on=["site", "hour"], how="left")
            .join(nodes, on=["pool", "hour"], how="left").join(by_pool_hour, on=["pool", "hour"], how="left")
            .join(amortized, on="pool", how="left")
            .with_columns(pl.col("nodes_on", "nodes").fill_null(0),
                          pl.col("busy_nodes", "load_kw", "load_energy_cost", "egress_cost").fill_null(0.0),
                          pl.col("off_objective").fill_null(False)))
    return (grid.with_columns(
        facility_kwh=pl.col("nodes_on") * node["idle_kw"] + pl.col("load_kw"),
        energy_cost=pl.col("nodes_on") * node["idle_energy_cost"] + pl.col("load_energy_cost"),
        rent_cost=pl.col("nodes_on") * node["rent_cost"],
        amortization_cost=pl.col("nodes") * pl.col("amortization_per_node_hour"))
        .with_columns(total_cost=pl.sum_horizontal(*COMPONENTS),
                      over_capacity=pl.col("busy_nodes") > pl.col("nodes_on") + SHARE_TOLERANCE)
        .select("pool", "site", "hour", "nodes_on", "busy_nodes", "facility_kwh", *COMPONENTS, "total_cost",
                "over_capacity", "off_objective")
        .sort("pool", "hour"))


def calibrate(inputs: PlanInputs, actual_nodes: pl.LazyFrame, actual_routing: pl.LazyFrame) -> pl.LazyFrame:
    """The cost model on the ACTUAL nodes on (integers, or Float64 node-slots / slots of the hour) and
    routing, per (pool, hour) as `price`, after
    checking the routing serves the demand: every positive demand row's shares sum to 1 (within
    SHARE_TOLERANCE), else a `PlanInputError` naming the row. The caller compares it with the
    ledger's cost of the same pools and hours (within 5%, docs/planning.md, "Calibration")."""
    for frame, schema, name in ((actual_nodes, NODES_SCHEMA, "actual nodes"),
                                (actual_routing, ROUTING_SCHEMA, "actual routing")):
        got = dict(frame.collect_schema())
        # The ledger's nodes on are node-slots / slots of the hour: a node on for half the hour is 0.5.
        if got != dict(schema) and got != {**dict(schema), "nodes_on": pl.Float64}:
            raise PlanInputError(f"{name} frame has columns {got}; expected {dict(schema)}")
    window = demand(inputs).select("hour").unique().join(pool_frame(inputs).select("pool"), how="cross")
    stray = (actual_nodes.join(window, on=["pool", "hour"], how="anti").sort("pool", "hour").head(1).collect())
    if stray.height:
        raise PlanInputError(f"actual nodes, row {stray.row(0, named=True)}: its pool is not among the pools or its "
                             "hour not among the demand's hours; declare the pool or drop the row")
    unmatched = (actual_routing.join(demand(inputs), on=["hour", "tier", "model", "bucket"], how="anti")
                 .sort("hour", "tier", "model", "bucket", "pool").head(1).collect())
    if unmatched.height:
        raise PlanInputError(f"actual routing, row {unmatched.row(0, named=True)}: no demand row has its hour, tier, "
                             "model and bucket; add the demand or drop the row")
    totals = (demand(inputs).filter(pl.col("output_tokens_per_s") > 0)
              .join(actual_routing.group_by("hour", "tier", "model", "bucket").agg(share=pl.col("share").sum()),
                    on=["hour", "tier", "model", "bucket"], how="left")
              .filter(~((pl.col("share").fill_null(0.0) - 1.0).abs() <= SHARE_TOLERANCE))
              .sort("hour", "tier", "model", "bucket").head(1).collect())
    if totals.height:
        raise PlanInputError(f"actual routing, demand row {totals.row(0, named=True)}: the shares routed must sum "
                             "to 1; add the missing pools' shares")
    return price(inputs, actual_nodes, actual_routing)
