"""Efficiency gap (DOMAIN.md section 8): measured J per output token of a (pool, model) at the
batch it ran against its profile's at that batch (docs/capacity.md).

The observed batch is the mean requests in flight on one replica over the node-minutes that ran at
least one request of the model (`in_flight / replicas`). The profile's J per output token at that
batch (`power_w / output_tokens_per_s` at each point) is interpolated linearly in the batch between
the two neighbouring points (`interpolated`; `exact` on a point); below the smallest batch or above
the largest, the nearest point's figure is used and said (`below_range`, `above_range`): never
extrapolated.
"""

import polars as pl

from transforms.capacity.load import as_strings, exact_mean
from transforms.capacity.points import matched_points

EFFICIENCY_SCHEMA = pl.Schema({
    "pool_id": pl.String, "model": pl.String, "gpus_per_replica": pl.Int32, "replicas_per_node": pl.Int64,
    "observed_batch": pl.Float64, "profile_j_per_output_token": pl.Float64, "profile_point": pl.String,
    "profile_source": pl.String,
})


def observed_batch(load: pl.LazyFrame) -> pl.LazyFrame:
    """Per (pool_id, model): `in_flight_per_node`, the mean requests in flight on a node over its
    node-minutes that ran the model."""
    return as_strings(load.filter(pl.col("in_flight") > 0).group_by("pool_id", "model")
                      .agg(exact_mean(pl.col("in_flight")).alias("in_flight_per_node")))


def profile_efficiency(profiles: pl.LazyFrame, pools: pl.LazyFrame, load: pl.LazyFrame) -> pl.LazyFrame:
    """Per (pool_id, model) that ran: the observed batch per replica and the profile's J per output
    token there (null with no matching profile), in the columns of EFFICIENCY_SCHEMA."""
    obs = observed_batch(load)
    pts = matched_points(profiles, pools, obs).with_columns(
        (pl.col("in_flight_per_node") / pl.col("replicas")).alias("b"),
        (pl.col("power_w") / pl.col("output_tokens_per_s")).alias("j"))
    keys = ["pool_id", "model"]
    lo = (pts.filter(pl.col("batch") <= pl.col("b")).sort(*keys, "batch").group_by(keys)
          .agg(pl.col("batch").last().alias("b_lo"), pl.col("j").last().alias("j_lo")))
    hi = (pts.filter(pl.col("batch") >= pl.col("b")).sort(*keys, "batch").group_by(keys)
          .agg(pl.col("batch").first().alias("b_hi"), pl.col("j").first().alias("j_hi")))
    one = pts.sort(*keys, "batch").group_by(keys).agg(pl.col("gpus_per_replica", "replicas", "b", "source").first())
    j = one.join(lo, on=keys, how="left").join(hi, on=keys, how="left")
    frac = (pl.col("b") - pl.col("b_lo")) / (pl.col("b_hi") - pl.col("b_lo"))
    between = pl.col("b_lo").is_not_null() & pl.col("b_hi").is_not_null()
    profile_j = (pl.when(between & (pl.col("b_lo") == pl.col("b_hi"))).then(pl.col("j_lo"))
                 .when(between).then(pl.col("j_lo") + (pl.col("j_hi") - pl.col("j_lo")) * frac)
                 .otherwise(pl.coalesce("j_lo", "j_hi")))
    point = (pl.when(between & (pl.col("b_lo") == pl.col("b_hi"))).then(pl.lit("exact"))
             .when(between).then(pl.lit("interpolated"))
             .when(pl.col("b_hi").is_not_null()).then(pl.lit("below_range")).otherwise(pl.lit("above_range")))
    matched = j.select(*keys, "gpus_per_replica", pl.col("replicas").alias("replicas_per_node"),
                       pl.col("b").alias("observed_batch"), profile_j.alias("profile_j_per_output_token"),
                       point.alias("profile_point"), pl.col("source").alias("profile_source"))
    unmatched = obs.join(matched, on=keys, how="anti").select(
        *keys, pl.lit(None, pl.Int32).alias("gpus_per_replica"), pl.lit(None, pl.Int64).alias("replicas_per_node"),
        pl.col("in_flight_per_node").alias("observed_batch"),
        pl.lit(None, pl.Float64).alias("profile_j_per_output_token"),
        pl.lit(None, pl.String).alias("profile_point"), pl.lit(None, pl.String).alias("profile_source"))
    return pl.concat([matched.select(pl.col(n).cast(t) for n, t in EFFICIENCY_SCHEMA.items()),
                      unmatched.select(pl.col(n).cast(t) for n, t in EFFICIENCY_SCHEMA.items())])
