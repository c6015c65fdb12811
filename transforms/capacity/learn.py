"""Capacity of a node for a model at a tier's objectives (DOMAIN.md section 8; docs/capacity.md).

From the telemetry (`learned_capacity`): node-minutes are bucketed by requests in flight (powers
of two: bucket b holds in_flight in [b, 2b); bucket 0 holds less than one request on average).
A bucket's samples are its node-minutes with at least one latency sample (an ok request arriving
in the minute); its p95 TTFT and E2E are over those requests. The capacity is the highest bucket
with at least `min_samples` samples whose p95 TTFT and E2E meet the tier's objectives; its load is
the mean output tokens/s and requests in flight of those samples. When a higher bucket with
enough samples misses the objective, the knee was seen (`telemetry`); when none does, the fleet
was never loaded to its limit and the figure is a lower bound (`telemetry_lower_bound`).

From a profile (`profile_capacity`): the largest batch whose profile point meets the objectives,
TTFT by the point's `ttft_p95_s` and the p95 E2E estimated as TTFT + the tier's 95th percentile of
output tokens on the pool that day x a stream's mean time per token at that batch
(`batch / output_tokens_per_s`, the profile's own throughput shared by the batch's streams). A
point without TTFT (ML.ENERGY measures none) is taken at the tier's TTFT objective, the most the
objective allows: it cannot show it is faster. (Until 2026-12-07 the E2E was the ITL p95 x the
MEAN output tokens, and a missing TTFT counted as 0: a median answer's latency, not a p95, which
put the demo's H200 70B at batch 64 where its p95 answer takes 33 s against 20 s.) A node runs
`gpus // gpus_per_replica` replicas, its capacity is that many times the replica's.

`capacity_at_objectives` chooses: the telemetry's knee; else the larger of the profile's figure
and the telemetry's lower bound; `unknown` (null load) when neither exists.
"""

import polars as pl

from transforms.capacity.load import as_strings, exact_mean
from transforms.capacity.points import matched_points

MIN_SAMPLES = 30  # node-minutes behind a load bucket (half an hour of one node's minutes)

CAPACITY_SCHEMA = pl.Schema({
    "pool_id": pl.String, "model": pl.String, "tier": pl.String,
    "capacity_output_tokens_per_s": pl.Float64, "capacity_in_flight": pl.Float64, "capacity_source": pl.String,
    "samples": pl.Int64, "telemetry_output_tokens_per_s": pl.Float64, "telemetry_source": pl.String,
    "profile_output_tokens_per_s": pl.Float64, "profile_batch": pl.Int32, "profile_source": pl.String,
})


def load_bucket(in_flight: pl.Expr) -> pl.Expr:
    """The power-of-two bucket of a requests-in-flight figure (0 below one request)."""
    return (pl.when(in_flight < 1).then(pl.lit(0, pl.Int64))
            .otherwise(pl.lit(2.0).pow(in_flight.clip(lower_bound=1).log(2).floor()).cast(pl.Int64)))


def _bucket_stats(load: pl.LazyFrame, samples: pl.LazyFrame) -> pl.LazyFrame:
    keys = ["pool_id", "model", "node_id", "minute"]
    minutes = load.with_columns(load_bucket(pl.col("in_flight")).alias("bucket"))
    sampled = samples.join(minutes, on=keys, how="inner")
    per_bucket = sampled.group_by("pool_id", "model", "bucket").agg(
        pl.col("ttft_s").quantile(0.95, "linear").alias("ttft_p95_s"),
        pl.col("e2e_s").quantile(0.95, "linear").alias("e2e_p95_s"))
    loads = (minutes.join(samples.select(keys).unique(), on=keys, how="semi")
             .group_by("pool_id", "model", "bucket")
             .agg(pl.len().cast(pl.Int64).alias("samples"), exact_mean(pl.col("output_tokens_per_s")).alias("tokens_s"),
                  exact_mean(pl.col("in_flight")).alias("in_flight")))
    return as_strings(loads.join(per_bucket, on=["pool_id", "model", "bucket"]))


def learned_capacity(load: pl.LazyFrame, samples: pl.LazyFrame, objectives: pl.LazyFrame,
                     min_samples: int = MIN_SAMPLES) -> pl.LazyFrame:
    """Per (pool_id, model, tier) of `objectives` (`pool_id, tier, ttft_p95_s, e2e_p95_s`: the
    tiers each pool serves; a column `min_samples` there overrides `min_samples` per pool):
    `bucket`, `samples`, `output_tokens_per_s`, `in_flight` of the highest bucket meeting the
    objectives with at least `min_samples` samples, and `telemetry_source` (`telemetry` when a
    higher bucket with enough samples missed, else `telemetry_lower_bound`).
    Pairs without such a bucket are absent."""
    return learned_from_buckets(_bucket_stats(load, samples), objectives, min_samples)


def learned_from_buckets(stats: pl.LazyFrame, objectives: pl.LazyFrame, min_samples: int = MIN_SAMPLES,
                         ) -> pl.LazyFrame:
    """`learned_capacity` from its per-bucket statistics (`pool_id, model, bucket, samples, tokens_s,
    in_flight, ttft_p95_s, e2e_p95_s`: `_bucket_stats`, or `chunked.chunked_inputs` a node group at a time)."""
    objectives = objectives.rename({"ttft_p95_s": "ttft_obj", "e2e_p95_s": "e2e_obj"})
    if "min_samples" not in objectives.collect_schema():
        objectives = objectives.with_columns(pl.lit(min_samples).alias("min_samples"))
    judged = stats.join(objectives, on="pool_id").filter(
        pl.col("samples") >= pl.col("min_samples")).with_columns(
        ((pl.col("ttft_p95_s").is_null() | (pl.col("ttft_p95_s") <= pl.col("ttft_obj")))
         & (pl.col("e2e_p95_s") <= pl.col("e2e_obj"))).alias("meets"))
    keys = ["pool_id", "model", "tier"]
    best = judged.filter("meets").sort(*keys, "bucket").group_by(keys).agg(pl.all().last())
    missed = judged.filter(~pl.col("meets")).group_by(keys).agg(pl.col("bucket").max().alias("missed_bucket"))
    return (best.join(missed, on=keys, how="left")
            .select(*keys, "bucket", "samples", pl.col("tokens_s").alias("output_tokens_per_s"), "in_flight",
                    pl.when(pl.col("missed_bucket") > pl.col("bucket")).then(pl.lit("telemetry"))
                    .otherwise(pl.lit("telemetry_lower_bound")).alias("telemetry_source")))


def profile_capacity(profiles: pl.LazyFrame, pools: pl.LazyFrame, objectives: pl.LazyFrame,
                     output_p95: pl.LazyFrame) -> pl.LazyFrame:
    """Per (pool_id, model, tier): the profile's capacity of one node at the tier's objectives.
    `pools`: as `points.matched_points` takes them; `output_p95`: `pool_id, model, tier,
    p95_output_tokens` (the tier's answers on the pool). Columns `profile_output_tokens_per_s`,
    `profile_in_flight` (node), `profile_batch` (replica) and `profile_source`. Pairs without a
    profile point meeting them are absent."""
    cand = matched_points(profiles, pools, output_p95)
    ttft = pl.coalesce("ttft_p95_s", "ttft_obj")  # no TTFT measured: the most the objective allows
    e2e = ttft + pl.col("batch") / pl.col("output_tokens_per_s") * pl.col("p95_output_tokens")
    replicas = pl.col("replicas")
    keys = ["pool_id", "model", "tier"]
    return (cand.join(objectives.rename({"ttft_p95_s": "ttft_obj", "e2e_p95_s": "e2e_obj"}), on=["pool_id", "tier"])
            .filter(pl.col("ttft_p95_s").is_null() | (pl.col("ttft_p95_s") <= pl.col("ttft_obj")),
                    e2e <= pl.col("e2e_obj"))
            .sort(*keys, "batch").group_by(keys).agg(pl.all().last())
            .select(*keys, (pl.col("output_tokens_per_s") * replicas).alias("profile_output_tokens_per_s"),
                    (pl.col("batch") * replicas).cast(pl.Float64).alias("profile_in_flight"),
                    pl.col("batch").cast(pl.Int32).alias("profile_batch"), pl.col("source").alias("profile_source")))


def capacity_at_objectives(learned: pl.LazyFrame, profile: pl.LazyFrame, pairs: pl.LazyFrame) -> pl.LazyFrame:
    """Per (pool_id, model, tier) of `pairs`: the capacity chosen (module docstring), in the
    columns of CAPACITY_SCHEMA; `capacity_source` is telemetry, telemetry_lower_bound, profile
    (`profile_<its source>`: profile_reference, profile_measured, profile_assumed) or unknown."""
    keys = ["pool_id", "model", "tier"]
    j = pairs.select(keys).unique().join(learned, on=keys, how="left").join(profile, on=keys, how="left")
    tel, prof = pl.col("output_tokens_per_s"), pl.col("profile_output_tokens_per_s")
    use_tel = tel.is_not_null() & ((pl.col("telemetry_source") == "telemetry") | prof.is_null() | (tel >= prof))
    use_prof = ~use_tel & prof.is_not_null()
    return j.select(
        *keys,
        pl.when(use_tel).then(tel).when(use_prof).then(prof).alias("capacity_output_tokens_per_s"),
        pl.when(use_tel).then(pl.col("in_flight")).when(use_prof).then(pl.col("profile_in_flight"))
        .alias("capacity_in_flight"),
        pl.when(use_tel).then(pl.col("telemetry_source")).when(use_prof)
        .then(pl.lit("profile_") + pl.col("profile_source")).otherwise(pl.lit("unknown")).alias("capacity_source"),
        pl.col("samples").fill_null(0).cast(pl.Int64), tel.alias("telemetry_output_tokens_per_s"),
        "telemetry_source", prof, "profile_batch", "profile_source",
    ).select(pl.col(n).cast(t) for n, t in CAPACITY_SCHEMA.items())


def pool_model_capacity(capacity: pl.LazyFrame) -> pl.LazyFrame:
    """Per (pool_id, model): the capacity at the strictest objective of the tiers it served (the
    smallest capacity of its tiers; unknown when any tier's is). Columns of CAPACITY_SCHEMA, `tier`
    the binding tier."""
    keys = ["pool_id", "model"]
    unknown = pl.col("capacity_output_tokens_per_s").is_null().any().over(keys)
    ranked = capacity.with_columns(unknown.alias("_unknown")).sort(
        *keys, "capacity_output_tokens_per_s", "tier", nulls_last=False)
    first = ranked.group_by(keys, maintain_order=True).agg(pl.all().first())
    return first.with_columns(
        *[pl.when(pl.col("_unknown")).then(None).otherwise(pl.col(c)).alias(c)
          for c in ("capacity_output_tokens_per_s", "capacity_in_flight")],
        pl.when(pl.col("_unknown")).then(pl.lit("unknown")).otherwise(pl.col("capacity_source"))
        .alias("capacity_source")).drop("_unknown").select(list(CAPACITY_SCHEMA))
