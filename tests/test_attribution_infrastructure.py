"""Issue 16, item 11: infrastructure nodes (routers, gateways, CPU servers) are fleet members
whose costs are spread over the pools they serve (docs/attribution.md, "Infrastructure nodes").

The day, by hand: one site `s1` (flat tariff 0.10 USD/kWh, design PUE 1.25: overhead = IT x
0.25, no facility meter). Pools `pool-a` (node a1) and `pool-b` (nodes b1, b2), every serving
node metered at a constant 1,000 W. Router `rt` (0 GPUs, site s1, serving both pools by
default) metered at a constant 200 W, with an asset of 14,600 USD, straight-line over 12
months from 2026-01-01 (365 days): 40 USD a day.

The router's slot (60 s): 200 W x 60 s = 12,000 J IT + 3,000 J overhead, split in equal parts
over the 3 served nodes' same slot: 4,000 J IT + 1,000 J overhead each. Its day: 17,280,000 J IT
+ 4,320,000 J overhead = 21,600,000 J = 6 kWh = 0.60 USD; pool-a (1 of 3 nodes) gets 2 kWh,
pool-b (2 of 3) 4 kWh. Its depreciation: 40 / 3 USD a day per served node, 40 / 3 / 1,440 a slot.

Requests: q1 on a1 10:00-10:10 (10 slots), q2 on b1 11:00-11:05 (5 slots).
"""

import json
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from transforms.attribution.day import DayInputs, day_outputs, finish_day, share_day
from transforms.attribution.grid import SlotGrid
from transforms.attribution.reconcile import conservation_failures
from transforms.contracts import ASSETS, COST_LINES, POWER_READINGS, REQUESTS
from lake.readers import scan_text_lines
from tests.hand_days import hand_inventory, tier
from tests.test_ingest_requests import DAY as REQ_DAY
from tests.test_ingest_requests import detail_of, ingest, parse_otel_lines, reasons, record, write
from transforms.inventory import InventoryError, parse_inventory

DAY = date(2026, 11, 24)
T0 = datetime(2026, 11, 24, tzinfo=UTC)
OUTPUTS = ("request_costs", "node_slots", "pool_idle", "site_hours", "true_up", "unattributed", "reconciliation",
           "totals")

HEAD = hand_inventory("""
sites:
  - {id: s1, kind: remote, cooling: air, design_pue: 1.25, timezone: UTC, tariff: flat}
  - {id: s2, kind: remote, cooling: air, design_pue: 1.25, timezone: UTC, tariff: flat}
pools:
  - {id: pool-a, site: s1, gpu_model: L40S, tiers: [standard]}
  - {id: pool-b, site: s1, gpu_model: L40S, tiers: [standard]}
  - {id: pool-c, site: s2, gpu_model: L40S, tiers: [standard]}
""", [tier("standard", 2, 60, 1, 2)],
    {"m": 8})
GPU = "gpus: 4, gpu_tdp_w: 200, idle_w: 400, nameplate_w: 2400"
NODES = f"""
nodes:
  - {{id: a1, pool: pool-a, {GPU}}}
  - {{id: b1, pool: pool-b, {GPU}}}
  - {{id: b2, pool: pool-b, {GPU}}}
  - {{id: c1, pool: pool-c, {GPU}}}
  - {{id: rt, site: s1, gpus: 0, idle_w: 150, nameplate_w: 400}}
meters:
""" + "".join(f"  - {{id: {n}/bmc, scope: node, site: {s}, source: ipmi, node: {n}, sensor: Chassis Power}}\n"
              for n, s in (("a1", "s1"), ("b1", "s1"), ("b2", "s1"), ("c1", "s2"), ("rt", "s1")))


def _readings() -> pl.DataFrame:
    rows = [(f"{n}/bmc", "node", s, n, None, T0 + timedelta(seconds=60 * k), w, None, None, None, False, "ipmi")
            for n, s, w in (("a1", "s1", 1000.0), ("b1", "s1", 1000.0), ("b2", "s1", 1000.0), ("c1", "s2", 1000.0),
                            ("rt", "s1", 200.0))
            for k in range(-1, 1442)]
    return pl.DataFrame(rows, schema=POWER_READINGS.schema, orient="row")


def _requests() -> pl.DataFrame:
    rows = [("q1", "a1", 10 * 3600, 600, "pool-a"), ("q2", "b1", 11 * 3600, 300, "pool-b")]
    return pl.DataFrame([{"request_id": i, "node_id": n, "model": "m", "tier": "standard", "tenant_id": "t",
                          "arrived_at": T0 + timedelta(seconds=s), "completed_at": T0 + timedelta(seconds=s + d),
                          "queue_s": 0.0, "ttft_s": 0.1, "prefill_s": None, "decode_s": None, "input_tokens": 10,
                          "cached_input_tokens": 0, "output_tokens": 100, "response_bytes": None, "status": "ok",
                          "site_id": "s1", "pool_id": p} for i, n, s, d, p in rows], schema=REQUESTS.schema)


def _assets() -> pl.DataFrame:
    return pl.DataFrame([("asset-rt", "rt", 14600.0, "USD", date(2026, 1, 1), 12, 0.0, "straight_line", None, "s1")],
                        schema=ASSETS.schema, orient="row")


@pytest.fixture(scope="module")
def day():
    inventory = parse_inventory(HEAD + NODES)
    inputs = DayInputs(_requests().lazy(), _readings().lazy(), pl.DataFrame(schema=COST_LINES.schema).lazy(),
                       _assets().lazy())
    shared = share_day(inputs, inventory, SlotGrid(DAY, 60))
    facts, pool_idle = finish_day(shared, shared.per_request, inventory)
    out = day_outputs(shared, facts.collect().lazy(), pool_idle)
    return dict(zip(OUTPUTS, pl.collect_all([getattr(out, n) for n in OUTPUTS]), strict=True))


def test_router_energy_is_spread_in_equal_parts_over_the_served_node_slots(day):
    ns = day["node_slots"]
    assert "rt" not in ns["node_id"].to_list() and "c1" in ns["node_id"].to_list()
    # a1's slot: its own 1,000 W x 60 s = 60,000 J, plus 12,000 / 3 = 4,000 J of the router.
    a1 = ns.filter((pl.col("node_id") == "a1") & (pl.col("slot") == 0)).row(0, named=True)
    assert (a1["it_energy_j"], a1["infra_it_energy_j"]) == (pytest.approx(64_000.0), pytest.approx(4_000.0))
    assert a1["infra_overhead_j"] == pytest.approx(1_000.0)
    # c1 is in another site: the router (site s1) serves none of its slots.
    assert ns.filter(pl.col("node_id") == "c1")["infra_it_energy_j"].sum() == 0.0
    # Per pool, the router's energy of the day: pool-a 1/3 of 21,600,000 J = 7,200,000 J (2 kWh,
    # 0.20 USD at 0.10), pool-b 2/3 = 14,400,000 J (4 kWh, 0.40 USD).
    per_pool = (ns.group_by("pool_id").agg((pl.col("infra_it_energy_j") + pl.col("infra_overhead_j")).sum())
                .sort("pool_id").rows())
    assert per_pool == [("pool-a", pytest.approx(7.2e6)), ("pool-b", pytest.approx(14.4e6)), ("pool-c", 0.0)]
    # The energy cost of a served node-slot is its energy at the price: a1's slot 0 is 64,000 J
    # IT + 16,000 J overhead = 80,000 J = 0.0222... kWh x 0.10 USD.
    assert a1["energy_cost"] == pytest.approx(80_000 / 3.6e6 * 0.1, rel=1e-12)


def test_requests_pay_the_router_share_of_their_slots(day):
    rc = {r["request_id"]: r for r in day["request_costs"].iter_rows(named=True)}
    # q1: 10 slots of a1 = own 600,000 J IT + router 10 x 4,000 = 40,000 J; overhead x 0.25; energy
    # 800,000 J = 0.2222 kWh x 0.10 = 0.022222 USD; the router's depreciation 40 / 3 x 10 / 1,440.
    assert rc["q1"]["it_energy_j"] == pytest.approx(640_000.0)
    assert rc["q1"]["energy_cost"] == pytest.approx(800_000 / 3.6e6 * 0.1, rel=1e-12)
    assert rc["q1"]["amortization_cost"] == pytest.approx(40 / 3 * 10 / 1440, rel=1e-12)
    # q2: 5 slots of b1.
    assert rc["q2"]["it_energy_j"] == pytest.approx(300_000 + 5 * 4_000.0)
    assert rc["q2"]["amortization_cost"] == pytest.approx(40 / 3 * 5 / 1440, rel=1e-12)


def test_router_lines_are_conserved(day):
    rec = {(r["source"], r["line_id"]): r for r in day["reconciliation"].iter_rows(named=True)}
    assert conservation_failures(day["reconciliation"]).is_empty()
    # Its meter: 17,280,000 J; occupied served node-slots took a third of 15 of its slots:
    # 15 x 12,000 / 3 = 60,000 J to requests, the rest idle.
    it = rec[("node_energy", "rt:2026-11-24")]
    assert (it["source_amount"], it["to_requests"], it["to_idle"]) == (
        pytest.approx(17_280_000.0), pytest.approx(60_000.0), pytest.approx(17_220_000.0))
    oh = rec[("facility_overhead", "rt:2026-11-24")]
    assert (oh["source_amount"], oh["to_requests"]) == (pytest.approx(4_320_000.0), pytest.approx(15_000.0))
    # a1's own meter line is its own energy only: 1,000 W x 86,400 s.
    assert rec[("node_energy", "a1:2026-11-24")]["source_amount"] == pytest.approx(86_400_000.0)
    # The asset: 40 USD, 40 x 15 / 4,320 = 0.138888... to requests, the rest to idle.
    asset = rec[("asset_register", "asset-rt:2026-11-24")]
    assert (asset["source_amount"], asset["to_requests"], asset["to_idle"]) == (
        pytest.approx(40.0), pytest.approx(40 * 15 / 4320), pytest.approx(40 - 40 * 15 / 4320))
    totals = day["totals"]
    assert totals["requests_difference"].abs().max() < 1e-6 and totals["idle_difference"].abs().max() < 1e-6


def test_idle_of_the_served_pools_carries_the_router(day):
    # pool-a idle: a1's 1,430 idle slots of its own 75,000 J + the router's 5,000 J, at 0.10 USD/kWh,
    # plus the router's depreciation 40 / 3 x 1,430 / 1,440.
    idle = {r["pool_id"]: r for r in day["pool_idle"].iter_rows(named=True)}
    assert idle["pool-a"]["idle_energy_cost"] == pytest.approx(1430 * 80_000 / 3.6e6 * 0.1, rel=1e-12)
    assert idle["pool-a"]["idle_amortization_cost"] == pytest.approx(40 / 3 * 1430 / 1440, rel=1e-12)
    # pool-b: two nodes, 2,880 - 5 idle slots.
    assert idle["pool-b"]["idle_amortization_cost"] == pytest.approx(40 / 3 * 2875 / 1440, rel=1e-12)


def test_serves_narrows_the_pools_and_the_key_follows():
    inventory = parse_inventory(HEAD + NODES.replace("nameplate_w: 400}", "nameplate_w: 400, serves: [pool-b]}"))
    inputs = DayInputs(_requests().lazy(), _readings().lazy(), pl.DataFrame(schema=COST_LINES.schema).lazy(),
                       _assets().lazy())
    shared = share_day(inputs, inventory, SlotGrid(DAY, 60))
    ns = shared.node_out.collect()
    # Two served nodes: 6,000 J IT of each router slot to each of b1, b2; none to a1.
    got = ns.filter(pl.col("slot") == 0).sort("node_id").select("node_id", "infra_it_energy_j").rows()
    assert got == [("a1", 0.0), ("b1", pytest.approx(6_000.0)), ("b2", pytest.approx(6_000.0)), ("c1", 0.0)]


def test_requests_logged_on_a_router_are_quarantined(tmp_path):
    # The production path of a request log: OTel JSON Lines of site s1, parsed, judged, classified.
    inventory = parse_inventory(HEAD + NODES)
    lines = [json.dumps(record(**{"server.address": node, "inferledger.tier": "standard", "gen_ai.request.model": "m"}))
             for node in ("a1", "rt")]
    path = write(tmp_path, "a.jsonl", lines, f"{REQ_DAY.isoformat()}/s1/requests")
    rows, quarantine, _ = ingest(parse_otel_lines(scan_text_lines([path], tmp_path), inventory, "s1"), REQ_DAY)
    assert rows["node_id"].to_list() == ["a1"]
    assert reasons(quarantine) == [(2, "node_runs_no_requests")]
    assert detail_of(quarantine, 2).startswith("node rt (`server.address`) is an infrastructure node")


@pytest.mark.parametrize(("change", "message"), [
    ("  - {id: rt, gpus: 0, idle_w: 150, nameplate_w: 400}", "infrastructure node 'rt' needs `site:`"),
    ("  - {id: rt, site: s1, gpus: 0, idle_w: 150, nameplate_w: 400, serves: [pool-c]}",
     "pool 'pool-c' is in site 's2'"),
    ("  - {id: rt, site: s1, gpus: 0, idle_w: 150, nameplate_w: 400, serves: [pool-z]}", "unknown pool 'pool-z'"),
    ("  - {id: rt, pool: pool-a, gpus: 0, role: serving, idle_w: 150, nameplate_w: 400}",
     "serving node 'rt' needs `pool:`, `gpus:` (1 or more)"),
    ("  - {id: rt, site: s2, gpus: 0, idle_w: 150, nameplate_w: 400}\n  - {id: rt2, site: s3, gpus: 0, idle_w: 1, "
     "nameplate_w: 4}", "nodes[5].site: unknown site 's3'"),
])
def test_inventory_refuses_an_infrastructure_node_it_cannot_place(change, message):
    text = HEAD + NODES.replace("  - {id: rt, site: s1, gpus: 0, idle_w: 150, nameplate_w: 400}", change)
    with pytest.raises(InventoryError, match=None) as err:
        parse_inventory(text)
    assert message in str(err.value)


def test_request_costs_say_how_much_came_from_infrastructure(day):
    rc = {r["request_id"]: r for r in day["request_costs"].iter_rows(named=True)}
    # q1: the router's energy in its 10 slots, 10 x 5,000 J = 50,000 J at 0.10 USD/kWh, plus its
    # depreciation 40 / 3 x 10 / 1,440: 0.0013889 + 0.0925926 = 0.0939815 USD, within the components.
    assert rc["q1"]["infrastructure_cost"] == pytest.approx(50_000 / 3.6e6 * 0.1 + 40 / 3 * 10 / 1440, rel=1e-12)
    assert rc["q2"]["infrastructure_cost"] == pytest.approx(25_000 / 3.6e6 * 0.1 + 40 / 3 * 5 / 1440, rel=1e-12)
    # The fleet's requests and idle node-slots hold the router's whole day: 0.60 USD of energy + 40 USD.
    total = day["request_costs"]["infrastructure_cost"].sum() + day["node_slots"]["idle_infrastructure_cost"].sum()
    assert total == pytest.approx(0.60 + 40.0, rel=1e-12)


def test_an_unmetered_router_is_estimated_at_its_idle_w_and_its_share_shows_as_estimated():
    # No meter: 150 W (idle_w) x 60 s = 9,000 J a slot, 3,000 J IT + 750 J overhead to each of a1,
    # b1, b2, all of it estimated (their own energy is measured): 3,750 J of estimated energy per slot.
    inventory = parse_inventory(HEAD + NODES.replace(
        "  - {id: rt/bmc, scope: node, site: s1, source: ipmi, node: rt, sensor: Chassis Power}\n", ""))
    inputs = DayInputs(_requests().lazy(), _readings().filter(pl.col("node_id") != "rt").lazy(),
                       pl.DataFrame(schema=COST_LINES.schema).lazy(), _assets().lazy())
    shared = share_day(inputs, inventory, SlotGrid(DAY, 60))
    got = (shared.node_out.collect().filter(pl.col("slot") == 0).sort("node_id")
           .select("node_id", "infra_it_energy_j", "estimated_energy_j", "energy_method").rows())
    assert got == [("a1", 3_000.0, 3_750.0, "measured_gauge"), ("b1", 3_000.0, 3_750.0, "measured_gauge"),
                   ("b2", 3_000.0, 3_750.0, "measured_gauge"), ("c1", 0.0, 0.0, "measured_gauge")]
    # Its line: 150 W x 86,400 s = 12,960,000 J; q1 (10 slots) and q2 (5 slots) took 15 x 3,000 J.
    line = shared.reconciliation.collect().filter(pl.col("line_id") == "rt:2026-11-24",
                                                  pl.col("component") == "it_energy_j").row(0, named=True)
    assert (line["source_amount"], line["to_requests"]) == (pytest.approx(12_960_000.0), pytest.approx(45_000.0))
