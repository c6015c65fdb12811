"""Which pool may serve which tier, at what capacity, and what a unit of routing costs there.

The capacity a pool offers a tier is the throughput of its best operating point that still meets
the tier's objectives once the site's round trip to the tier's users is added: a point qualifies
when `ttft_p95_s + rtt <= tier.ttft_p95_s` and `e2e_p95_s + rtt <= tier.e2e_p95_s`; the pool's
capacity for the tier is the largest `output_tokens_per_s` among the points that qualify. A pair
with none is excluded, with its reason: `round_trip` (the round trip alone is at or over the
tier's TTFT objective), `objective` (no measured point is fast enough), `no_profile` (the pool has
no capacity row for the model and bucket), `capacity_unknown` (its only points have no latencies:
the capacity at any objective is unknown, docs/capacity.md; their throughput only prices actual
routing there) or `what_if` (a what-if routes the tier elsewhere).
"""

import polars as pl

from transforms.planning.inputs import PlanInputs

EXCLUSIONS = ("round_trip", "objective", "no_profile", "capacity_unknown", "what_if")
SECONDS_PER_HOUR = 3600.0


def pool_frame(inputs: PlanInputs) -> pl.LazyFrame:
    """One row per pool with its numbers (the Pool dataclass as a frame)."""
    pools = inputs.pools
    return pl.LazyFrame({
        "pool": [p.name for p in pools], "site": [p.site for p in pools], "gpu_model": [p.gpu_model for p in pools],
        "nodes_available": [p.nodes_available for p in pools], "redundancy_min": [p.redundancy_min for p in pools],
        "idle_w": [float(p.idle_w) for p in pools], "full_w": [float(p.full_w) for p in pools],
        "pue": [float(p.pue) for p in pools], "rent_per_node_hour": [float(p.rent_per_node_hour) for p in pools],
        "amortization_per_node_hour": [float(p.amortization_per_node_hour) for p in pools],
        "egress_per_gb": [float(p.egress_per_gb) for p in pools],
        "response_bytes_per_token": [float(p.response_bytes_per_token) for p in pools],
    }, schema={"pool": pl.String, "site": pl.String, "gpu_model": pl.String, "nodes_available": pl.Int64,
               "redundancy_min": pl.Int64, "idle_w": pl.Float64, "full_w": pl.Float64, "pue": pl.Float64,
               "rent_per_node_hour": pl.Float64, "amortization_per_node_hour": pl.Float64,
               "egress_per_gb": pl.Float64, "response_bytes_per_token": pl.Float64})


def tier_frame(inputs: PlanInputs) -> pl.LazyFrame:
    tiers = inputs.tiers
    return pl.LazyFrame({"tier": [t.name for t in tiers], "tier_ttft_p95_s": [float(t.ttft_p95_s) for t in tiers],
                         "tier_e2e_p95_s": [float(t.e2e_p95_s) for t in tiers], "users": [t.users for t in tiers]},
                        schema={"tier": pl.String, "tier_ttft_p95_s": pl.Float64, "tier_e2e_p95_s": pl.Float64,
                                "users": pl.String})


def demand(inputs: PlanInputs) -> pl.LazyFrame:
    """The demand the plan serves: the frame's output tokens per second x the growth factor."""
    return inputs.demand.with_columns(pl.col("output_tokens_per_s") * inputs.growth)


def routing_pairs(inputs: PlanInputs) -> pl.LazyFrame:
    """One row per (tier, model, bucket) of the demand and pool: `site`, `rtt_s`,
    `capacity_at_objective` (output tokens/s per node; null when excluded), `capacity_max` (the
    pool's best point regardless of objectives; null without profile) and `excluded` (null or
    one of EXCLUSIONS)."""
    combos = inputs.demand.select("tier", "model", "bucket").unique()
    pools = pool_frame(inputs).select("pool", "site")
    base = (combos.join(tier_frame(inputs), on="tier").join(pools, how="cross")
            .join(inputs.round_trips, on=["site", "users"], how="left")
            .with_columns(rtt_s=pl.col("rtt_ms") / 1000.0))
    points = base.join(inputs.capacity, on=["pool", "model", "bucket"], how="inner")
    meets = (pl.col("ttft_p95_s") + pl.col("rtt_s") <= pl.col("tier_ttft_p95_s")) & (
        pl.col("e2e_p95_s") + pl.col("rtt_s") <= pl.col("tier_e2e_p95_s"))
    best = points.group_by("tier", "model", "bucket", "pool").agg(
        capacity_at_objective=pl.col("output_tokens_per_s").filter(meets).max(),
        capacity_max=pl.col("output_tokens_per_s").max(), known=pl.col("ttft_p95_s").is_not_null().any())
    allowed = _what_if_allowed(inputs)
    excluded = (pl.when(pl.col("rtt_s") >= pl.col("tier_ttft_p95_s")).then(pl.lit("round_trip"))
                .when(pl.col("capacity_max").is_null()).then(pl.lit("no_profile"))
                .when(~pl.col("known")).then(pl.lit("capacity_unknown"))
                .when(pl.col("capacity_at_objective").is_null()).then(pl.lit("objective"))
                .when(~pl.col("allowed")).then(pl.lit("what_if")))
    return (base.join(best, on=["tier", "model", "bucket", "pool"], how="left")
            .join(allowed, on=["tier", "pool"], how="left").with_columns(pl.col("allowed").fill_null(True))
            .with_columns(excluded=excluded)
            .with_columns(capacity_at_objective=pl.when(pl.col("excluded").is_null())
                          .then(pl.col("capacity_at_objective")))
            .select("tier", "model", "bucket", "pool", "site", "rtt_s", "capacity_at_objective", "capacity_max",
                    "excluded"))


def _what_if_allowed(inputs: PlanInputs) -> pl.LazyFrame:
    """(tier, pool, allowed) for the tiers a what-if restricts: True for its pools, False for the rest."""
    rows = [(tier, p.name, p.name in allowed) for tier, allowed in inputs.routing_allowed for p in inputs.pools]
    return pl.LazyFrame(rows, schema={"tier": pl.String, "pool": pl.String, "allowed": pl.Boolean}, orient="row")


def unit_costs(load: pl.Expr) -> dict[str, pl.Expr]:
    """Per-hour coefficients of routing, given `load` (node-equivalents busy): the incremental
    facility power (kW) and its energy cost (1 h at the hour's price), on a frame carrying the
    pool's columns, `price_per_kwh` and `output_tokens_per_s`. Egress: the hour's output tokens x
    response bytes per token (GB = 1e9 bytes) x the pool's egress rate."""
    incremental_kw = load * (pl.col("full_w") - pl.col("idle_w")) / 1000.0 * pl.col("pue")
    egress = (pl.col("output_tokens_per_s") * SECONDS_PER_HOUR * pl.col("response_bytes_per_token") / 1e9
              * pl.col("egress_per_gb"))
    return {"load_kw": incremental_kw, "load_energy_cost": incremental_kw * pl.col("price_per_kwh"),
            "egress_cost": egress}


def node_costs() -> dict[str, pl.Expr]:
    """Per node kept on for one hour: its idle facility power (kW), idle energy cost and rent."""
    idle_kw = pl.col("idle_w") / 1000.0 * pl.col("pue")
    return {"idle_kw": idle_kw, "idle_energy_cost": idle_kw * pl.col("price_per_kwh"),
            "rent_cost": pl.col("rent_per_node_hour")}
