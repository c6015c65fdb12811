"""Per node-minute load and latency, from the request facts of one day.

A request occupies its node from its GPU start to its completion (the facts' `occupied_s`, the
part of that interval in the day, ends at completion or midnight), and decodes from its first
token (`arrived_at + ttft_s`; its GPU start when TTFT is not logged) to its completion: its output
tokens are spread evenly over that decode interval, and each minute of the day gets the part of
the interval inside it. Per (pool, model, node, minute of the day):

- `output_tokens_per_s`: output tokens decoded in the minute / 60;
- `in_flight`: requests running on the node, averaged over the minute (request-seconds / 60).

Latency samples: each ok request completed in the day, at the node-minute it arrived in, with its
TTFT and end-to-end latency (completion - arrival).
"""

from datetime import UTC, date, datetime, timedelta

import polars as pl
import polars.selectors as cs

MINUTE_US = 60_000_000
# Divisions by a constant are written as the product by its reciprocal: what Polars computes for a column
# of more than one row (`x / c` is `x * (1 / c)` there, but a true division on a single row, which would
# make a node group of one node-minute or one sample differ in the last bit from the whole day).
# Sums and means of floats are taken as DECIMAL (exact, so whatever order Polars' threads add the rows in,
# a rerun gives the same bits), then cast back: 12 decimals of a token or a request.
EXACT = pl.Decimal(38, 12)


def exact_sum(expr: pl.Expr) -> pl.Expr:
    """The sum of a float column, independent of the order rows are added in."""
    return expr.cast(EXACT).sum().cast(pl.Float64)


def exact_mean(expr: pl.Expr) -> pl.Expr:
    """The mean of a float column, independent of the order rows are added in."""
    return exact_sum(expr) / expr.count()

KEYS = ("node_id", "pool_id", "model")


def key_values(facts: pl.LazyFrame) -> pl.LazyFrame:
    """One row: the sorted distinct non-null values of each of KEYS, as lists (`encode_with`)."""
    return facts.select(pl.col(k).drop_nulls().unique().sort().implode() for k in KEYS)


def encode_with(facts: pl.LazyFrame, values: tuple) -> pl.LazyFrame:
    """`facts` with KEYS as Enums of `values` (a row of `key_values`)."""
    return facts.with_columns(pl.col(k).cast(pl.Enum(v)) for k, v in zip(KEYS, values, strict=True))


def encode_keys(facts: pl.LazyFrame) -> pl.LazyFrame:
    """The facts with `node_id`, `pool_id` and `model` as Enums of their sorted values (one scan of those
    columns): joins and group-bys then hash integers, and sorts give the strings' order (`as_strings`)."""
    return encode_with(facts, key_values(facts).collect().row(0))


def as_strings(frame: pl.LazyFrame) -> pl.LazyFrame:
    """`frame` with its Enum columns (`encode_keys`) back to String."""
    return frame.with_columns(cs.enum().cast(pl.String))

LOAD_SCHEMA = pl.Schema({"pool_id": pl.String, "model": pl.String, "node_id": pl.String, "minute": pl.Int64,
                         "output_tokens_per_s": pl.Float64, "in_flight": pl.Float64})


def _us(col: str) -> pl.Expr:
    return pl.col(col).dt.cast_time_unit("us").cast(pl.Int64)


def _day_us(day: date) -> tuple[int, int]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return (start - epoch) // timedelta(microseconds=1), (start + timedelta(days=1) - epoch) // timedelta(
        microseconds=1)


def node_minute_load(facts: pl.LazyFrame, day: date) -> pl.LazyFrame:
    """Load per (pool_id, model, node_id, minute) of `day` (minute: 0-1439 of the UTC day), from
    the request facts (`node_id, pool_id, model, arrived_at, completed_at, ttft_s, output_tokens,
    occupied_s`): `output_tokens_per_s` (tokens/s) and `in_flight` (requests, time-averaged).
    Node-minutes no request touched are absent (zero load)."""
    lo, hi = _day_us(day)
    run_e = pl.min_horizontal(_us("completed_at"), pl.lit(hi))
    run_s = run_e - (pl.col("occupied_s") * 1e6).round(0).cast(pl.Int64)
    first_token = _us("arrived_at") + (pl.col("ttft_s") * 1e6).round(0).cast(pl.Int64)
    dec_full_s = pl.when(pl.col("ttft_s").is_not_null()).then(first_token).otherwise(run_s)
    spans = facts.select(
        "pool_id", "model", "node_id", run_s.alias("rs"), run_e.alias("re"),
        pl.max_horizontal(dec_full_s, pl.lit(lo)).alias("ds"), pl.min_horizontal(_us("completed_at"), pl.lit(hi))
        .alias("de"), (dec_full_s.clip(upper_bound=_us("completed_at"))).alias("dfs"), _us("completed_at").alias("c"),
        pl.col("output_tokens").cast(pl.Float64).alias("tokens"),
    ).filter(pl.col("re") > lo)
    # Tokens per µs of decode; a request whose first token is its last (no decode time) puts its
    # tokens at its completion: a one-µs interval ending there.
    length = pl.max_horizontal(pl.col("c") - pl.col("dfs"), pl.lit(1))
    spans = spans.with_columns((pl.col("tokens") / length).alias("rate"),
                               pl.when(pl.col("c") - pl.col("dfs") <= 0).then(pl.col("c") - 1)
                               .otherwise(pl.col("ds")).alias("ds"))
    first = (pl.min_horizontal("rs", "ds").clip(lower_bound=lo) - lo) // MINUTE_US
    last = (pl.max_horizontal("re", "de").clip(upper_bound=hi) - 1 - lo) // MINUTE_US
    minutes = spans.with_columns(pl.int_ranges(first, last + 1).alias("minute")).explode("minute")
    m_s = lo + pl.col("minute") * MINUTE_US
    m_e = m_s + MINUTE_US

    def overlap(s: str, e: str) -> pl.Expr:
        return (pl.min_horizontal(pl.col(e), m_e) - pl.max_horizontal(pl.col(s), m_s)).clip(lower_bound=0)

    return (minutes.with_columns(overlap("rs", "re").alias("_run"), overlap("ds", "de").alias("_dec"))
            .group_by("pool_id", "model", "node_id", "minute")
            .agg(exact_sum(pl.col("_dec") * pl.col("rate")).alias("_tokens"), pl.col("_run").sum().alias("_run_us"))
            .select("pool_id", "model", "node_id", pl.col("minute").cast(pl.Int64),
                    (pl.col("_tokens") * (1 / 60)).alias("output_tokens_per_s"),
                    (pl.col("_run_us").cast(pl.Float64) * (1 / MINUTE_US)).alias("in_flight")))


def latency_samples(facts: pl.LazyFrame, day: date) -> pl.LazyFrame:
    """One row per ok request completed in `day` that arrived in it: `pool_id, model, node_id,
    minute` (of its arrival), `ttft_s`, `e2e_s`."""
    lo, hi = _day_us(day)
    return (facts.filter(pl.col("status") == "ok", _us("completed_at") < hi, _us("arrived_at") >= lo)
            .select("pool_id", "model", "node_id", ((_us("arrived_at") - lo) // MINUTE_US).alias("minute"),
                    "ttft_s",
                    ((_us("completed_at") - _us("arrived_at")).cast(pl.Float64) * (1 / 1e6)).alias("e2e_s")))
