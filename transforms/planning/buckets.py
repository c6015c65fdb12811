"""Request-size buckets and the capacity per (pool, model, tier, bucket) (docs/planning.md, "Capacity
per pool, model and bucket").

A request's size is its input + output tokens; the options' buckets cut it at their `max_tokens`
(inclusive), the last bucket unbounded. The capacity of one node for a (pool, model) at a tier's
objectives is the capacity marts' (`transforms.capacity.day_capacity`: the telemetry's knee, else
the larger of the profile's figure and the telemetry's lower bound, else unknown), learned on the
pool's whole mix of sizes. Per bucket, by the same rule one level down:

1. **The bucket's telemetry**: `learned_capacity` on the node-minute load and the latency samples of
   the bucket's own requests, with the pool's `capacity_min_samples` node-minutes (default 30) behind
   the load bucket. Other requests sharing the node are not counted in that load, so the figure is
   a lower bound (the node carried it and more within the objective), and a miss at a higher load
   of the bucket is not the bucket's knee (the other requests' load caused it too): it is never
   taken as one.
2. **The mix's figure scaled to the bucket**: a node's capacity in tokens processed per second (input
   + output) is taken as the same whatever the size (first order: prefill and decode both grow with
   tokens), so C_b = C x r / r_b, r = (input + output) / output tokens of the pool's ok requests of
   the model (the mix C was learned on), r_b the same ratio of the model's ok requests in the bucket
   over the fleet (of all its requests when none is ok). A bucket of more input per output token
   gets fewer output tokens/s. Summed over the buckets, demand_b / C_b gives the mix's demand / C:
   bucketing alone moves no node-equivalent.
3. **Chosen**: the larger of (1) and (2) (each a figure the node is known to reach, as the capacity
   marts choose between a lower bound and a profile); else unknown (never invented: the planner
   cannot route there, `capacity_unknown`). Sources: `bucket_telemetry_lower_bound`, `scaled_<the
   mix's source>` (e.g. `scaled_profile_assumed`, `scaled_telemetry`), `unknown`.
"""

from dataclasses import dataclass
from datetime import date

import polars as pl

from transforms.capacity.day import FACT_COLUMNS, capacity_pools, day_capacity
from transforms.capacity.learn import learned_capacity
from transforms.capacity.load import as_strings, encode_keys, latency_samples, node_minute_load
from transforms.inventory import Inventory


@dataclass(frozen=True)
class Bucket:
    """Requests of at most `max_tokens` input + output tokens (inclusive), and more than the previous
    bucket's; None: no upper bound (the last bucket)."""

    name: str
    max_tokens: int | None


# Quartiles of the demo day's ok requests: 887 and 2,573 tokens; median 1,484 (2026-12-07).
DEFAULT_BUCKETS = (Bucket("small", 1000), Bucket("medium", 4000), Bucket("large", None))
# Per (pool, model, tier, bucket) of a window: one node's capacity (null: unknown) and its source.
BUCKET_CAPACITY_SCHEMA = pl.Schema({"pool": pl.String, "model": pl.String, "tier": pl.String, "bucket": pl.String,
                                    "output_tokens_per_s": pl.Float64, "capacity_source": pl.String})
BUCKET_FACT_COLUMNS = (*FACT_COLUMNS, "input_tokens")
_SEP = "\x1f"  # joins model and bucket into one key for the capacity functions (names never hold it)


def bucket_of(tokens: pl.Expr, buckets: tuple[Bucket, ...]) -> pl.Expr:
    """The bucket's name of a request of `tokens` (input + output) tokens."""
    expr = pl.lit(buckets[-1].name)
    for b in reversed(buckets[:-1]):
        expr = pl.when(tokens <= b.max_tokens).then(pl.lit(b.name)).otherwise(expr)
    return expr


def request_bucket(buckets: tuple[Bucket, ...]) -> pl.Expr:
    """The bucket of a request fact (a null token count counts as 0)."""
    return bucket_of(pl.col("input_tokens").fill_null(0) + pl.col("output_tokens").fill_null(0), buckets)


def _ratio(facts: pl.LazyFrame, day: date, keys: list[str], ok_only: bool = True) -> pl.LazyFrame:
    """(input + output) / output tokens of the (ok) requests completed in `day`, per `keys`."""
    done = facts.filter(pl.col("completed_at").dt.date() == day, (pl.col("status") == "ok") | (not ok_only))
    return (done.group_by(keys).agg(_in=pl.col("input_tokens").fill_null(0).sum().cast(pl.Float64),
                                    _out=pl.col("output_tokens").sum().cast(pl.Float64))
            .filter(pl.col("_out") > 0).select(*keys, ratio=(pl.col("_in") + pl.col("_out")) / pl.col("_out")))


def day_bucket_capacity(facts: pl.LazyFrame, profiles: pl.LazyFrame, inventory: Inventory, day: date,
                        buckets: tuple[Bucket, ...]) -> pl.LazyFrame:
    """Per (pool, model, tier served, bucket of the model's requests fleet-wide that day): one node's capacity
    at the tier's objectives (module docstring), columns of BUCKET_CAPACITY_SCHEMA. `facts`: the
    day's request facts with BUCKET_FACT_COLUMNS; `profiles`: PERFORMANCE_PROFILES' columns."""
    mix = day_capacity(facts.select(FACT_COLUMNS), profiles, inventory, day)["capacity"]
    sized = facts.with_columns(bucket=request_bucket(buckets))
    keyed = sized.with_columns(model=pl.concat_str("model", pl.lit(_SEP), "bucket"))
    keys = keyed.select("model", "bucket", pool_id="pool_id").unique()
    tiers = pl.LazyFrame({"tier": [t.id for t in inventory.tiers],
                          "ttft_p95_s": [t.ttft_p95_s for t in inventory.tiers],
                          "e2e_p95_s": [t.e2e_p95_s for t in inventory.tiers]})
    objectives = (facts.select("pool_id", "tier").unique().join(tiers, on="tier")
                  .join(capacity_pools(inventory).select("pool_id", min_samples="capacity_min_samples"), on="pool_id"))
    encoded = encode_keys(keyed)  # node, pool and model|bucket as Enums while joined (as the marts do)
    own = (as_strings(learned_capacity(node_minute_load(encoded, day), latency_samples(encoded, day), objectives))
           .drop("bucket").join(keys, on=["pool_id", "model"])  # its `bucket` is the load's, ours the size's
           .select("pool_id", "tier", "bucket", model=pl.col("model").str.split(_SEP).list.first(),
                   own="output_tokens_per_s"))
    mix_ratio = _ratio(facts, day, ["pool_id", "model"]).rename({"ratio": "r_mix"})
    # a bucket seen only in failed requests still has a size mix (its demand is in the plan too)
    bucket_ratio = (_ratio(sized, day, ["model", "bucket"], ok_only=False).rename({"ratio": "r_all"})
                    .join(_ratio(sized, day, ["model", "bucket"]), on=["model", "bucket"], how="left")
                    .select("model", "bucket", r_bucket=pl.coalesce("ratio", "r_all")))
    # every bucket of the model the fleet served, on every pool serving the model (a bucket a pool never
    # saw gets the scaled figure: the planner may send it there)
    served = sized.select("model", "bucket").unique()
    scaled = pl.col("capacity_output_tokens_per_s") * pl.col("r_mix") / pl.col("r_bucket")
    figure = pl.max_horizontal("own", scaled)
    source = (pl.when(pl.col("own").is_not_null() & (scaled.is_null() | (pl.col("own") >= scaled)))
              .then(pl.lit("bucket_telemetry_lower_bound"))
              .when(scaled.is_not_null()).then(pl.lit("scaled_") + pl.col("capacity_source"))
              .otherwise(pl.lit("unknown")))
    return (mix.join(served, on="model")
            .join(own, on=["pool_id", "model", "tier", "bucket"], how="left")
            .join(mix_ratio, on=["pool_id", "model"], how="left").join(bucket_ratio, on=["model", "bucket"], how="left")
            .select(pool="pool_id", model="model", tier="tier", bucket="bucket", output_tokens_per_s=figure,
                    capacity_source=source)
            .cast(dict(BUCKET_CAPACITY_SCHEMA)))


def window_capacity(days: list[pl.LazyFrame]) -> pl.LazyFrame:
    """The window's figure per (pool, model, tier, bucket): the smallest known over its days (the
    strictest evidence) with that day's source; unknown when no day knows it."""
    keys = ["pool", "model", "tier", "bucket"]
    return (pl.concat(days).sort(*keys, "output_tokens_per_s", nulls_last=True)
            .group_by(keys, maintain_order=True).agg(pl.all().first())
            .select(list(BUCKET_CAPACITY_SCHEMA)).sort(keys))
