"""The capacity marts on a two-pool day written out by hand (2026-03-10, hours 10:00 and 11:00 UTC).

Fleet (inventory below): pool `prem` (metro, H200, 4 nodes p1-p4 of 8 GPUs, idle 1,400 W each,
safety margin 0.25, redundancy minimum 2) serves tier `premium` (TTFT p95 <= 0.5 s, E2E <= 8 s) with
llama-3.1-70b-instruct; pool `std` (remote, L40S, 2 nodes s1-s2 of 4 GPUs, idle 420 W, the defaults:
margin 0.2, minimum 1) serves `standard` (TTFT <= 2 s, E2E <= 30 s) with qwen3-32b.

Requests (every minute of the hour, on every node of the pool, arriving at the minute's start):
- prem, 10:00: 36 per node-minute, 1,000 output tokens each, TTFT 0.4 s, E2E 8.4 s (decode 8 s), 300 J IT each;
  11:00: 60 per node-minute, the same.
  Demand: 10:00: 4 nodes x 60 min x 36 x 1,000 tokens / 3,600 s = 2,400 tokens/s; 11:00: 4,000 tokens/s.
- std, 10:00 only: 36 per node-minute, 250 tokens, TTFT 1 s, E2E 16 s: 2 x 60 x 36 x 250 / 3,600 = 300 tokens/s.

Capacity. prem's telemetry: every request misses E2E 8 s (8.4 s): no load bucket meets the objective, so
the profile decides. Its H200 profile of meta-llama/Llama-3.1-70B-Instruct at 4 GPUs per replica (2 replicas
per node): batches 2, 4, 5, 64 at 150, 280, 800, 1,000 tokens/s, no TTFT (taken at the objective, 0.5 s); the
p95 answer is 1,000 tokens (all are), the E2E estimates 0.5 + b / tokens/s x 1,000: batch 2 0.5 + 13.33 s,
4 0.5 + 14.29 s, 5 0.5 + 6.25 = 6.75 s, 64 0.5 + 64 s: batch 5 is the largest within 8 s -> 800 tokens/s x 2 =
1,600 tokens/s per node (profile_reference). std's telemetry: node-minutes at 36 x 16 / 60 = 9.6 in flight
(bucket 8), 120 of them, all within the objectives, none missing: a lower bound of 36 x 250 / 60 = 150 tokens/s
per node; the assumed L40S profile of qwen3-32b at 2 GPUs per replica (2 replicas), batch 16 at 300 tokens/s
(E2E estimate 2 + 16 / 300 x 250 = 15.33 s <= 30 s) gives 600 tokens/s per node, above the lower bound:
profile_assumed.

Node-hour costs (node-slots of one hour each): prem energy 0.50, demand 0.10, amortization 2.00, fixed 0.40 on
7.2 MJ of IT energy; std energy 0.10, amortization 0.50, fixed 0.05 on 1.8 MJ.
"""

from datetime import UTC, date, datetime
from types import SimpleNamespace

import duckdb
import polars as pl
import pytest

from lake.store import Lake
from tests.hand_days import hand_inventory, tier
from tests.test_warehouse_marts import MONEY, write_day
from transforms.contracts import PERFORMANCE_PROFILES
from transforms.inventory import parse_inventory
from warehouse.marts import build_day_marts
from warehouse.report.charts import CHARTS
from warehouse.report.figures import QUERIES, _frame
from warehouse.report.page import _after_chart
from warehouse.tables import BY_NAME

DAY = date(2026, 3, 10)
INVENTORY = hand_inventory("""
sites:
  - {id: metro-east, kind: metro, cooling: liquid, design_pue: 1.15, timezone: UTC, tariff: flat}
  - {id: remote-plains, kind: remote, cooling: air, design_pue: 1.45, timezone: UTC, tariff: flat}
pools:
  - {id: prem, site: metro-east, gpu_model: H200, tiers: [premium], safety_margin: 0.25, redundancy_min_nodes: 2}
  - {id: std, site: remote-plains, gpu_model: L40S, tiers: [standard]}
nodes:
  - {id: p1, pool: prem, gpus: 8, gpu_tdp_w: 700, idle_w: 1400, nameplate_w: 10200}
  - {id: p2, pool: prem, gpus: 8, gpu_tdp_w: 700, idle_w: 1400, nameplate_w: 10200}
  - {id: p3, pool: prem, gpus: 8, gpu_tdp_w: 700, idle_w: 1400, nameplate_w: 10200}
  - {id: p4, pool: prem, gpus: 8, gpu_tdp_w: 700, idle_w: 1400, nameplate_w: 10200}
  - {id: s1, pool: std, gpus: 4, gpu_tdp_w: 350, idle_w: 420, nameplate_w: 2400}
  - {id: s2, pool: std, gpus: 4, gpu_tdp_w: 350, idle_w: 420, nameplate_w: 2400}
""", [tier("premium", 0.5, 8, 3.0, 12.0), tier("standard", 2.0, 30, 0.8, 3.2)],
    {"llama-3.1-70b-instruct": 70, "qwen3-32b": 32})


def at(h, m=0, s=0.0):
    return datetime(2026, 3, 10, h, m, tzinfo=UTC).timestamp() * 1e6 + s * 1e6


def requests(pool, nodes, model, tier, hour, per_minute, tokens, ttft, e2e, it_j) -> pl.DataFrame:
    """`per_minute` requests on each node in each minute of `hour`, arriving at the minute's start."""
    grid = pl.DataFrame({"node_id": nodes}).join(pl.DataFrame({"minute": range(60)}), how="cross").join(
        pl.DataFrame({"i": range(per_minute)}), how="cross")
    start = (pl.lit(at(hour)) + pl.col("minute") * 60e6).cast(pl.Int64)
    return grid.select(
        pl.format("{}-{}-{}-{}", "node_id", pl.lit(hour), "minute", "i").alias("request_id"), "node_id",
        pl.lit(pool).alias("pool_id"), pl.lit(tier).alias("tier"), pl.lit(model).alias("model"),
        start.cast(pl.Datetime("us", "UTC")).alias("arrived_at"),
        (start + int(e2e * 1e6)).cast(pl.Datetime("us", "UTC")).alias("completed_at"),
        pl.lit(tokens).alias("output_tokens"), pl.lit(ttft).alias("ttft_s"), pl.lit(e2e).alias("occupied_s"),
        pl.lit(it_j).alias("it_energy_j"))


def request_costs() -> pl.DataFrame:
    df = pl.concat([
        requests("prem", ["p1", "p2", "p3", "p4"], "llama-3.1-70b-instruct", "premium", 10, 36, 1000, 0.4, 8.4, 300.0),
        requests("prem", ["p1", "p2", "p3", "p4"], "llama-3.1-70b-instruct", "premium", 11, 60, 1000, 0.4, 8.4, 300.0),
        requests("std", ["s1", "s2"], "qwen3-32b", "standard", 10, 36, 250, 1.0, 16.0, 100.0),
    ])
    cols = BY_NAME["request_costs"].columns
    fill = {"site_id": pl.lit("metro-east"), "tenant_id": pl.lit("t"), "status": pl.lit("ok"),
            "input_tokens": pl.lit(100), "cached_input_tokens": pl.lit(0), "date": pl.lit(DAY),
            "currency": pl.lit("USD"), "weight": pl.lit("time"), "energy_method": pl.lit("measured"),
            "pue_method": pl.lit("measured"), "idle_policy": pl.lit("pro_rata"),
            "response_bytes": pl.lit(None, pl.Int64)}
    return df.with_columns(**{c: fill.get(c, pl.lit(0.0)) for c in cols if c not in df.columns}).select(list(cols))


def node_slots() -> pl.DataFrame:
    # node, pool, site, hour, it J, energy, demand, amortization, fixed (cloud 0, overhead 0)
    rows = [(n, "prem", "metro-east", h, 7.2e6, 0.50, 0.10, 2.00, 0.40) for n in ("p1", "p2", "p3", "p4")
            for h in (10, 11)]
    rows += [(n, "std", "remote-plains", h, 1.8e6, 0.10, 0.0, 0.50, 0.05) for n in ("s1", "s2") for h in (10, 11)]
    df = pl.DataFrame(rows, schema=["node_id", "pool_id", "site_id", "h", "it_energy_j", "energy_cost", "demand_cost",
                                    "amortization_cost", "fixed_cost"], orient="row")
    df = df.with_columns(pl.col("h").map_elements(lambda h: datetime(2026, 3, 10, h, tzinfo=UTC),
                                                  return_dtype=pl.Datetime("us", "UTC")).alias("slot_start"),
                         pl.lit(True).alias("occupied"), pl.lit(0.0).alias("overhead_j"),
                         pl.lit(0.0).alias("cloud_cost"),
                         pl.lit(0.0).alias("estimated_energy_j"), pl.lit(0.0).alias("interpolated_energy_j"))
    amounts = ["it_energy_j", "overhead_j", *MONEY, "estimated_energy_j", "interpolated_energy_j"]
    return df.drop("h").with_columns(*[pl.lit(0.0).alias(f"idle_{c}") for c in amounts])


def profiles() -> pl.DataFrame:
    rows = [("H200", "meta-llama/Llama-3.1-70B-Instruct", 4, b, tps, w, None, itl, "reference", "test")
            for b, tps, w, itl in ((2, 150.0, 1200.0, 5.0), (4, 280.0, 1400.0, 5.5), (5, 800.0, 2400.0, 7.0),
                                   (64, 1000.0, 2800.0, 9.0))]
    rows += [("L40S", "qwen3-32b", 2, 16, 300.0, 600.0, None, 60.0, "assumed", "scaled")]
    return pl.DataFrame(rows, schema=PERFORMANCE_PROFILES.schema, orient="row")


def build(lake: Lake, with_profiles: bool) -> dict[str, pl.DataFrame]:
    write_day(lake)  # the other attribution outputs of test_warehouse_marts' day; ours replace two of them
    lake.write(request_costs(), "request_costs", DAY)
    lake.write(node_slots(), "node_slots", DAY)
    if with_profiles:
        lake.write(profiles(), "performance_profiles", DAY)
    build_day_marts(lake, DAY, parse_inventory(INVENTORY))
    return {t: pl.read_parquet(lake.mart_path(t, DAY)) for t in
            ("capacity_by_pool_hour", "overprovisioning_by_pool_day", "efficiency_by_model_pool_day")}


@pytest.fixture(scope="module")
def marts(tmp_path_factory):
    return build(Lake(tmp_path_factory.mktemp("capacity") / "lake"), with_profiles=True)


def test_capacity_by_pool_hour(marts):
    df = marts["capacity_by_pool_hour"]
    got = df.select("pool_id", pl.col("hour").dt.hour(), "demand_output_tokens_per_s",
                    "capacity_output_tokens_per_s_per_node", "capacity_source", "nodes_powered", "utilization",
                    "nodes_needed", "surplus_nodes").rows()
    assert got == [
        # prem 10:00: 2,400 / 1,600 = 1.5 node-equivalents / (1 - 0.25) = 2.0 -> 2 (= the minimum 2);
        # utilization 2,400 / (1,600 x 4) = 0.375; surplus 4 - 2 = 2.
        ("prem", 10, pytest.approx(2400.0), 1600.0, "profile_reference", 4.0, pytest.approx(0.375), 2, 2.0),
        # prem 11:00: 4,000 / 1,600 = 2.5 / 0.75 = 3.33 -> 4; utilization 4,000 / 6,400 = 0.625; no surplus.
        ("prem", 11, pytest.approx(4000.0), 1600.0, "profile_reference", 4.0, pytest.approx(0.625), 4, 0.0),
        # std 10:00: 300 / 600 = 0.5 / 0.8 = 0.625 -> 1; utilization 300 / 1,200 = 0.25; surplus 1.
        ("std", 10, pytest.approx(300.0), 600.0, "profile_assumed", 2.0, pytest.approx(0.25), 1, 1.0),
        # std 11:00: no demand: the redundancy minimum, 1; surplus 1.
        ("std", 11, 0.0, 600.0, "profile_assumed", 2.0, 0.0, 1, 1.0)]
    # Surplus cost. prem 10:00, 2 surplus nodes: energy at idle power 1,400 W x 3,600 s = 5.04 MJ per node at the
    # hour's 2.00 / 28.8 MJ = 0.35 each -> 0.70; amortization 2 x 8.00 / 4 = 4.00; fixed 2 x 1.60 / 4 = 0.80;
    # total 5.50 of the pool-hour's 4 x 3.00 = 12.00. std, 1 surplus node: 420 W x 3,600 s = 1.512 MJ at
    # 0.20 / 3.6 MJ -> 0.084; amortization 1.00 / 2 = 0.50; fixed 0.10 / 2 = 0.05; total 0.634 of 1.30.
    assert df.select("surplus_energy_cost", "surplus_amortization_cost", "surplus_cloud_cost", "surplus_fixed_cost",
                     "surplus_cost", "pool_cost").rows() == [
        tuple(pytest.approx(v, abs=1e-12) for v in r) for r in [
            (0.70, 4.00, 0.0, 0.80, 5.50, 12.00), (0.0, 0.0, 0.0, 0.0, 0.0, 12.00),
            (0.084, 0.50, 0.0, 0.05, 0.634, 1.30), (0.084, 0.50, 0.0, 0.05, 0.634, 1.30)]]
    # Conservation: no surplus component above the pool-hour's.
    assert (df["surplus_cost"] <= df["pool_cost"]).all()


def test_overprovisioning_by_pool_day(marts):
    df = marts["overprovisioning_by_pool_day"]
    assert df.select("pool_id", "node_hours_powered", "node_hours_needed", "surplus_node_hours", "surplus_cost",
                     "pool_cost", "surplus_cost_share", pl.col("peak_hour").dt.hour(), "peak_nodes_needed",
                     "surplus_node_hours_at_peak_sizing", "surplus_cost_at_peak_sizing",
                     "capacity_unknown_hours").rows() == [
        # prem: 8 node-hours powered, 2 + 4 needed, 2 surplus costing 5.50 of 24.00 (22.9%); the peak needs 4
        # (11:00): sized for it, no surplus.
        ("prem", 8.0, 6.0, 2.0, pytest.approx(5.50), pytest.approx(24.0), pytest.approx(5.50 / 24.0), 11, 4, 0.0,
         0.0, 0),
        # std: 4 powered, 1 + 1 needed, 2 surplus at 0.634 each = 1.268 of 2.60 (48.8%); peak 1 (10:00 first);
        # sized for it: 2 - 1 each hour = 2 node-hours, 1.268.
        ("std", 4.0, 2.0, 2.0, pytest.approx(1.268), pytest.approx(2.60), pytest.approx(1.268 / 2.60), 10, 1, 2.0,
         pytest.approx(1.268), 0)]


def test_efficiency_by_model_pool_day(marts):
    df = marts["efficiency_by_model_pool_day"]
    # prem: 300 J / 1,000 tokens = 0.3 J measured. In flight per node: 36 x 8.4 / 60 = 5.04 (10:00) and
    # 60 x 8.4 / 60 = 8.4 (11:00), 240 node-minutes each: mean 6.72 per node, 3.36 per replica (2 per node).
    # Profile J/token: batch 2: 1,200 / 150 = 8.0, batch 4: 1,400 / 280 = 5.0 -> at 3.36:
    # 8.0 + (5.0 - 8.0) x (3.36 - 2) / 2 = 5.96 J; gap 0.3 - 5.96 = -5.66; ratio 0.3 / 5.96.
    # std: 100 J / 250 = 0.4 J; 9.6 in flight per node, 4.8 per replica, below the profile's only batch (16):
    # its 600 / 300 = 2.0 J (below_range).
    assert df.select("pool_id", "model", "replicas_per_node", "observed_batch", "measured_it_j_per_output_token",
                     "profile_j_per_output_token", "profile_point", "profile_source", "gap_j_per_output_token",
                     "measured_to_profile").rows() == [
        ("prem", "llama-3.1-70b-instruct", 2, pytest.approx(3.36), pytest.approx(0.3), pytest.approx(5.96),
         "interpolated", "reference", pytest.approx(-5.66), pytest.approx(0.3 / 5.96)),
        ("std", "qwen3-32b", 2, pytest.approx(4.8), pytest.approx(0.4), pytest.approx(2.0), "below_range", "assumed",
         pytest.approx(-1.6), pytest.approx(0.2))]


def test_without_profiles_capacity_is_telemetry_or_unknown(tmp_path):
    marts = build(Lake(tmp_path / "lake"), with_profiles=False)
    df = marts["capacity_by_pool_hour"]
    # prem: no bucket met its objectives, no profile: unknown, no nodes needed, no surplus (never invented).
    # std: the telemetry's lower bound, 150 tokens/s per node: 10:00 300 / 150 = 2 / 0.8 = 2.5 -> 3 nodes
    # needed of 2 powered (a lower bound overstates what is needed: no surplus is claimed); 11:00: the minimum 1.
    assert df.select("pool_id", "capacity_output_tokens_per_s_per_node", "capacity_source", "nodes_needed",
                     "surplus_nodes", "surplus_cost").rows() == [
        ("prem", None, "unknown", None, None, None), ("prem", None, "unknown", None, None, None),
        ("std", pytest.approx(150.0), "telemetry_lower_bound", 3, 0.0, 0.0),
        ("std", pytest.approx(150.0), "telemetry_lower_bound", 1, 1.0, pytest.approx(0.634))]
    day = marts["overprovisioning_by_pool_day"]
    assert day.select("pool_id", "capacity_unknown_hours", "surplus_node_hours", "peak_hour").rows() == [
        ("prem", 2, None, None), ("std", 0, 1.0, datetime(2026, 3, 10, 10, tzinfo=UTC))]
    assert marts["efficiency_by_model_pool_day"]["profile_j_per_output_token"].to_list() == [None, None]


def test_report_capacity_section_on_the_hand_computed_day(marts):
    # The report's capacity frames (warehouse.report.figures.QUERIES) over these marts, and the section
    # the page writes under the utilization chart.
    con = duckdb.connect()
    for name, df in marts.items():
        con.register(name, df.to_arrow())
    con.register("idle_by_pool_day", pl.DataFrame({"date": [DAY], "pool_id": ["std"], "idle_cost": [0.25]}).to_arrow())
    frames = {n: _frame(con, QUERIES[n], DAY, DAY)
              for n in ("utilization_by_pool_hour", "overprovisioning_by_pool", "efficiency_vs_profile")}
    assert frames["overprovisioning_by_pool"].select(
        "pool_id", "capacity_source", "surplus_node_hours", "surplus_cost", "pool_cost", "surplus_cost_share",
        "no_request_idle_cost").rows() == [
        ("prem", "profile_reference", 2.0, pytest.approx(5.50), pytest.approx(24.0), pytest.approx(5.50 / 24), None),
        ("std", "profile_assumed", 2.0, pytest.approx(1.268), pytest.approx(2.60), pytest.approx(1.268 / 2.6), 0.25)]
    assert frames["utilization_by_pool_hour"]["utilization"].to_list() == [
        pytest.approx(0.375), pytest.approx(0.25), pytest.approx(0.625), 0.0]
    data = SimpleNamespace(frames=frames, currency="USD")
    section = _after_chart("capacity-utilization", data)
    # prem: 5.50 of 24.00 = 22.9%; std: 1.268 -> 1.27 of 2.60 = 48.8%; efficiency 0.30 J vs 5.96 J (interpolated).
    for shown in ("<td>prem</td><td>profile_reference</td>", "5.50", "24.00", "22.9%", "1.27", "2.60", "48.8%",
                  "<td>reference (interpolated)</td>", "5.96", "<td>assumed (below_range)</td>"):
        assert shown in section, shown
    spec = CHARTS["capacity-utilization"][1](frames["utilization_by_pool_hour"], "USD").to_dict()
    assert spec["mark"]["type"] == "rect" and spec["encoding"]["color"]["field"] == "utilization"
