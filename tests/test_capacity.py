"""Capacity learned from per node-minute load and latency (transforms.capacity), hand-computed.

Synthetic telemetry of one pool `p` serving model `m` to tier `gold` (TTFT p95 <= 1 s, E2E p95 <= 10 s).
Each node-minute below carries one ok request arriving in it; requests in flight and output tokens/s
are given per minute, so the buckets (powers of two of requests in flight) are known by construction."""

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import examples
from transforms.capacity import (capacity_at_objectives, latency_samples, learned_capacity, load_bucket,
                                 node_minute_load, pool_model_capacity, profile_capacity)
from transforms.capacity.load import as_strings, encode_keys

DAY = date(2026, 12, 1)
T0 = datetime(2026, 12, 1, tzinfo=UTC)
OBJ = pl.LazyFrame({"pool_id": ["p"], "tier": ["gold"], "ttft_p95_s": [1.0], "e2e_p95_s": [10.0]})


def telemetry(buckets: list[tuple[float, float, int, float, float]]) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """(in_flight, tokens/s, minutes, ttft, e2e) per group -> load and latency frames, one node-minute
    per minute, node n1, minutes numbered on."""
    load, lat, minute = [], [], 0
    for in_flight, tps, n, ttft, e2e in buckets:
        for _ in range(n):
            load.append(("p", "m", "n1", minute, tps, in_flight))
            lat.append(("p", "m", "n1", minute, ttft, e2e))
            minute += 1
    lf = pl.LazyFrame(load, schema=["pool_id", "model", "node_id", "minute", "output_tokens_per_s", "in_flight"],
                      orient="row")
    sf = pl.LazyFrame(lat, schema=["pool_id", "model", "node_id", "minute", "ttft_s", "e2e_s"], orient="row")
    return lf, sf


def test_load_buckets_are_powers_of_two():
    got = pl.select(load_bucket(pl.Series([0.4, 1.0, 1.9, 2.0, 7.99, 8.0, 63.0]))).to_series().to_list()
    assert got == [0, 1, 1, 2, 4, 8, 32]


def test_capacity_is_the_knee_bucket():
    # Buckets 4 (in flight 5), 8 (10) and 16 (20) meet the objective; 32 (40) misses it (TTFT 3 s).
    # Each has 30 minutes (= MIN_SAMPLES): the knee is bucket 16, its load 20 in flight, 2,000 tokens/s.
    load, lat = telemetry([(5, 500.0, 30, 0.2, 4.0), (10, 1000.0, 30, 0.3, 5.0), (20, 2000.0, 30, 0.6, 8.0),
                           (40, 3000.0, 30, 3.0, 20.0)])
    got = learned_capacity(load, lat, OBJ).collect()
    assert got.select("tier", "bucket", "samples", "output_tokens_per_s", "in_flight", "telemetry_source").rows() == [
        ("gold", 16, 30, 2000.0, 20.0, "telemetry")]


def test_too_few_samples_fall_back_to_profile_then_unknown():
    # Bucket 16 has 29 minutes (< 30) and bucket 32 too: neither counts. Bucket 8 has 30 and meets, but no
    # bucket above it with enough samples missed: a lower bound of 1,000 tokens/s.
    load, lat = telemetry([(10, 1000.0, 30, 0.3, 5.0), (20, 2000.0, 29, 0.6, 8.0), (40, 3000.0, 29, 3.0, 20.0)])
    learned = learned_capacity(load, lat, OBJ)
    assert learned.collect()["telemetry_source"].to_list() == ["telemetry_lower_bound"]
    # A profile of the pool's H100 nodes (8 GPUs) for `org/M` (matched lower-cased, last path component) at
    # 2 GPUs per replica -> 4 replicas per node. Points: batch 16 at 400 tokens/s, batch 32 at 600 tokens/s, no
    # TTFT (taken at the objective, 1 s). The tier's p95 answer 100 tokens: E2E estimates 1 + 16 / 400 x 100 = 5 s
    # and 1 + 32 / 600 x 100 = 6.33 s, both <= 10 s: batch 32 -> node capacity 600 x 4 = 2,400 tokens/s, 128 in
    # flight.
    profiles = pl.LazyFrame({"gpu_model": ["H100"] * 3, "model": ["org/M"] * 3, "gpus_per_replica": [2, 2, 8],
                             "batch": [16, 32, 64], "output_tokens_per_s": [400.0, 600.0, 5000.0],
                             "power_w": [1000.0, 1200.0, 5000.0], "ttft_p95_s": [None, None, None],
                             "itl_p95_ms": [40.0, 80.0, 10.0], "source": ["reference"] * 3, "basis": ["x"] * 3},
                            schema_overrides={"gpus_per_replica": pl.Int32, "batch": pl.Int32,
                                              "ttft_p95_s": pl.Float64})
    pools = pl.LazyFrame({"pool_id": ["p"], "gpu_model": ["H100"], "gpus": [8], "gpus_per_replica": [None]},
                         schema_overrides={"gpus_per_replica": pl.Int32})
    mean_out = pl.LazyFrame({"pool_id": ["p"], "model": ["m"], "tier": ["gold"], "p95_output_tokens": [100.0]})
    prof = profile_capacity(profiles, pools, OBJ, mean_out)
    pairs = pl.LazyFrame({"pool_id": ["p"], "model": ["m"], "tier": ["gold"]})
    # The profile's 2,400 > the telemetry's lower bound 1,000: the profile is used.
    got = capacity_at_objectives(learned, prof, pairs).collect()
    assert got.select("capacity_output_tokens_per_s", "capacity_in_flight", "capacity_source", "samples",
                      "telemetry_output_tokens_per_s", "profile_batch").rows() == [
        (2400.0, 128.0, "profile_reference", 30, 1000.0, 32)]
    # With fewer samples still (29 minutes in bucket 8 too) the telemetry gives nothing: the profile alone.
    load2, lat2 = telemetry([(10, 1000.0, 29, 0.3, 5.0)])
    got = capacity_at_objectives(learned_capacity(load2, lat2, OBJ), prof, pairs).collect()
    assert got.select("capacity_output_tokens_per_s", "capacity_source", "samples").rows() == [
        (2400.0, "profile_reference", 0)]
    # Neither: unknown, no figure.
    none = profile_capacity(profiles.filter(pl.lit(False)), pools, OBJ, mean_out)
    got = pool_model_capacity(capacity_at_objectives(learned_capacity(load2, lat2, OBJ), none, pairs)).collect()
    assert got.select("capacity_output_tokens_per_s", "capacity_source").rows() == [(None, "unknown")]


def test_node_minute_load_spreads_tokens_over_decode():
    # One request on n1: arrives 00:00:30, TTFT 30 s (first token 00:01:00), completes 00:03:00, occupied
    # from 00:00:40 (occupied_s 140). 240 output tokens over 120 s of decode: 120 in minute 1, 120 in minute 2
    # -> 2 tokens/s each. In flight: minute 0: 20 s / 60; minutes 1 and 2: 1.
    facts = pl.LazyFrame({
        "request_id": ["r1"], "node_id": ["n1"], "pool_id": ["p"], "model": ["m"], "tier": ["gold"], "status": ["ok"],
        "arrived_at": [T0 + timedelta(seconds=30)], "completed_at": [T0 + timedelta(minutes=3)], "ttft_s": [30.0],
        "output_tokens": [240], "occupied_s": [140.0]})
    got = node_minute_load(facts, DAY).sort("minute").collect()
    assert got.select("minute", "output_tokens_per_s", "in_flight").rows() == [
        (0, 0.0, pytest.approx(20 / 60)), (1, 2.0, 1.0), (2, 2.0, 1.0)]
    assert latency_samples(facts, DAY).collect().select("minute", "ttft_s", "e2e_s").rows() == [(0, 30.0, 150.0)]


@settings(max_examples=examples(40), deadline=None)
@given(st.lists(st.tuples(st.integers(0, 86_000), st.integers(0, 600_000), st.integers(0, 5_000),
                          st.integers(0, 400)), min_size=1, max_size=12))
def test_load_conserves_tokens_and_occupancy(reqs):
    # Requests inside the day: arrival a s, TTFT t ms, E2E t ms + d s (decode d s), `out` tokens, occupying from
    # arrival. Every output token lands in some minute of the day, and every occupied second too.
    rows = []
    for i, (a, ttft_ms, decode_s, out) in enumerate(reqs):
        arrived = T0 + timedelta(seconds=a)
        done = min(arrived + timedelta(milliseconds=ttft_ms, seconds=decode_s), T0 + timedelta(days=1, seconds=-1))
        rows.append((f"r{i}", "n1", "p", "m", "gold", "ok", arrived, done, ttft_ms / 1000, out,
                     (done - arrived).total_seconds()))
    facts = pl.LazyFrame(rows, schema=["request_id", "node_id", "pool_id", "model", "tier", "status", "arrived_at",
                                       "completed_at", "ttft_s", "output_tokens", "occupied_s"], orient="row",
                         schema_overrides={"arrived_at": pl.Datetime("us", "UTC"),
                                           "completed_at": pl.Datetime("us", "UTC")})
    load = node_minute_load(facts, DAY).collect()
    assert (load["output_tokens_per_s"] * 60).sum() == pytest.approx(sum(r[3] for r in reqs), rel=1e-9, abs=1e-6)
    occupied = sum(r[10] for r in rows)
    assert (load["in_flight"] * 60).sum() == pytest.approx(occupied, rel=1e-9, abs=1e-6)
    assert load["minute"].is_between(0, 1439).all()


def test_enum_keys_give_the_string_keys_figures_and_order():
    # day_capacity encodes node, pool and model as Enums of their sorted values (transforms.capacity.load
    # .encode_keys) for speed; the figures and the row order must be those of the strings. Three requests,
    # each alone on its node, arriving 00:00:00, first token 00:00:00 (TTFT 0), completing 00:02:00, occupied
    # 120 s: 120 tokens over 2 minutes -> 1 token/s, in flight 1, in minutes 0 and 1 of each node.
    # Nodes n10, n2, n1 sort as strings n1 < n10 < n2 (not n1 < n2 < n10).
    facts = pl.LazyFrame({
        "node_id": ["n10", "n2", "n1"], "pool_id": ["p"] * 3, "model": ["m"] * 3, "tier": ["gold"] * 3,
        "status": ["ok"] * 3, "arrived_at": [T0] * 3, "completed_at": [T0 + timedelta(minutes=2)] * 3,
        "ttft_s": [0.0] * 3, "output_tokens": [120] * 3, "occupied_s": [120.0] * 3})
    keys = ("pool_id", "model", "node_id", "minute")
    encoded = encode_keys(facts)
    assert encoded.collect_schema()["node_id"] == pl.Enum(["n1", "n10", "n2"])
    got = as_strings(node_minute_load(encoded, DAY).sort(*keys)).collect()
    assert got.rows() == node_minute_load(facts, DAY).sort(*keys).collect().rows() == [
        ("p", "m", n, minute, 1.0, 1.0) for n in ("n1", "n10", "n2") for minute in (0, 1)]
    assert got.schema["node_id"] == pl.String
    # A day without facts encodes to empty Enums and gives no load.
    assert as_strings(node_minute_load(encode_keys(facts.clear()), DAY)).collect().height == 0
