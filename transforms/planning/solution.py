"""A solved program read back as frames: routing, nodes, costs, and what binds."""

from dataclasses import dataclass

import polars as pl

from transforms.planning.costs import price
from transforms.planning.inputs import PlanInputs
from transforms.planning.highs import Solved

# A constraint binds when its slack is within this (node-equivalents, kW, or shares).
BIND_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Plan:
    """A plan: `routing` (hour, tier, model, bucket, pool, share, output_tokens_per_s, busy_nodes),
    `nodes` (pool, hour, nodes_on), `installed` (fleet horizon: pool, nodes; else empty), `costs`
    (per pool-hour, `costs.price`), `binds` (kind, key, hour, slack), `exclusions` (tier, model,
    bucket, pool, excluded), the objective (currency), HiGHS's status, MIP gap and solve time."""

    horizon: str
    routing: pl.DataFrame
    nodes: pl.DataFrame
    installed: pl.DataFrame
    costs: pl.DataFrame
    binds: pl.DataFrame
    exclusions: pl.DataFrame
    objective: float
    status: str
    mip_gap: float
    solve_time_s: float

    def cost_by_component(self) -> dict[str, float]:
        return {c: float(self.costs[c].sum()) for c in ("energy_cost", "rent_cost", "egress_cost",
                                                        "amortization_cost", "total_cost")}


def read_plan(inputs: PlanInputs, solved: Solved) -> Plan:
    program, values = solved.program, solved.values
    routing = (program.x.with_columns(share=pl.Series(values[program.x["col"].to_numpy()]).clip(0.0, 1.0))
               .filter(pl.col("share") > BIND_TOLERANCE)
               .select("hour", "tier", "model", "bucket", "pool", "share",
                       output_tokens_per_s=pl.col("output_tokens_per_s") * pl.col("share"),
                       busy_nodes=pl.col("load") * pl.col("share")))
    nodes = program.n.select("pool", "hour", nodes_on=pl.Series(values[program.n["col"].to_numpy()]).round()
                             .cast(pl.Int64))
    # Nodes owned or rented over the window: the most kept on in any hour (the program's N, which
    # is free to exceed it when the pool has no amortization, e.g. rented).
    installed = (nodes.group_by("pool").agg(nodes=pl.col("nodes_on").max())
                 .join(program.fleet.select("pool"), on="pool").sort("pool"))
    costs = price(inputs, nodes.lazy(), routing.select("hour", "tier", "model", "bucket", "pool", "share").lazy(),
                  installed.lazy()).collect()
    binds = _binds(inputs, solved, costs)
    exclusions = (program.pairs.filter(pl.col("excluded").is_not_null())
                  .select("tier", "model", "bucket", "pool", "excluded").sort("tier", "model", "bucket", "pool"))
    return Plan(inputs.horizon, routing.sort("hour", "tier", "model", "bucket", "pool"), nodes.sort("pool", "hour"),
                installed, costs, binds, exclusions, solved.objective, solved.status, solved.mip_gap,
                solved.solve_time_s)


def _binds(inputs: PlanInputs, solved: Solved, costs: pl.DataFrame) -> pl.DataFrame:
    """Constraints at their limit in the solution: `capacity` (nodes on = busy node-equivalents),
    `availability` (nodes on = nodes available, or installed = the option's most), `redundancy`
    (nodes on = the minimum while the load needs fewer), `power_cap` (the site's facility kW at its cap)."""
    pools = {p.name: p for p in inputs.pools}
    available = pl.DataFrame({"pool": list(pools), "nodes_available": [p.nodes_available for p in pools.values()],
                              "redundancy_min": [p.redundancy_min for p in pools.values()]},
                             schema={"pool": pl.String, "nodes_available": pl.Int64, "redundancy_min": pl.Int64})
    c = costs.join(available, on="pool")
    capacity = c.filter((pl.col("nodes_on") > 0) & (pl.col("nodes_on") - pl.col("busy_nodes") <= BIND_TOLERANCE))
    capacity = capacity.select(kind=pl.lit("capacity"), key="pool", hour="hour",
                               slack=pl.col("nodes_on") - pl.col("busy_nodes"))
    at_most = (c.filter(pl.col("nodes_on") == pl.col("nodes_available"))
               .select(kind=pl.lit("availability"), key="pool", hour="hour", slack=pl.lit(0.0)))
    minimum = (c.filter((pl.col("redundancy_min") > 0) & (pl.col("nodes_on") == pl.col("redundancy_min"))
                        & (pl.col("busy_nodes").ceil() < pl.col("redundancy_min")))
               .select(kind=pl.lit("redundancy"), key="pool", hour="hour",
                       slack=(pl.col("nodes_on") - pl.col("busy_nodes")).cast(pl.Float64)))
    caps = pl.DataFrame({"site": [s.name for s in inputs.sites if s.power_cap_kw is not None],
                         "cap": [float(s.power_cap_kw) for s in inputs.sites if s.power_cap_kw is not None]},
                        schema={"site": pl.String, "cap": pl.Float64})
    power = (c.group_by("site", "hour").agg(kw=pl.col("facility_kwh").sum()).join(caps, on="site")
             .with_columns(slack=pl.col("cap") - pl.col("kw"))
             .filter(pl.col("slack") <= BIND_TOLERANCE * pl.max_horizontal(pl.lit(1.0), pl.col("cap")))
             .select(kind=pl.lit("power_cap"), key="site", hour="hour", slack="slack"))
    return pl.concat([capacity, at_most, minimum, power]).sort("kind", "key", "hour")
