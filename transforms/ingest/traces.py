"""Public LLM inference traces as request logs: the Azure LLM inference trace 2023 and the
Mooncake FAST'25 traces (see docs/trace-adapter.md).

The traces give arrival times and token counts only. Latencies come from a stated
`ThroughputModel`; serving node, model, tier and tenant are arguments. The output is a parsed
REQUESTS frame, judged by `classify` like any request log, so a replayed trace and a real log
go through the same gate.
"""

from dataclasses import dataclass
from datetime import datetime

import polars as pl

from transforms.contracts import REQUESTS
from transforms.ingest.common import first_reason, parse_utc
from transforms.ingest.requests import (
    MAX_LATENCY_S, check_requests, json_field_checks, json_integer, request_value_checks,
)
from transforms.inventory import Inventory

# Mooncake `hash_ids` are 512-token prefix blocks (FAST'25-release/README.md).
MOONCAKE_BLOCK_TOKENS = 512


@dataclass(frozen=True)
class ThroughputModel:
    """Per-request serving speed used to give trace requests latencies.

    `prefill_s = uncached input tokens / prefill_tokens_per_s`,
    `decode_s = output tokens / decode_tokens_per_s`, `ttft_s = queue_s + prefill_s`,
    `e2e = ttft_s + decode_s` (all seconds).

    Defaults: a 70B-class model on 8 x H100 (tensor parallel), one request's view.

    - `prefill_tokens_per_s = 10_000`: Splitwise profiling of Llama2-70B on DGX-H100, TP 8
      (`splitwise-sim/data/perf_model.csv`, medians): 4,096-token prompt 390 ms (10.5k tokens/s),
      8,192-token prompt 845 ms (9.7k tokens/s), 64 x 512-token batch 2,936 ms (11.2k tokens/s).
    - `decode_tokens_per_s = 40` (25 ms per output token): ML.ENERGY leaderboard v3, LM-Arena chat,
      Llama-3.1-70B-Instruct on 4 x H100 (TP 4), median inter-token latency 22.4 ms at
      max_num_seqs 64 and 27.9 ms at 128; Splitwise Llama2-70B DGX-H100 TP 8: 30 ms (batch 1)
      to 50 ms (batch 64) per token.
    - `queue_s = 0`: the traces say nothing about queueing.
    """

    prefill_tokens_per_s: float = 10_000.0
    decode_tokens_per_s: float = 40.0
    queue_s: float = 0.0

    def __post_init__(self):
        if not self.prefill_tokens_per_s > 0 or not self.decode_tokens_per_s > 0:
            raise ValueError(f"{self!r}: token rates must be positive (tokens/s)")
        if not self.queue_s >= 0:
            raise ValueError(f"{self!r}: queue_s must be >= 0 s")

    def latencies(self, input_tokens: pl.Expr, cached_input_tokens: pl.Expr, output_tokens: pl.Expr,
                  arrived_at: pl.Expr) -> list[pl.Expr]:
        """`queue_s`, `prefill_s`, `decode_s`, `ttft_s` (s) and `completed_at` (arrival + e2e,
        rounded to the microsecond; null beyond `MAX_LATENCY_S`, which the value checks reject)."""
        prefill = (input_tokens - cached_input_tokens) / self.prefill_tokens_per_s
        decode = output_tokens / self.decode_tokens_per_s
        ttft = self.queue_s + prefill
        e2e = ttft + decode
        e2e_us = pl.when(e2e.abs() <= MAX_LATENCY_S).then((e2e * 1e6).round().cast(pl.Int64))
        return [pl.lit(self.queue_s).alias("queue_s"), prefill.alias("prefill_s"), decode.alias("decode_s"),
                ttft.alias("ttft_s"), (arrived_at + pl.duration(microseconds=e2e_us)).alias("completed_at")]


def _placement(node_id: str, tier: str, inventory: Inventory | None, site_id: str | None,
               pool_id: str | None) -> tuple[str, str]:
    """Site and pool of the node serving a replayed trace: from the inventory, or as given."""
    if inventory is None:
        if not site_id or not pool_id:
            raise ValueError("a trace needs its placement: pass inventory=..., or both site_id=... and pool_id=...")
        return site_id, pool_id
    nodes = inventory.nodes_frame().collect()
    row = nodes.filter(pl.col("node_id") == node_id)
    if row.height == 0:
        raise ValueError(f"node {node_id!r} is not in the inventory; known nodes: {', '.join(nodes['node_id'])}")
    if tier not in inventory.tier_ids:
        raise ValueError(f"tier {tier!r} is not in the inventory; known tiers: {', '.join(inventory.tier_ids)}")
    known_site, known_pool = row["site_id"][0], row["pool_id"][0]
    if (site_id or known_site) != known_site or (pool_id or known_pool) != known_pool:
        raise ValueError(f"node {node_id!r} is in site {known_site!r}, pool {known_pool!r} in the inventory, "
                         f"not site {site_id!r}, pool {pool_id!r}; drop the explicit placement or fix it")
    return known_site, known_pool


def _finish(frame: pl.LazyFrame, *, node_id: str, model: str, tier: str, tenant_id: str,
            inventory: Inventory | None, site_id: str | None, pool_id: str | None) -> pl.LazyFrame:
    """Constant columns, then the request checks: with an inventory the full `check_requests`,
    without one the value checks only."""
    site_id, pool_id = _placement(node_id, tier, inventory, site_id, pool_id)
    frame = frame.with_columns(
        pl.lit(node_id).alias("node_id"), pl.lit(model).alias("model"), pl.lit(tier).alias("tier"),
        pl.lit(tenant_id).alias("tenant_id"), pl.lit(None, pl.Int64).alias("response_bytes"),
        pl.lit("ok").alias("status"), pl.lit(site_id).alias("site_id"), pl.lit(pool_id).alias("pool_id"),
    )
    if inventory is not None:
        return check_requests(frame, inventory, site_id)
    return (frame.with_columns(first_reason(request_value_checks()))
            .select(*REQUESTS.names, "_source_file", "_source_row", "_reason", "_detail"))


def _request_id(prefix: str, trace_name: pl.Expr) -> pl.Expr:
    """`<prefix>-<trace>-<row, 6 digits>`: the same on every run, unique per trace file. A trace
    replayed on several days repeats its ids: give each replay its own prefix."""
    row = pl.col("_source_row").cast(pl.String).str.zfill(6)
    return pl.concat_str([pl.lit(prefix), trace_name, row], separator="-")


def _aware(start: datetime | None, name: str) -> None:
    if start is not None and (start.tzinfo is None or start.utcoffset() is None):
        raise ValueError(f"{name} must be timezone-aware, e.g. datetime(2026, 11, 28, tzinfo=timezone.utc)")


def adapt_azure_trace(raw_csv_strings: pl.LazyFrame, *, node_id: str, model: str, tier: str, tenant_id: str,
                      throughput: ThroughputModel, start: datetime | None = None,
                      inventory: Inventory | None = None, site_id: str | None = None,
                      pool_id: str | None = None, id_prefix: str = "azure") -> pl.LazyFrame:
    """Azure LLM inference trace 2023 (`scan_csv_text` of `AzureLLMInferenceTrace_<name>.csv`:
    TIMESTAMP, ContextTokens, GeneratedTokens) to a parsed REQUESTS frame.

    TIMESTAMP has no zone and is read as UTC (7 fractional digits, kept to the microsecond).
    `start` (aware datetime) shifts the whole frame so its earliest request arrives at `start`,
    keeping every gap. `request_id` is `<id_prefix>-<name>-<row:06d>` (row: CSV data row).
    No prefix-cache information: `cached_input_tokens` is 0. Placement from `inventory`, or
    `site_id` and `pool_id`."""
    _aware(start, "start")
    text = pl.col("TIMESTAMP")
    arrived = parse_utc(text, naive_is_utc=True)
    if start is not None:
        arrived = pl.lit(start).dt.convert_time_zone("UTC").dt.cast_time_unit("us") + (arrived - arrived.min())
    name = pl.col("_source_file").str.extract(r"([^/]+)\.[A-Za-z]+$").str.replace(r"^AzureLLMInferenceTrace_", "")
    ints = {"ContextTokens": "input_tokens", "GeneratedTokens": "output_tokens"}
    present = lambda c: pl.col(c).str.strip_chars().str.len_bytes() > 0  # noqa: E731
    frame = raw_csv_strings.with_columns(
        _request_id(id_prefix, name.str.to_lowercase()).alias("request_id"),
        arrived.alias("arrived_at"),
        *(json_integer(pl.col(c).str.strip_chars()).alias(col) for c, col in ints.items()),
        pl.lit(0, pl.Int64).alias("cached_input_tokens"),
        pl.lit(None, pl.String).alias("_reason"), pl.lit(None, pl.String).alias("_detail"),
    )
    frame = frame.with_columns(first_reason([
        *((pl.col(c).is_null() | ~present(c), "missing_required_field", f"`{c}` is empty; the trace row is incomplete")
          for c in ["TIMESTAMP", *ints]),
        (pl.col("arrived_at").is_null(), "bad_timestamp",
         pl.format("`TIMESTAMP` {} is not `YYYY-MM-DD HH:MM:SS.fffffff`", text.str.head(40))),
        *((pl.col(col).is_null(), "invalid_value", pl.format(f"`{c}` {{}} is not an integer", pl.col(c).str.head(32)))
          for c, col in ints.items()),
    ]))
    frame = frame.with_columns(throughput.latencies(pl.col("input_tokens"), pl.col("cached_input_tokens"),
                                                    pl.col("output_tokens"), pl.col("arrived_at")))
    return _finish(frame, node_id=node_id, model=model, tier=tier, tenant_id=tenant_id,
                   inventory=inventory, site_id=site_id, pool_id=pool_id)


MOONCAKE_FIELDS = {"timestamp": "integer", "input_length": "integer", "output_length": "integer"}
# The keys of a trace line the adapter reads (`hash_ids`: a JSON array).
MOONCAKE_KEYS = (*MOONCAKE_FIELDS, "hash_ids")


def _int_list(raw: pl.Expr) -> pl.Expr:
    """A JSON array of integers (DuckDB's compact text, `[0,1,2]`) as List(Int64); null when the
    value is not an array or holds anything but integers."""
    inner = raw.str.strip_prefix("[").str.strip_suffix("]").str.strip_chars()
    items = inner.str.split(",").list.eval(pl.element().str.strip_chars())
    ints = items.list.eval(pl.when(pl.element().str.contains(r"^-?[0-9]+$"))
                           .then(pl.element().cast(pl.Int64, strict=False)))
    is_array = raw.str.starts_with("[")
    return (pl.when(is_array & (inner == "")).then(pl.lit([], pl.List(pl.Int64)))
            .when(is_array & ~ints.list.eval(pl.element().is_null()).list.any()).then(ints))


def cached_prefix_tokens(frame: pl.LazyFrame, blocks: str, input_tokens: str,
                         block_tokens: int = MOONCAKE_BLOCK_TOKENS) -> pl.LazyFrame:
    """`frame` with `cached_input_tokens`: `block_tokens` per block of `blocks` (a list of block
    ids) already seen in an earlier row of the same file (`_source_row` order), capped at
    `input_tokens`. An unbounded cache: every block ever computed stays reusable."""
    exploded = (frame.select("_source_file", "_source_row", pl.col(blocks).alias("_block"))
                .explode("_block").drop_nulls("_block"))
    first_row = pl.col("_source_row").min().over(["_source_file", "_block"])
    hits = (exploded.filter(first_row < pl.col("_source_row"))
            .group_by("_source_file", "_source_row")
            .agg((pl.len().cast(pl.Int64) * block_tokens).alias("_cached")))
    return (frame.join(hits, on=["_source_file", "_source_row"], how="left", maintain_order="left")
            .with_columns(pl.when(pl.col(blocks).is_not_null())
                          .then(pl.min_horizontal(pl.col("_cached").fill_null(0), pl.col(input_tokens)))
                          .alias("cached_input_tokens"))
            .drop("_cached"))


def adapt_mooncake_trace(fields: pl.LazyFrame, *, node_id: str, model: str, tier: str, tenant_id: str,
                         throughput: ThroughputModel, start: datetime, inventory: Inventory | None = None,
                         site_id: str | None = None, pool_id: str | None = None,
                         id_prefix: str = "mooncake") -> pl.LazyFrame:
    """Mooncake FAST'25 trace (`<name>_trace.jsonl`: timestamp in ms from the trace start,
    input_length, output_length, hash_ids) to a parsed REQUESTS frame. `fields` holds the keys
    MOONCAKE_KEYS of each line as JSON text, as `lake.json_lines.scan_json_fields` reads them.

    `arrived_at = start + timestamp`. `cached_input_tokens`: 512 tokens per `hash_ids` block seen
    in an earlier line of the file, capped at input_length (`cached_prefix_tokens`). `request_id`
    is `<id_prefix>-<name>-<line:06d>`. Placement from `inventory`, or `site_id` and `pool_id`."""
    if start is None:
        raise ValueError("start is required: Mooncake timestamps are offsets from the trace start")
    _aware(start, "start")
    typed = fields.with_columns(
        *(json_integer(pl.col(k)).alias(f"_v:{k}") for k in MOONCAKE_FIELDS),
        _int_list(pl.col("hash_ids")).alias("_v:hash_ids"),
    )
    name = pl.col("_source_file").str.extract(r"([^/]+)\.[A-Za-z]+$").str.replace(r"_trace$", "")
    checks = json_field_checks(MOONCAKE_FIELDS, list(MOONCAKE_FIELDS)) + [
        (pl.col("hash_ids").is_not_null() & (pl.col("hash_ids") != "null") & pl.col("_v:hash_ids").is_null(),
         "invalid_value", "`hash_ids` must be a JSON array of integers"),
    ]
    origin = pl.lit(start).dt.convert_time_zone("UTC").dt.cast_time_unit("us")
    frame = (
        typed.with_columns(pl.lit(None, pl.String).alias("_reason"), pl.lit(None, pl.String).alias("_detail"))
        .with_columns(first_reason(checks))
        .with_columns(
            _request_id(id_prefix, name.str.to_lowercase()).alias("request_id"),
            (origin + pl.duration(milliseconds=pl.col("_v:timestamp"))).alias("arrived_at"),
            pl.col("_v:input_length").alias("input_tokens"),
            pl.col("_v:output_length").alias("output_tokens"),
        )
        .pipe(cached_prefix_tokens, "_v:hash_ids", "input_tokens")
    )
    frame = frame.with_columns(throughput.latencies(pl.col("input_tokens"), pl.col("cached_input_tokens"),
                                                    pl.col("output_tokens"), pl.col("arrived_at")))
    return _finish(frame, node_id=node_id, model=model, tier=tier, tenant_id=tenant_id,
                   inventory=inventory, site_id=site_id, pool_id=pool_id)

