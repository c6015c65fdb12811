"""Performance profiles (`<raw>/profiles/*.csv`, docs/raw-formats.md) to parsed PERFORMANCE_PROFILES
frames, and the importers of the public profiles into that canonical layout.

The canonical CSV has one row per operating point:
`gpu_model,model,gpus_per_replica,batch,output_tokens_per_s,power_w,ttft_p95_s,itl_p95_ms,source,basis`.
A row is refused (quarantined with its file and row) when a count is below 1 (`out_of_range`), a
throughput or power is not positive or above its bound (`out_of_range`), a latency is negative
(`out_of_range`), or `source` is not measured, reference or assumed (`invalid_value`). The same
operating point twice is an `exact_duplicate` or a `conflicting_duplicate` (none kept).

Importers (pure: the file's parsed content in, canonical rows out; `lake.profiles` reads and writes
the files, `inferledger import-profile` runs them):

- `import_mlenergy`: the ML.ENERGY leaderboard v3 task JSON, one configuration -> one row. `batch`
  is `max_num_seqs` (the limit the configuration was run at, an integer and the configuration's
  identity; the measured mean `avg_batch_size` is in `basis`). Throughput and power are the
  configuration's totals over its `num_gpus` GPUs divided by `data_parallel` (one replica's
  figures; every configuration of the v3 file has `data_parallel` 1); `gpus_per_replica` =
  `num_gpus / data_parallel`. ITL p95 = `p95_itl_ms`; the leaderboard measures no TTFT (empty).
  Two configurations at the same operating point (other tensor/expert parallelism over the same
  GPUs) keep the one of highest throughput; `basis` names the parallelism kept.
- `import_splitwise`: the Splitwise simulator's `perf_model.csv` (A100 and H100 DGX profiles of
  Llama2-70B and BLOOM-176B). Its batch sweep exists at prompt 512 / output 128 tokens only; one row
  per (model, hardware, tensor parallelism, batch), over the repeated runs: throughput = batch x
  1000 / mean `token_time` (ms per output token of the batch), power = mean `average_power` (a
  fraction of the GPU's power limit) x the limit (A100-80GB SXM 400 W, H100-80GB SXM 700 W) x the
  GPUs, TTFT = the largest `prompt_time` of the runs, ITL = the largest `token_time` (the worst
  repeated run, not a percentile of a live load). The power-capped H100 rows (`h100-80gb-pcap`)
  are left out: the repository does not state the cap, so their fraction cannot become watts. So
  are the H100 rows: their power is 0.0 in every run (not measured), and a profile point needs a
  power. A run whose power is 0.0 does not count in the mean power; a run repeated identically (the
  batch-1 runs appear three times) counts once.
"""

import polars as pl

from transforms.contracts import PERFORMANCE_PROFILES, PROFILE_SOURCES
from transforms.ingest.canonical import parse_canonical
from transforms.ingest.common import first_reason

# One replica's throughput and power: 64 GPUs (MAX_NODE_W's node) at 10 M tokens/s and 200 kW leave room.
MAX_PROFILE_TOKENS_PER_S = 10_000_000.0
MAX_PROFILE_POWER_W = 200_000.0
MAX_PROFILE_LATENCY_S = 3_600.0
SPLITWISE_POWER_LIMIT_W = {"a100-80gb": ("A100", 400.0), "h100-80gb": ("H100", 700.0)}
SPLITWISE_SWEEP = {"prompt_size": 512, "token_size": 128}
MLENERGY_BASIS = "ML.ENERGY leaderboard v3 ({task}), Chung et al. NeurIPS D&B 2025"


def _checks() -> list[tuple[pl.Expr, str, pl.Expr | str]]:
    c = pl.col

    def positive_below(name: str, bound: float, unit: str) -> tuple[pl.Expr, str, pl.Expr]:
        bad = c(name).is_not_null() & ~(c(name).is_between(0.0, bound, closed="right"))
        return (bad, "out_of_range", pl.format(f"{name} {{}} {unit} is not above 0 and at most {bound:g}; fix the "
                                               "profile row", c(name)))

    def non_negative(name: str, bound: float, unit: str) -> tuple[pl.Expr, str, pl.Expr]:
        bad = c(name).is_not_null() & ~(c(name).is_between(0.0, bound))
        return (bad, "out_of_range", pl.format(f"{name} {{}} {unit} is not between 0 and {bound:g}; fix the profile "
                                               "row or leave it empty", c(name)))

    return [
        (c("gpus_per_replica").is_not_null() & (c("gpus_per_replica") < 1), "out_of_range",
         pl.format("gpus_per_replica {} is below 1; a replica runs on 1 GPU or more", c("gpus_per_replica"))),
        (c("batch").is_not_null() & (c("batch") < 1), "out_of_range",
         pl.format("batch {} is below 1; batch is the requests in flight on one replica (1 or more)", c("batch"))),
        positive_below("output_tokens_per_s", MAX_PROFILE_TOKENS_PER_S, "tokens/s"),
        positive_below("power_w", MAX_PROFILE_POWER_W, "W"),
        non_negative("ttft_p95_s", MAX_PROFILE_LATENCY_S, "s"),
        non_negative("itl_p95_ms", MAX_PROFILE_LATENCY_S * 1000, "ms"),
        (c("source").is_not_null() & ~c("source").is_in(list(PROFILE_SOURCES)), "invalid_value",
         pl.format("source {} is not one of " + ", ".join(PROFILE_SOURCES) + "; say where the profile comes from",
                   c("source"))),
    ]


def parse_canonical_profiles(raw: pl.LazyFrame, inventory=None, site_id: str | None = None) -> pl.LazyFrame:
    """`scan_csv_text` of canonical profile CSVs to a parsed PERFORMANCE_PROFILES frame; `source`
    lower-cased. `inventory` and `site_id` are unused (profiles are fleet-wide)."""
    parsed = parse_canonical(raw, PERFORMANCE_PROFILES).with_columns(pl.col("source").str.to_lowercase())
    return (parsed.with_columns(first_reason(_checks()))
            .select(*(pl.col(c.name).cast(c.dtype) for c in PERFORMANCE_PROFILES.columns),
                    "_source_file", pl.col("_source_row").cast(pl.Int64), "_reason", "_detail"))


def _canonical(frame: pl.DataFrame) -> pl.DataFrame:
    return (frame.select(pl.col(c.name).cast(c.dtype) for c in PERFORMANCE_PROFILES.columns)
            .sort(list(PERFORMANCE_PROFILES.key)))


def import_mlenergy(document: dict) -> pl.DataFrame:
    """An ML.ENERGY leaderboard v3 task document (`{task, configurations: [...]}`) to canonical
    profile rows (one per configuration; see the module's docstring for the mapping)."""
    task = document.get("task", "unknown task")
    configs = pl.DataFrame(document["configurations"], infer_schema_length=None)
    dp = pl.col("data_parallel").cast(pl.Float64)
    basis = pl.format(MLENERGY_BASIS.format(task=task) + ": {} {}, max_num_seqs {} (measured mean batch {}), "
                      "tensor_parallel {} expert_parallel {} data_parallel {}, {}",
                      pl.col("nickname"), pl.col("gpu_model"), pl.col("max_num_seqs"),
                      pl.col("avg_batch_size").round(2), pl.col("tensor_parallel"), pl.col("expert_parallel"),
                      pl.col("data_parallel"), pl.col("weight_precision"))
    rows = configs.select(
        pl.col("gpu_model"), pl.col("model_id").alias("model"),
        (pl.col("num_gpus") // pl.col("data_parallel")).alias("gpus_per_replica"),
        pl.col("max_num_seqs").alias("batch"),
        (pl.col("output_throughput_tokens_per_sec") / dp).alias("output_tokens_per_s"),
        (pl.col("avg_power_watts") / dp).alias("power_w"),
        pl.lit(None, pl.Float64).alias("ttft_p95_s"), pl.col("p95_itl_ms").cast(pl.Float64).alias("itl_p95_ms"),
        pl.lit("reference").alias("source"), basis.alias("basis"))
    best = (rows.sort([*PERFORMANCE_PROFILES.key, "output_tokens_per_s"], descending=[False] * 4 + [True])
            .unique(subset=list(PERFORMANCE_PROFILES.key), keep="first", maintain_order=True))
    return _canonical(best)


def import_splitwise(perf_model: pl.DataFrame) -> pl.DataFrame:
    """The Splitwise `perf_model.csv` (as read, one row per run) to canonical profile rows (one
    per model, hardware, tensor parallelism and batch of its batch sweep; see the module's docstring)."""
    hw = pl.DataFrame([(k, g, w) for k, (g, w) in SPLITWISE_POWER_LIMIT_W.items()],
                      schema=["hardware", "gpu_model", "limit_w"], orient="row")
    sweep = perf_model.unique(maintain_order=True).filter(
        pl.col("prompt_size") == SPLITWISE_SWEEP["prompt_size"],
        pl.col("token_size") == SPLITWISE_SWEEP["token_size"]).join(hw, on="hardware")
    measured = pl.col("average_power").filter(pl.col("average_power") > 0)
    grouped = sweep.group_by("model", "hardware", "gpu_model", "tensor_parallel", "batch_size").agg(
        pl.col("token_time").mean().alias("token_ms"), pl.col("token_time").max().alias("itl_p95_ms"),
        (pl.col("prompt_time").max() / 1000).alias("ttft_p95_s"),
        (measured.mean() * pl.col("limit_w").first()).alias("gpu_w"), pl.len().alias("runs"),
    ).filter(pl.col("gpu_w").is_not_null())
    basis = pl.format("Splitwise perf_model.csv (Patel et al. ISCA 2024, Mutinifni/splitwise-sim): {} on {}, "
                      "tensor_parallel {}, prompt 512 / output 128 tokens, mean of {} runs; TTFT and ITL the worst "
                      "run's", pl.col("model"), pl.col("hardware"), pl.col("tensor_parallel"), pl.col("runs"))
    return _canonical(grouped.select(
        "gpu_model", "model", pl.col("tensor_parallel").alias("gpus_per_replica"), pl.col("batch_size").alias("batch"),
        (pl.col("batch_size") * 1000 / pl.col("token_ms")).alias("output_tokens_per_s"),
        (pl.col("gpu_w") * pl.col("tensor_parallel")).alias("power_w"), "ttft_p95_s", "itl_p95_ms",
        pl.lit("reference").alias("source"), basis.alias("basis")))


def profile_model_key(model: pl.Expr) -> pl.Expr:
    """The name a profile's model and a request log's model are matched by: lower-cased, the last
    path component (`meta-llama/Llama-3.1-70B-Instruct` -> `llama-3.1-70b-instruct`)."""
    return model.str.to_lowercase().str.split("/").list.last()
