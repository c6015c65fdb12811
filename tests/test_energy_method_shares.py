"""Issue 16, item 13: every mart row that carries energy says how much of it was measured,
interpolated or estimated, and the report flags estimated energy per token.

A small day, computed by hand: one site (design PUE 1.25, no facility meter), two pools of one
node each. Node `a1` is read by its node meter, a gauge at a constant 1,000 W every 60 s from
one minute before the day to one minute after it (every slot `measured_gauge`). Node `b1` has no
meter: every slot is estimated at its `idle_w`, 500 W. Overhead is IT x 0.25 in every slot.

    r1  a1  premium   10:00:00-10:10:00  600 s x 1,000 W = 600,000 J IT + 150,000 = 750,000 J measured
    r2  b1  standard  11:00:00-11:10:00  600 s x   500 W = 300,000 J IT +  75,000 = 375,000 J estimated
    r3  a1  standard  12:00:00-12:15:00  900 s x 1,000 W = 900,000 J IT + 225,000 = 1,125,000 J measured
"""

from datetime import UTC, date, datetime, timedelta

import duckdb
import polars as pl
import pytest

from lake.store import Lake
from tests.hand_days import hand_inventory, tier
from transforms.attribution.day import DayInputs, day_outputs, finish_day, share_day
from transforms.attribution.grid import SlotGrid
from transforms.contracts import ASSETS, COST_LINES, POWER_READINGS, REQUESTS
from transforms.inventory import parse_inventory
from warehouse.access import open_warehouse
from warehouse.marts import build_day_marts
from warehouse.publish import publish
from warehouse.report.figures import QUERIES
from warehouse.tables import DAILY

DAY = date(2026, 11, 24)
T0 = datetime(2026, 11, 24, tzinfo=UTC)
OUTPUTS = ("request_costs", "node_slots", "pool_idle", "site_hours", "true_up", "unattributed", "reconciliation",
           "totals")
SHARES = ("energy_measured_share", "energy_interpolated_share", "energy_estimated_share")

INVENTORY = hand_inventory("""
sites:
  - {id: s1, kind: remote, cooling: air, design_pue: 1.25, timezone: UTC, tariff: flat}
pools:
  - {id: pool-a, site: s1, gpu_model: L40S, tiers: [premium, standard]}
  - {id: pool-b, site: s1, gpu_model: L40S, tiers: [standard]}
nodes:
  - {id: a1, pool: pool-a, gpus: 4, gpu_tdp_w: 350, idle_w: 400, nameplate_w: 2400}
  - {id: b1, pool: pool-b, gpus: 4, gpu_tdp_w: 350, idle_w: 500, nameplate_w: 2400}
meters:
  - {id: a1/bmc, scope: node, site: s1, source: ipmi, node: a1, sensor: Chassis Power}
""", [tier("premium", 1, 60, 1, 2), tier("standard", 2, 60, 1, 2)],
    {"m": 8})


def _requests() -> pl.DataFrame:
    rows = [("r1", "a1", "premium", "t1", 10 * 3600, 600, "pool-a"),
            ("r2", "b1", "standard", "t2", 11 * 3600, 600, "pool-b"),
            ("r3", "a1", "standard", "t2", 12 * 3600, 900, "pool-a")]
    return pl.DataFrame([{"request_id": i, "node_id": n, "model": "m", "tier": t, "tenant_id": ten,
                          "arrived_at": T0 + timedelta(seconds=s), "completed_at": T0 + timedelta(seconds=s + d),
                          "queue_s": 0.0, "ttft_s": 0.1, "prefill_s": None, "decode_s": None, "input_tokens": 100,
                          "cached_input_tokens": 0, "output_tokens": 1000, "response_bytes": None, "status": "ok",
                          "site_id": "s1", "pool_id": p} for i, n, t, ten, s, d, p in rows], schema=REQUESTS.schema)


def _readings() -> pl.DataFrame:
    return pl.DataFrame([("a1/bmc", "node", "s1", "a1", None, T0 + timedelta(seconds=60 * k), 1000.0, None, None, None,
                          False, "ipmi") for k in range(-1, 1442)], schema=POWER_READINGS.schema, orient="row")


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    inventory = parse_inventory(INVENTORY)
    inputs = DayInputs(_requests().lazy(), _readings().lazy(), pl.DataFrame(schema=COST_LINES.schema).lazy(),
                       pl.DataFrame(schema=ASSETS.schema).lazy())
    shared = share_day(inputs, inventory, SlotGrid(DAY, 60))
    facts, pool_idle = finish_day(shared, shared.per_request, inventory)
    out = day_outputs(shared, facts.collect().lazy(), pool_idle)
    lake = Lake(tmp_path_factory.mktemp("shares") / "lake")
    for name, frame in zip(OUTPUTS, pl.collect_all([getattr(out, n) for n in OUTPUTS]), strict=True):
        lake.write(frame, name, DAY)
    build_day_marts(lake, DAY, inventory)
    return {"lake": lake, **{t.name: pl.read_parquet(lake.mart_path(t.name, DAY)) for t in DAILY}}


def shares(df: pl.DataFrame, *keys: str) -> dict:
    return {r[:len(keys)]: r[len(keys):] for r in df.sort(*keys).select(*keys, *SHARES).rows()}


def test_request_facts_carry_their_estimated_and_interpolated_energy(day):
    rc = pl.read_parquet(day["lake"].partition_dir("request_costs", DAY)).sort("request_id")
    assert rc.select("request_id", "energy_method", "estimated_energy_j", "interpolated_energy_j").rows() == [
        ("r1", "measured", 0.0, 0.0), ("r2", "estimated", pytest.approx(375_000.0), 0.0), ("r3", "measured", 0.0, 0.0)]


def test_shares_per_pool_and_per_tier(day):
    # Pools: pool-a's requests (r1, r3) measured; pool-b's (r2) estimated at idle_w.
    assert shares(day["cost_by_model_pool_day"], "pool_id") == {
        ("pool-a",): (1.0, 0.0, 0.0), ("pool-b",): (0.0, 0.0, pytest.approx(1.0))}
    # premium: r1 only, measured. standard: r2 375,000 J estimated + r3 1,125,000 J measured =
    # 1,500,000 J: estimated 375,000 / 1,500,000 = 0.25, measured 0.75.
    tier = shares(day["cost_by_tier_day"], "tier")
    assert tier[("premium",)] == (1.0, 0.0, 0.0)
    assert tier[("standard",)] == pytest.approx((0.75, 0.0, 0.25), rel=1e-12)
    # Tenants: t1 = r1 (measured); t2 = r2 + r3, as standard.
    tenant = shares(day["cost_by_tenant_day"], "tenant_id")
    assert tenant[("t1",)] == (1.0, 0.0, 0.0) and tenant[("t2",)] == pytest.approx((0.75, 0.0, 0.25), rel=1e-12)
    for name in ("cost_by_tier_day", "cost_by_tenant_day", "cost_by_model_pool_day", "idle_by_pool_hour",
                 "idle_by_pool_day", "site_energy_hour"):
        total = day[name].select(pl.sum_horizontal(SHARES)).to_series()
        assert total.to_list() == pytest.approx([1.0] * day[name].height, abs=1e-12), name


def test_shares_of_idle_and_site_energy(day):
    # Idle energy: pool-a's (a1 outside r1 and r3) measured, pool-b's (b1 outside r2) estimated.
    assert shares(day["idle_by_pool_day"], "pool_id") == {
        ("pool-a",): (1.0, 0.0, 0.0), ("pool-b",): (0.0, 0.0, pytest.approx(1.0))}
    hours = shares(day["idle_by_pool_hour"], "pool_id", "hour")
    assert hours[("pool-b", T0 + timedelta(hours=11))] == (0.0, 0.0, pytest.approx(1.0))
    # The site's hour 11: a1 1,000 W x 3,600 s = 3.6e6 J measured, b1 500 W x 3,600 s = 1.8e6 J
    # estimated (overhead x 1.25 on both): estimated 1.8 / 5.4 = 1/3, measured 2/3.
    site = shares(day["site_energy_hour"], "site_id", "hour")
    assert site[("s1", T0 + timedelta(hours=11))] == pytest.approx((2 / 3, 0.0, 1 / 3), rel=1e-12)


def test_report_flags_estimated_energy_per_token(day):
    con = duckdb.connect()
    con.register("cost_by_model_pool_day", day["cost_by_model_pool_day"])
    frame = con.sql(QUERIES["energy_per_token_by_model_pool"], params={"lo": DAY, "hi": DAY}).pl()
    # pool-b: 375,000 J / 1,000 output tokens = 375 J per token, all of it estimated: flagged.
    assert frame.select("pool_id", "j_per_output_token", "energy_estimated_share", "energy_flag").rows() == [
        ("pool-a", pytest.approx(1_875_000 / 2000), 0.0, ""),
        ("pool-b", pytest.approx(375.0), pytest.approx(1.0), "estimated")]


def test_published_month_weights_the_days_shares_by_their_energy(day, tmp_path):
    inventory = parse_inventory(INVENTORY)
    wh = tmp_path / "wh" / "inferledger.duckdb"
    publish(day["lake"].root, inventory, wh, checks_to_run=[])
    con = open_warehouse(wh)
    try:
        month = con.sql(f"SELECT tenant_id, {', '.join(SHARES)} FROM cost_by_tenant_month ORDER BY tenant_id")\
            .fetchall()
    finally:
        con.close()
    # One day: the month's shares are the day's (t2: 0.75 measured, 0.25 estimated).
    assert month == [("t1", 1.0, 0.0, 0.0), ("t2", pytest.approx(0.75), 0.0, pytest.approx(0.25))]
