"""A plan's (or today's) cost per tier, and the tier's objective risk (docs/planning.md, "plan_summary").

Each pool's cost over the window, component by component, is split among the tiers by their share
of the pool's busy node-equivalent-hours there (the capacity they used, idle and redundancy nodes
included pro rata: an accountant's full cost, as the ledger's pro-rata idle policy); a pool no tier
used carries its cost as tier `(unused)`. Objective risk: the share of the tier's output tokens
served on pool-hours at capacity (busy node-equivalents = nodes on): no headroom there, so a surge
within the hour misses the objective.
"""

import polars as pl

from transforms.planning.costs import COMPONENTS, SHARE_TOLERANCE
from transforms.planning.inputs import PlanInputs
from transforms.planning.pairs import demand, routing_pairs

UNUSED = "(unused)"


def cost_by_tier(inputs: PlanInputs, costs: pl.DataFrame, routing: pl.LazyFrame) -> pl.DataFrame:
    """tier, component (COMPONENTS and total_cost), cost, objective_risk; `costs` per pool-hour as
    `costs.price` returns them, `routing` (hour, tier, model, bucket, pool, share) priced there."""
    pairs = routing_pairs(inputs).select("tier", "model", "bucket", "pool", "capacity_at_objective", "capacity_max")
    loads = (routing.join(demand(inputs), on=["hour", "tier", "model", "bucket"])
             .join(pairs, on=["tier", "model", "bucket", "pool"], how="left")
             .with_columns(tokens=pl.col("output_tokens_per_s") * pl.col("share"))
             .with_columns(load=pl.col("tokens") / pl.coalesce("capacity_at_objective", "capacity_max"))
             .join(costs.lazy().select("pool", "hour", "nodes_on", "busy_nodes"), on=["pool", "hour"], how="left")
             .with_columns(full=(pl.col("nodes_on") > 0)
                           & (pl.col("busy_nodes") >= pl.col("nodes_on") - SHARE_TOLERANCE)))
    risk = loads.group_by("tier").agg(
        objective_risk=pl.when(pl.col("tokens").sum() > 0)
        .then(pl.col("tokens").filter(pl.col("full")).sum() / pl.col("tokens").sum()).otherwise(0.0))
    used = (loads.group_by("pool", "tier").agg(busy=pl.col("load").fill_null(0.0).sum())
            .with_columns(weight=pl.col("busy") / pl.col("busy").sum().over("pool"))
            .filter(pl.col("weight").is_finite()))
    pools = costs.lazy().group_by("pool").agg(pl.col(*COMPONENTS).sum())
    split = (pools.join(used, on="pool", how="left")
             .with_columns(tier=pl.col("tier").fill_null(UNUSED), weight=pl.col("weight").fill_null(1.0))
             .group_by("tier").agg(*[(pl.col(c) * pl.col("weight")).sum() for c in COMPONENTS])
             .with_columns(total_cost=pl.sum_horizontal(*COMPONENTS)))
    return (split.unpivot(index="tier", variable_name="component", value_name="cost")
            .join(risk, on="tier", how="left").sort("tier", "component").collect())
