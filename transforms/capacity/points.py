"""The profile points that describe a pool's nodes running a model (docs/capacity.md).

A profile row matches a (pool, model) when its `gpu_model` is the pool's and its model, lower-cased
and cut to the last path component, is the model's (`meta-llama/Llama-3.1-70B-Instruct` matches
`llama-3.1-70b-instruct`). Of the matching `gpus_per_replica`, the pool's (`gpus_per_replica:` in
the inventory) when set, else the smallest that fits the pool's smallest node; a node runs
`gpus // gpus_per_replica` replicas.
"""

import polars as pl

from transforms.ingest.profiles import profile_model_key


def matched_points(profiles: pl.LazyFrame, pools: pl.LazyFrame, pairs: pl.LazyFrame) -> pl.LazyFrame:
    """Per (pool_id, model) of `pairs` (and its other columns): every matching profile point, with
    `gpus_per_replica`, `replicas` (per node), `batch`, `output_tokens_per_s`, `power_w`,
    `ttft_p95_s`, `itl_p95_ms`, `source`. `pools`: `pool_id, gpu_model, gpus` (GPUs of its smallest
    node), `gpus_per_replica` (null: chosen as above)."""
    prof = profiles.with_columns(profile_model_key(pl.col("model")).alias("_mk")).drop("model", "basis")
    cand = (pairs.with_columns(profile_model_key(pl.col("model")).alias("_mk"))
            .join(pools.rename({"gpus_per_replica": "_gpr"}), on="pool_id")
            .join(prof, on=["gpu_model", "_mk"])
            .filter(pl.col("gpus_per_replica") <= pl.col("gpus"),
                    pl.col("_gpr").is_null() | (pl.col("gpus_per_replica") == pl.col("_gpr"))))
    return (cand.filter(pl.col("gpus_per_replica") == pl.col("gpus_per_replica").min().over("pool_id", "model"))
            .with_columns((pl.col("gpus") // pl.col("gpus_per_replica")).alias("replicas"))
            .drop("_mk", "_gpr"))
