"""Idle policies: `reserved` tiers carry their reserved pools' idle, `pro_rata` pools share theirs."""

import polars as pl
import pytest

from transforms.attribution.facts import idle_shares


def _direct(rows):
    return pl.LazyFrame(rows, schema={"request_id": pl.String, "pool_id": pl.String, "tier": pl.String,
                                      "direct_cost": pl.Float64}, orient="row")


def _pools(rows):
    return pl.LazyFrame(rows, schema={"pool_id": pl.String, "idle_cost": pl.Float64}, orient="row")


def test_reserved_versus_pro_rata(small_inventory):
    direct = _direct([("P1", "premium-h200", "premium", 10.0), ("P2", "premium-h200", "premium", 20.0),
                      ("S1", "standard-l40s", "standard", 5.0), ("S2", "standard-l40s", "standard", 15.0),
                      ("C1", "cloud-h100", "premium", 4.0), ("C2", "cloud-h100", "batch", 12.0)])
    pools = _pools([("premium-h200", 30.0), ("standard-l40s", 12.0), ("batch-l40s", 7.0), ("cloud-h100", 8.0)])
    req, pool = idle_shares(direct, pools, small_inventory)
    got = {r: (round(s, 12), p) for r, s, p in req.collect().iter_rows()}
    # premium-h200 is reserved by premium: its premium requests on the pool carry 30 by direct cost 10:20.
    # standard-l40s is pro rata: 12 by 5:15. cloud-h100 is pro rata among all its requests: 8 by 4:12.
    assert got == {"P1": (10.0, "reserved"), "P2": (20.0, "reserved"), "S1": (3.0, "pro_rata"),
                   "S2": (9.0, "pro_rata"), "C1": (2.0, "pro_rata"), "C2": (6.0, "pro_rata")}
    p = {r["pool_id"]: r for r in pool.collect().to_dicts()}
    # batch-l40s had idle capacity and no requests: it stays visible as unabsorbed idle.
    assert p["batch-l40s"]["unabsorbed"] == 7.0 and p["batch-l40s"]["absorbed"] == 0.0
    assert p["premium-h200"]["policy"] == "reserved" and p["premium-h200"]["reserved_by"] == "premium"
    assert sum(r["absorbed"] + r["unabsorbed"] for r in p.values()) == pytest.approx(57.0)


def test_reserved_idle_falls_back_to_the_tier_fleet_wide(small_inventory):
    # No premium request ran on the premium pool: the premium requests elsewhere carry its idle.
    direct = _direct([("C1", "cloud-h100", "premium", 1.0), ("C2", "cloud-h100", "premium", 3.0),
                      ("C3", "cloud-h100", "standard", 6.0)])
    req, _ = idle_shares(direct, _pools([("premium-h200", 40.0)]), small_inventory)
    assert dict((r, s) for r, s, _ in req.collect().iter_rows()) == {"C1": 10.0, "C2": 30.0}


def test_zero_direct_costs_share_equally(small_inventory):
    direct = _direct([("S1", "standard-l40s", "standard", 0.0), ("S2", "standard-l40s", "standard", 0.0)])
    req, _ = idle_shares(direct, _pools([("standard-l40s", 5.0)]), small_inventory)
    assert dict((r, s) for r, s, _ in req.collect().iter_rows()) == {"S1": 2.5, "S2": 2.5}
