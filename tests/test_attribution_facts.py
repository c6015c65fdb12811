"""Idle policies: `reserved` tiers carry their reserved pools' idle, `pro_rata` pools share theirs.

Through the production path of step 9 (`day.finish_day`): `idle_by_policy` over the requests'
shares, then `request_facts`."""

from datetime import datetime, UTC

import polars as pl
import pytest

from transforms.attribution.facts import REQUEST_COSTS_SCHEMA, idle_by_policy, request_facts
from transforms.attribution.grid import COMPONENTS
from transforms.contracts import REQUESTS

T = datetime(2026, 11, 24, 12, tzinfo=UTC)


def _per_request(rows, egress=None):
    """Requests' shares as `occupancy.share_node_slots` and the egress step leave them: rows of
    (request_id, pool_id, tier, direct cost), the direct cost all energy (or split with egress)."""
    egress = egress or {}
    frame = pl.DataFrame(
        [{"request_id": r, "node_id": f"{pool}-01", "pool_id": pool, "site_id": "s", "tier": tier, "tenant_id": "t",
          "model": "m", "status": "ok", "arrived_at": T, "completed_at": T, "input_tokens": 1, "cached_input_tokens": 0,
          "output_tokens": 1, "response_bytes": None, "ttft_s": None, "it_energy_j": 1.0, "overhead_j": 0.0,
          **dict.fromkeys(COMPONENTS, 0.0), "energy_cost": direct - egress.get(r, 0.0),
          "egress_cost": egress.get(r, 0.0), "occupied_s": 1.0, "n_estimated": 0, "n_interpolated": 0,
          "n_design_pue": 0, "estimated_energy_j": 0.0, "interpolated_energy_j": 0.0,
          "infrastructure_cost": 0.0}
         for r, pool, tier, direct in rows],
        schema_overrides={c: REQUESTS.schema[c] for c in ("arrived_at", "completed_at", "response_bytes", "ttft_s")})
    return frame.lazy()


def _pools(rows):
    return pl.LazyFrame(rows, schema={"pool_id": pl.String, "idle_cost": pl.Float64}, orient="row")


def _idle(per_request, pools, inventory):
    factors, pool_idle = idle_by_policy(per_request, pools, inventory)
    facts = request_facts(per_request, factors, currency="USD", weight="time").collect()
    return facts, pool_idle.collect()


def test_reserved_versus_pro_rata(small_inventory):
    direct = _per_request([("P1", "premium-h200", "premium", 10.0), ("P2", "premium-h200", "premium", 20.0),
                           ("S1", "standard-l40s", "standard", 5.0), ("S2", "standard-l40s", "standard", 15.0),
                           ("C1", "cloud-h100", "premium", 4.0), ("C2", "cloud-h100", "batch", 12.0)])
    pools = _pools([("premium-h200", 30.0), ("standard-l40s", 12.0), ("batch-l40s", 7.0), ("cloud-h100", 8.0)])
    facts, pool = _idle(direct, pools, small_inventory)
    got = {r: (round(s, 12), p) for r, s, p in facts.select("request_id", "idle_share", "idle_policy").iter_rows()}
    # premium-h200 is reserved by premium: its premium requests on the pool carry 30 by direct cost 10:20.
    # standard-l40s is pro rata: 12 by 5:15. cloud-h100 is pro rata among all its requests: 8 by 4:12.
    assert got == {"P1": (10.0, "reserved"), "P2": (20.0, "reserved"), "S1": (3.0, "pro_rata"),
                   "S2": (9.0, "pro_rata"), "C1": (2.0, "pro_rata"), "C2": (6.0, "pro_rata")}
    assert (facts["fully_loaded_cost"] - facts["direct_cost"] - facts["idle_share"]).abs().max() == 0.0
    p = {r["pool_id"]: r for r in pool.to_dicts()}
    # batch-l40s had idle capacity and no requests: it stays visible as unabsorbed idle.
    assert p["batch-l40s"]["unabsorbed"] == 7.0 and p["batch-l40s"]["absorbed"] == 0.0
    assert p["premium-h200"]["policy"] == "reserved" and p["premium-h200"]["reserved_by"] == "premium"
    assert sum(r["absorbed"] + r["unabsorbed"] for r in p.values()) == pytest.approx(57.0)


def test_reserved_idle_falls_back_to_the_tier_fleet_wide(small_inventory):
    # No premium request ran on the premium pool: the premium requests elsewhere carry its idle;
    # the standard request carries none (its pool has no idle).
    direct = _per_request([("C1", "cloud-h100", "premium", 1.0), ("C2", "cloud-h100", "premium", 3.0),
                           ("C3", "cloud-h100", "standard", 6.0)])
    facts, _ = _idle(direct, _pools([("premium-h200", 40.0)]), small_inventory)
    assert dict(facts.select("request_id", "idle_share").iter_rows()) == {"C1": 10.0, "C2": 30.0, "C3": 0.0}
    assert dict(facts.select("request_id", "idle_policy").iter_rows()) == {"C1": "reserved", "C2": "reserved",
                                                                           "C3": "none"}


def test_zero_direct_costs_share_equally(small_inventory):
    direct = _per_request([("S1", "standard-l40s", "standard", 0.0), ("S2", "standard-l40s", "standard", 0.0)])
    facts, _ = _idle(direct, _pools([("standard-l40s", 5.0)]), small_inventory)
    assert dict(facts.select("request_id", "idle_share").iter_rows()) == {"S1": 2.5, "S2": 2.5}


def test_egress_counts_in_the_direct_cost_idle_is_shared_by(small_inventory):
    # S1's direct cost 5.0 is 2.0 of energy and 3.0 of egress: idle 12 still goes 5:15.
    direct = _per_request([("S1", "standard-l40s", "standard", 5.0), ("S2", "standard-l40s", "standard", 15.0)],
                          egress={"S1": 3.0})
    facts, _ = _idle(direct, _pools([("standard-l40s", 12.0)]), small_inventory)
    assert dict(facts.select("request_id", "direct_cost").iter_rows()) == {"S1": 5.0, "S2": 15.0}
    assert dict(facts.select("request_id", "idle_share").iter_rows()) == {"S1": 3.0, "S2": 9.0}


def test_facts_have_the_declared_columns(small_inventory):
    direct = _per_request([("S1", "standard-l40s", "standard", 1.0)])
    facts, _ = _idle(direct, _pools([("standard-l40s", 5.0)]), small_inventory)
    assert facts.schema == REQUEST_COSTS_SCHEMA
