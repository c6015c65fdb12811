"""Issue 17's acceptance on the demo day (`inferledger demo` with its defaults: 800,000
requests, seed 7, 2026-11-24), from the published warehouse: energy per output token per
(pool, model) within 2x of the performance profile the fleet was simulated from, at the batch
the pool's replicas ran on average; at least one tier with a positive gross margin.

Measured J per output token: `cost_by_model_pool_day.it_j_per_output_token`, the IT energy the
attribution gave the pool/model's requests (node meters: GPUs and host; DCGM only on the rented
pool) / their output tokens. Profile J per output token: the replica's power_w / output
tokens/s, interpolated at the observed mean batch = the requests' GPU time (completed - arrived
- queue, from the lake) / (seconds of the day x nodes x replicas of the model on a node)."""

import os
from pathlib import Path

import duckdb
import polars as pl
import pytest

from fleetsim.profiles import replica_groups
from fleetsim.spec import FleetSpec
from pipelines.cli import main
from pipelines.cli.parser import DEMO_DAY


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("demo-day")
    paths = {"raw": root / "raw", "lake": root / "lake", "warehouse": root / "warehouse" / "inferledger.duckdb"}
    saved = os.environ.pop("DAGSTER_HOME", None)  # an ephemeral instance: the test leaves no runs behind
    try:
        assert main(["demo", "--raw", str(paths["raw"]), "--lake", str(paths["lake"]),
                     "--warehouse", str(paths["warehouse"])]) == 0
    finally:
        if saved is not None:
            os.environ["DAGSTER_HOME"] = saved
    return paths


def _query(demo, sql: str) -> list[tuple]:
    with duckdb.connect(str(demo["warehouse"]), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_energy_per_output_token_is_within_2x_of_the_profile_at_the_observed_batch(demo):
    spec = FleetSpec()
    measured = {(p, m): (j, n) for p, m, j, n in _query(
        demo, "SELECT pool_id, model, it_j_per_output_token, output_tokens FROM cost_by_model_pool_day")}
    gpu_s = (pl.scan_parquet(demo["lake"] / "requests" / f"date={DEMO_DAY}" / "**" / "*.parquet")
             .group_by("pool_id", "model")
             .agg(((pl.col("completed_at") - pl.col("arrived_at")).dt.total_microseconds() / 1e6
                   - pl.col("queue_s")).sum().alias("gpu_s"), pl.col("node_id").n_unique().alias("nodes"))
             .collect())
    checked = {}
    for pool_id, model, busy_s, nodes in gpu_s.iter_rows():
        pool = spec.pool(pool_id)
        g = next(x for x in replica_groups(spec, pool) if x.model == model)
        batch = busy_s / (86_400 * nodes * g.replicas)
        idle_w = pool.gpu_idle_frac * pool.gpu_tdp_w * g.gpus_per_replica
        profile_j = float(g.curve.power(batch, idle_w) / g.curve.throughput(batch))
        j, tokens = measured[pool_id, model]
        checked[pool_id, model] = (round(batch, 2), round(profile_j, 3), round(j, 3))
        assert tokens > 0 and 0.5 <= j / profile_j <= 2.0, (pool_id, model, batch, profile_j, j)
    # Every (pool, model) the fleet serves was compared. On the demo day (mean batch per replica,
    # profile J/token there, measured IT J/token): premium 70B 2.64, 4.89, 6.53 (1.33x: the
    # node's host power and idle GPU share ride on the requests); rented 70B 8.57, 3.55, 3.36
    # (0.94x, DCGM only: no host); standard 8B 5.11, 1.11, 1.52 (1.36x); batch 14B 6.76, 1.49,
    # 1.88 (1.26x).
    assert set(checked) == {(p.id, m) for p in spec.pools for m in p.models}, checked


def test_at_least_one_tier_has_a_positive_gross_margin(demo):
    margins = dict(_query(demo, "SELECT tier, gross_margin FROM cost_by_tier_day"))
    assert set(margins) == {"premium", "standard", "batch"}
    # Demo day: premium +175.54 USD (revenue at 1.20 / 3.60 USD per million input / output
    # tokens over its fully loaded cost), standard -359.01 (a third of it on the rented H100s),
    # batch -44.20.
    assert margins["premium"] > 0, margins


def test_a_pool_is_materially_over_provisioned_and_the_efficiency_mart_agrees(demo):
    """Issue 17: at least one pool whose surplus cost is over 20% of its cost, from the published
    `overprovisioning_by_pool_day` (capacity from the profiles the fleet was simulated from,
    `profile_assumed` for H200 and L40S), and `efficiency_by_model_pool_day`'s measured J/token
    within 2x of its profile figure for every (pool, model)."""
    over = {p: (share, source, powered, needed) for p, share, source, powered, needed in _query(
        demo, "SELECT pool_id, surplus_cost_share, capacity_source, node_hours_powered, node_hours_needed "
              "FROM overprovisioning_by_pool_day")}
    # Demo day: premium-h200 keeps 2 nodes warm all day (48 node-hours) where the profile's
    # capacity at the premium p95 answer (batch 8: 4 x 336.5 = 1,346.0 tokens/s a node, 1,076.8
    # at the 0.2 margin) needs 2 in the 10 hours above 1,076.8 tokens/s and 1 in the other 14
    # (34): 14 surplus node-hours, 151.16 of 525.89 USD (28.7%; tests/test_fleetsim_capacity.py's
    # 14 / 48 from the simulator's side); standard-l40s 14 of 48, 21.78 of 141.56 USD (15.4%).
    # (Until 2026-12-07 the profile was read at the mean answer: batch 64, 7,194.4 tokens/s, 1
    # node needed every hour, 24 surplus node-hours, 49.3%.)
    assert over["premium-h200"][1] == "profile_assumed"
    assert over["premium-h200"][2:] == (48.0, 34.0)
    assert over["premium-h200"][0] > 0.20, over
    ratios = {(p, m): r for p, m, r in _query(
        demo, "SELECT pool_id, model, measured_to_profile FROM efficiency_by_model_pool_day")}
    # 1.20 (batch 14B), 0.92 (rented 70B), 1.26 (premium 70B), 1.30 (standard 8B) on the demo day.
    assert len(ratios) == 4 and all(0.5 <= r <= 2.0 for r in ratios.values()), ratios
