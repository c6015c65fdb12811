"""A day's capacity figures in one call (docs/capacity.md): what the capacity marts are built from,
and what a planner reads without the warehouse (`day_capacity`)."""

from datetime import date

import polars as pl

from transforms.capacity.chunked import CHUNK_ROWS, chunked_inputs
from transforms.capacity.efficiency import profile_efficiency
from transforms.capacity.learn import (capacity_at_objectives, learned_from_buckets, pool_model_capacity,
                                       profile_capacity)
from transforms.capacity.load import as_strings, exact_sum
from transforms.inventory import Inventory

FACT_COLUMNS = ("node_id", "pool_id", "model", "tier", "status", "arrived_at", "completed_at", "ttft_s",
                "output_tokens", "occupied_s")


def capacity_pools(inventory: Inventory) -> pl.LazyFrame:
    """Per pool: `gpu_model`, `gpus` (of its smallest serving node), `gpus_per_replica`,
    `safety_margin`, `redundancy_min_nodes`, `capacity_min_samples` and `idle_w` (mean of its
    serving nodes, W)."""
    nodes = (inventory.nodes_frame().filter(pl.col("role") == "serving").group_by("pool_id")
             .agg(pl.col("gpus").min().cast(pl.Int64).alias("gpus"), pl.col("idle_w").sort().mean().alias("idle_w")))
    pools = pl.LazyFrame({
        "pool_id": [p.id for p in inventory.pools], "gpu_model": [p.gpu_model for p in inventory.pools],
        "gpus_per_replica": [p.gpus_per_replica for p in inventory.pools],
        "safety_margin": [p.safety_margin for p in inventory.pools],
        "redundancy_min_nodes": [p.redundancy_min_nodes for p in inventory.pools],
        "capacity_min_samples": [p.capacity_min_samples for p in inventory.pools],
    }, schema={"pool_id": pl.String, "gpu_model": pl.String, "gpus_per_replica": pl.Int32,
               "safety_margin": pl.Float64, "redundancy_min_nodes": pl.Int64, "capacity_min_samples": pl.Int64})
    return pools.join(nodes, on="pool_id", how="left")


def day_capacity(facts: pl.LazyFrame, profiles: pl.LazyFrame, inventory: Inventory,
                 day: date, chunk_rows: int = CHUNK_ROWS) -> dict[str, pl.LazyFrame]:
    """The capacity figures of `day` from its request facts (columns FACT_COLUMNS) and the
    performance profiles (PERFORMANCE_PROFILES' columns), as lazy frames:

    - `capacity`: per (pool_id, model, tier) served, the capacity of one node at the tier's
      objectives (CAPACITY_SCHEMA: figure, source, samples, the telemetry's and the profile's);
    - `pool_model`: per (pool_id, model), at the strictest objective of its tiers (`tier` binding);
    - `load_hour`: per (pool_id, model, h = UTC hour 0-23): `output_tokens` decoded, `request_s`;
    - `pools`: `capacity_pools(inventory)`;
    - `efficiency`: per (pool_id, model), the observed batch and the profile's J per output token.

    The facts are read about `chunk_rows` at a time, whole nodes (`chunked.chunked_inputs`).
    """
    # A group of nodes at a time (transforms.capacity.chunked): memory bounded by the group, not the day.
    load, stats, pairs, out_tier, out_pm = chunked_inputs(facts, day, chunk_rows)
    # The tier's 95th percentile of output tokens on the pool (its ok answers of the day); a tier
    # without one takes the pool's for the model (all its tiers' ok answers).
    output_p95 = (pairs.join(out_tier, on=["pool_id", "model", "tier"], how="left")
                  .join(out_pm, on=["pool_id", "model"], how="left")
                  .select("pool_id", "model", "tier", p95_output_tokens=pl.coalesce("tier_p95", "pool_p95"))
                  .filter(pl.col("p95_output_tokens").is_not_null()))
    pools = capacity_pools(inventory)
    tiers = pl.LazyFrame({"tier": [t.id for t in inventory.tiers],
                          "ttft_p95_s": [t.ttft_p95_s for t in inventory.tiers],
                          "e2e_p95_s": [t.e2e_p95_s for t in inventory.tiers]})
    objectives = pairs.select("pool_id", "tier").unique().join(tiers, on="tier").join(
        pools.select("pool_id", pl.col("capacity_min_samples").alias("min_samples")), on="pool_id")
    learned = learned_from_buckets(stats, objectives)
    capacity = capacity_at_objectives(learned, profile_capacity(profiles, pools, objectives, output_p95), pairs)
    hourly = as_strings(load.group_by("pool_id", "model", (pl.col("minute") // 60).alias("h"))
                        .agg(exact_sum(pl.col("output_tokens_per_s") * 60).alias("output_tokens"),
                             exact_sum(pl.col("in_flight") * 60).alias("request_s")))
    return {"capacity": capacity, "pool_model": pool_model_capacity(capacity), "load_hour": hourly, "pools": pools,
            "efficiency": profile_efficiency(profiles, pools, load)}
