"""The demo day's load against the capacity of the demo fleet (DOMAIN.md section 8), from the
simulator's own requests and the profiles it simulates from: each pool's peak hour reaches
50-90% of its capacity at the tier objectives, and the premium pool, kept warm with ~2x headroom,
powers nodes its demand does not need for a material share of the day."""

import math
from datetime import date

import numpy as np
import pytest

from fleetsim.profiles import node_capacity_tokens_per_s, replica_groups
from fleetsim.spec import Fleet, FleetSpec
from fleetsim.traffic import generate_node_requests, split_requests, tenant_weights
from pipelines.cli.parser import DEMO_DAY, DEMO_REQUESTS

SAFETY_MARGIN = 0.2  # nodes needed = ceil(demand / (capacity per node x (1 - margin))), at least 1


@pytest.fixture(scope="module")
def demo_day():
    """Per pool: output tokens per UTC hour of the demo day (by completion hour), node count and
    a node's capacity (output tokens/s at its replicas' batch limits)."""
    spec, seed = FleetSpec(), 7
    fleet = Fleet.build(spec, DEMO_REQUESTS)
    split = split_requests(fleet, DEMO_DAY, seed)
    tenants = tenant_weights(fleet, np.random.default_rng([seed, 0x7E4A47]))
    out = {}
    for pool in spec.pools:
        hourly, in_flight = np.zeros(24), {}
        for node in fleet.pool_nodes(pool.id):
            rng = np.random.default_rng(np.random.SeedSequence([seed, DEMO_DAY.toordinal(), node.index]).spawn(6)[0])
            r = generate_node_requests(fleet, node, DEMO_DAY, split[node.id], tenants, rng)
            hourly += np.bincount(r.end_ms // 3_600_000, weights=r.output_tokens, minlength=24)[:24]
            for g in replica_groups(spec, pool):
                busy_s = ((r.end_ms - r.gpu_start_ms) * (r.model == g.model_index)).sum() / 1000
                in_flight[g.model] = in_flight.get(g.model, 0.0) + busy_s / 86_400
        out[pool.id] = {"tokens_per_s": hourly / 3600, "nodes": len(fleet.pool_nodes(pool.id)),
                        "node_capacity": node_capacity_tokens_per_s(spec, pool), "in_flight": in_flight}
    return out


def test_the_demo_fleet_is_sized_by_the_day_it_serves():
    # 800,000 requests: premium 0.40 x 0.88 = 281,600 on H200 (2 nodes of 145,000 a day),
    # standard 0.57 x 0.64 = 291,840 on L40S (2 of 150,000), batch 0.03 = 24,000 (1 of 25,000),
    # the rented pool 0.40 x 0.12 + 0.57 x 0.36 = 0.2532 -> 202,560 (1 of 210,000).
    spec = FleetSpec()
    assert DEMO_REQUESTS == 800_000 and DEMO_DAY == date(2026, 11, 24)
    assert spec.pool_requests(DEMO_REQUESTS) == {"premium-h200": 281_600, "standard-l40s": 291_840,
                                                 "batch-l40s": 24_000, "cloud-h100": 202_560}
    assert spec.node_counts(DEMO_REQUESTS) == {"premium-h200": 2, "standard-l40s": 2, "batch-l40s": 1,
                                               "cloud-h100": 1}
    # A node's capacity at the objectives (profiles.csv at each replica group's batch limit):
    # premium 4 x 336.5 (70B on 2 x H200, batch 8) = 1,346.0; standard 4 x 503.8 (8B on an
    # L40S, batch 16) = 2,015.2; batch 4 x 521.8 (the 14B on an L40S, 32) = 2,087.2; rented
    # 2 x 1,486.7 (70B on 4 x H100, batch 32) = 2,973.4.
    caps = {p.id: node_capacity_tokens_per_s(spec, p) for p in spec.pools}
    assert caps == pytest.approx({"premium-h200": 1346.0, "standard-l40s": 2015.2, "batch-l40s": 2087.2,
                                  "cloud-h100": 2973.4})


def test_each_pools_peak_hour_reaches_50_to_90_percent_of_its_capacity(demo_day):
    peak = {p: d["tokens_per_s"].max() / (d["nodes"] * d["node_capacity"]) for p, d in demo_day.items()}
    # Measured on the demo day (seed 7): premium 0.543, standard 0.705, batch 0.736, rented 0.638.
    assert all(0.5 <= u <= 0.9 for u in peak.values()), peak
    assert peak["premium-h200"] < min(peak[p] for p in peak if p != "premium-h200")  # the warm headroom


def test_the_premium_pool_powers_nodes_its_demand_does_not_need(demo_day):
    """Nodes needed per hour = max(1, ceil(demand / (node capacity x 0.8))); surplus = powered -
    needed. The premium pool's two nodes are needed together only around its afternoon peak."""
    d = demo_day["premium-h200"]
    usable = d["node_capacity"] * (1 - SAFETY_MARGIN)  # 1,346.0 x 0.8 = 1,076.8 tokens/s a node
    needed = np.maximum(1, np.ceil(d["tokens_per_s"] / usable))
    surplus_share = (d["nodes"] - needed).sum() / (d["nodes"] * 24)
    # Demand above 1,076.8 tokens/s (0.40 of the 2 nodes) in 10 hours of the demo day: the other
    # 14 need 1 node of 2, so the surplus is 14 / 48 = 0.2917 of the pool's node-hours. Its
    # cost share is about that: amortization and colocation accrue per node-hour (energy less:
    # a surplus node idles), the over-provisioning mart (issue 17, branch i17a) prices it.
    assert needed.max() == 2 and needed.min() == 1
    assert surplus_share > 0.2, (surplus_share, needed)
    assert math.isclose(surplus_share, (24 - (needed == 2).sum()) / 48)
    assert (needed == 2).sum() == 10 and surplus_share == pytest.approx(14 / 48)


def test_mean_batch_per_replica_is_far_above_one_at_these_loads(demo_day):
    # Requests in flight over the day / replicas: the nodes batch (the old demo ran ~1 request at
    # a time on 8 GPUs). Premium 70B: 4 replicas on each of 2 nodes, limit 8: 2.64 on the demo
    # day; the rented pool's 2 replicas, limit 32: 8.57.
    d = demo_day["premium-h200"]
    assert 2 < d["in_flight"]["llama-3.1-70b-instruct"] / (4 * d["nodes"]) <= 8
    c = demo_day["cloud-h100"]
    assert 4 < c["in_flight"]["llama-3.1-70b-instruct"] / (2 * c["nodes"]) <= 32
