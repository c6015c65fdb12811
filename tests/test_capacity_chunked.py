"""The capacity inputs a node group at a time (transforms.capacity.chunked) equal the single pass over
the whole day (`learn._bucket_stats` over `node_minute_load` and `latency_samples`, Polars' own
`quantile(0.95, "linear")`), to the bit; and the p95 from a few values (transforms.capacity.quantile)
equals Polars' over every value."""

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.conftest import examples
from transforms.capacity import chunked
from transforms.capacity.chunked import chunked_inputs, node_groups
from transforms.capacity.day import FACT_COLUMNS
from transforms.capacity.learn import _bucket_stats
from transforms.capacity.load import encode_keys, latency_samples, node_minute_load
from transforms.capacity.quantile import linear_quantile

DAY = date(2026, 12, 1)
T0 = datetime(2026, 12, 1, tzinfo=UTC)
TS = pl.Datetime("us", "UTC")
SCHEMA = {"node_id": pl.String, "pool_id": pl.String, "model": pl.String, "tier": pl.String, "status": pl.String,
          "arrived_at": TS, "completed_at": TS, "ttft_s": pl.Float64, "output_tokens": pl.Int64,
          "occupied_s": pl.Float64}
BUCKET = ["pool_id", "model", "bucket"]


def _single_pass(facts: pl.LazyFrame) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """What `day_capacity` computed before the node groups: bucket statistics and the output tokens' p95
    per (pool, model, tier) and per (pool, model), every sample in memory at once."""
    enc = encode_keys(facts)
    stats = _bucket_stats(node_minute_load(enc, DAY), latency_samples(enc, DAY)).collect()
    ok = facts.filter(pl.col("completed_at").dt.date() == DAY, pl.col("status") == "ok")
    p95 = pl.col("output_tokens").cast(pl.Float64).quantile(0.95, "linear")
    tier = ok.group_by("pool_id", "model", "tier").agg(p95.alias("tier_p95")).collect()
    pool = ok.group_by("pool_id", "model").agg(p95.alias("pool_p95")).collect()
    return stats, tier, pool


def _sorted(frame: pl.LazyFrame | pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    return frame.lazy().sort(keys).collect()


def _equal_to_the_bit(chunked: pl.DataFrame, single: pl.DataFrame) -> None:
    assert chunked.columns == single.columns
    assert chunked.height == single.height
    for name in chunked.columns:
        a, b = chunked[name], single[name]
        if a.dtype == pl.Float64:  # the same bits, not approximately: the shortest decimal that reads back
            a, b = (s.cast(pl.String) for s in (a, b))  # as the same double, one per double (-0.0 apart)
        assert a.to_list() == b.to_list(), name


def _hand_day() -> pl.LazyFrame:
    """Two nodes of pool p, model m: n-a and n-b, one request arriving at the start of each of 10 minutes on
    each, occupying its node for its whole E2E (< 60 s: in flight < 1, bucket 0). E2E: n-a the odd seconds
    1, 3, ..., 19, n-b the even ones 2, 4, ..., 20; TTFT a tenth of the E2E, not logged for n-b's 2 and 4 s."""
    rows = []
    for node, e2es in (("n-a", range(1, 20, 2)), ("n-b", range(2, 21, 2))):
        for k, e2e in enumerate(e2es):
            arrived = T0 + timedelta(minutes=k)
            ttft = None if node == "n-b" and e2e in (2, 4) else e2e / 10
            rows.append((node, "p", "m", "gold", "ok", arrived, arrived + timedelta(seconds=e2e), ttft,
                         100 * e2e, float(e2e)))
    return pl.LazyFrame(rows, schema=SCHEMA, orient="row")


def _with_bins(shift: int, run):
    """`run()` with the latency bins of `chunked._bin` `shift` bits coarse (60: a handful of bins, so the
    p95's bins hold several values and the facts are read a second time)."""
    kept, chunked.BIN_SHIFT = chunked.BIN_SHIFT, shift
    try:
        return run()
    finally:
        chunked.BIN_SHIFT = kept


@pytest.mark.parametrize("shift", [chunked.BIN_SHIFT, 60])
def test_a_p95_between_two_node_groups_by_hand(shift):
    facts = _hand_day()
    groups = node_groups(facts.group_by("node_id").len().collect(), 1)
    assert groups == [("n-a", "n-a"), ("n-b", "n-b")]  # one node a group: n-a's values, then n-b's
    load, stats, pairs, tier, pool = _with_bins(shift, lambda: chunked_inputs(facts, DAY, chunk_rows=1))
    got = stats.collect().row(0, named=True)
    # Bucket 0 of (p, m): 20 node-minutes with a sample. E2E, 20 values 1..20 s, no null:
    #   float_idx = (20 - 1) x 0.95 = 18.05 -> ranks 18 and 19 (0-based): 19 s (n-a's) and 20 s (n-b's)
    #   p95 = 19 + 0.05 x (20 - 19) = 19.05 s: its two values in different node groups.
    # TTFT: 18 values (0.1, 0.3, ..., 1.9 of n-a; 0.6, 0.8, ..., 2.0 of n-b), 2 nulls:
    #   float_idx = (18 - 1) x 0.95 + 2 = 18.15 -> non-null ranks 16 and 17: 1.9 (n-a), 2.0 (n-b)
    #   p95 = 1.9 + 0.15 x (2.0 - 1.9) = 1.915 s.
    assert (got["bucket"], got["samples"]) == (0, 20)
    assert got["e2e_p95_s"] == pytest.approx(19.05, abs=1e-12)
    assert got["ttft_p95_s"] == pytest.approx(1.915, abs=1e-12)
    # Output tokens 100 x E2E: 100..2,000, the same ranks: 1,900 + 0.05 x 100 = 1,905.
    assert tier.collect()["tier_p95"].to_list() == [pytest.approx(1905.0, abs=1e-9)]
    single_stats, single_tier, single_pool = _single_pass(facts)
    _equal_to_the_bit(_sorted(stats, BUCKET), _sorted(single_stats, BUCKET))
    _equal_to_the_bit(_sorted(tier, ["tier"]), _sorted(single_tier, ["tier"]))
    _equal_to_the_bit(_sorted(pool, ["model"]), _sorted(single_pool, ["model"]))
    assert load.collect().height == 20 and pairs.collect().rows() == [("p", "m", "gold")]


_latency = st.one_of(st.none(), st.sampled_from([0.0, 0.25, 1.0, 7.5]),
                     st.floats(0.0, 300.0, allow_nan=False, allow_infinity=False))


@st.composite
def _days(draw) -> pl.LazyFrame:
    """Facts of 1-5 nodes in 2 pools, requests arriving from 10 minutes before the day to its last hour, of
    0.01-900 s, ok or not, TTFT sometimes not logged, repeated values likely (ties across node groups)."""
    n = draw(st.integers(1, 60))
    rows = []
    for _ in range(n):
        node = draw(st.sampled_from(["a1", "a2", "a3", "b1", "b2"]))
        arrived = T0 + timedelta(seconds=draw(st.integers(-600, 86_399)))
        e2e = draw(st.sampled_from([0.01, 0.5, 3.0, 45.0, 61.0, 900.0]) | st.floats(0.01, 900.0))
        ttft = draw(_latency)
        ttft = None if ttft is None else min(ttft, e2e)
        rows.append((node, "pa" if node[0] == "a" else "pb", draw(st.sampled_from(["m1", "m2"])),
                     draw(st.sampled_from(["gold", "std"])), draw(st.sampled_from(["ok", "ok", "error"])), arrived,
                     arrived + timedelta(microseconds=round(e2e * 1e6)), ttft,
                     draw(st.one_of(st.none(), st.integers(0, 5))) if draw(st.booleans()) else
                     draw(st.integers(0, 4000)), draw(st.floats(0.0, e2e))))
    return pl.LazyFrame(rows, schema=SCHEMA, orient="row")


@settings(max_examples=examples(40), deadline=None)
@given(facts=_days(), chunk_rows=st.integers(1, 40), shift=st.sampled_from([chunked.BIN_SHIFT, 50, 60]))
def test_node_groups_equal_the_single_pass(facts, chunk_rows, shift):
    facts = facts.select(FACT_COLUMNS)
    _, stats, _, tier, pool = _with_bins(shift, lambda: chunked_inputs(facts, DAY, chunk_rows=chunk_rows))
    single_stats, single_tier, single_pool = _single_pass(facts)
    _equal_to_the_bit(_sorted(stats, BUCKET), _sorted(single_stats, BUCKET))
    _equal_to_the_bit(_sorted(tier, ["pool_id", "model", "tier"]), _sorted(single_tier, ["pool_id", "model", "tier"]))
    _equal_to_the_bit(_sorted(pool, ["pool_id", "model"]), _sorted(single_pool, ["pool_id", "model"]))


@settings(max_examples=examples(60), deadline=None)
@given(groups=st.lists(st.lists(_latency, min_size=1, max_size=40), min_size=1, max_size=6))
# Polars 2.1 counts the two nulls in the position: (2.95 - 2) * 0.25 = 0.23750000000000004; Polars 2.2
# drops them: 0.95 * 0.25 = 0.2375 (quantile.NULLS_IN_RANK follows the installed release).
@example(groups=[[None, None, 0.0, 0.25]])
def test_linear_quantile_from_counts_is_polars_own(groups):
    frame = pl.DataFrame([(g, v) for g, values in enumerate(groups) for v in values], schema=["g", "v"],
                         orient="row", schema_overrides={"g": pl.Int64, "v": pl.Float64})
    polars = frame.group_by("g").agg(pl.col("v").quantile(0.95, "linear").alias("p95")).sort("g")
    values = frame.drop_nulls("v").group_by("g", "v").agg(pl.len().alias("n"))
    stats = frame.group_by("g").agg(pl.col("v").count().alias("nn"), pl.col("v").null_count().alias("nc"),
                                    pl.lit(0).alias("below"))
    ours = linear_quantile(values.lazy(), stats.lazy(), ["g"], "p95").collect().sort("g")
    _equal_to_the_bit(ours, polars)
