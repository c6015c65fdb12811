"""Energy per node and slot, and facility overhead per site-hour (docs/attribution.md, steps 1 and 4).

Small hand-made frames with the expected joules worked out in the comments, then the demo
day of the simulator, ingested into a temporary lake, against the meters' own counters.
"""

from datetime import date, datetime, timedelta, UTC

import polars as pl
import pytest

import fleetsim
from lake.inventory import load_inventory
from lake.store import Lake
from pipelines.ingest import ingest_partition
from transforms.attribution.energy import METHODS, attach_overhead, node_slot_energy, site_hour_overhead
from transforms.attribution.day import node_slot_energy_by_group
from transforms.attribution.grid import SlotGrid
from transforms.contracts import POWER_READINGS

DAY = date(2026, 3, 2)
START = datetime(2026, 3, 2, tzinfo=UTC)
G60 = SlotGrid(DAY, 60)
G300 = SlotGrid(DAY, 300)
IDLE = 100.0  # W, idle power of every node of the small cases unless stated


def nodes(*spec: tuple[str, str, float]) -> pl.LazyFrame:
    """(node_id, site_id, idle_w) -> a nodes frame (the columns of `Inventory.nodes_frame()` used here)."""
    return pl.LazyFrame([list(r) for r in spec], schema={"node_id": pl.String, "site_id": pl.String,
                                                         "idle_w": pl.Float64}, orient="row")


def meters(*spec: tuple[str, str, str | None]) -> pl.LazyFrame:
    """(meter_id, scope, node_id) -> a meters frame like `Inventory.meters_frame()`."""
    return pl.LazyFrame([[m, scope, "s", node, None, "canonical", None] for m, scope, node in spec],
                        schema={"meter_id": pl.String, "scope": pl.String, "site_id": pl.String, "node_id": pl.String,
                                "gpu_index": pl.Int16, "source": pl.String, "sensor": pl.String}, orient="row")


def readings(meter_id: str, scope: str, node_id: str | None, samples: list[tuple], *,
             fields: tuple[str, ...] = ("power_w",)) -> pl.DataFrame:
    """Canonical power_readings of one meter: `samples` are (seconds since DAY 00:00 UTC, *fields[, counter_reset])."""
    rows = []
    for sample in samples:
        t, values = sample[0], sample[1:1 + len(fields)]
        reset = sample[1 + len(fields)] if len(sample) > 1 + len(fields) else False
        row = {"meter_id": meter_id, "scope": scope, "site_id": "s", "node_id": node_id, "gpu_index": None,
               "ts": START + timedelta(seconds=t), "power_w": None, "energy_j": None, "interval_energy_j": None,
               "interval_s": None, "counter_reset": reset, "source": "canonical"}
        row.update(dict(zip(fields, values, strict=True)))
        rows.append(row)
    return pl.DataFrame(rows, schema=POWER_READINGS.schema)


def energy(frames: list[pl.DataFrame], node_spec, meter_spec, grid: SlotGrid = G60, **kw) -> pl.DataFrame:
    r = pl.concat(frames) if frames else pl.DataFrame(schema=POWER_READINGS.schema)
    return node_slot_energy(r.lazy(), nodes(*node_spec), meters(*meter_spec), grid, **kw).collect()


def slots(df: pl.DataFrame, node_id: str, first: int, last: int) -> list[tuple[float, str]]:
    """(it_energy_j, energy_method) of slots first..last (inclusive) of a node."""
    return df.filter((pl.col("node_id") == node_id) & pl.col("slot").is_between(first, last)).sort("slot").select(
        "it_energy_j", "energy_method").rows()


def total(df: pl.DataFrame, node_id: str) -> float:
    return df.filter(pl.col("node_id") == node_id)["it_energy_j"].sum()


def test_gauge_integrated_by_trapezoids_over_two_slots():
    # Samples at 0 s 200 W, 30 s 400 W, 90 s 100 W, 120 s 100 W (normal interval 30 s; 60 s is
    # not longer than twice that). Intervals: [0,30) (200+400)/2*30 = 9000 J, [30,90)
    # (400+100)/2*60 = 15000 J, [90,120) 100*30 = 3000 J. Slot 0 = 9000 + 15000*30/60 = 16500;
    # slot 1 = 7500 + 3000 = 10500. After 120 s the day's edge (86280 s > 300 s) is idle:
    # 100 W * 60 s = 6000 J per slot, estimated.
    r = readings("n1/bmc", "node", "n1", [(0, 200.0), (30, 400.0), (90, 100.0), (120, 100.0)])
    df = energy([r], [("n1", "s", IDLE)], [("n1/bmc", "node", "n1")])
    assert df.height == 1440 and df.columns == ["node_id", "slot", "it_energy_j", "energy_method"]
    assert df.schema["slot"] == pl.Int32 and df.schema["it_energy_j"] == pl.Float64
    assert slots(df, "n1", 0, 3) == [(16500.0, "measured_gauge"), (10500.0, "measured_gauge"),
                                     (6000.0, "estimated"), (6000.0, "estimated")]
    assert total(df, "n1") == pytest.approx(27000.0 + 100.0 * 86280, rel=1e-12)  # 8,655,000 J


def test_counter_interpolated_at_the_slot_boundary_and_preferred_to_the_gauge():
    # Counter 1000 J at 10 s, 7000 J at 70 s, 13600 J at 130 s (the gauge column says 999 W and
    # is ignored: a meter with a counter is read from it). Curve at the bound 60 s:
    # 1000 + 6000*50/60 = 6000 J. Slot 0: start edge [0,10) at the first interval's 100 W
    # = 1000 J (interpolated) + 5000 J = 6000 J, interpolated. Slot 1: 6000*10/60 + 6600*50/60
    # = 1000 + 5500 = 6500 J, measured_counter. Slot 2: 6600*10/60 = 1100 J + the idle edge
    # after 130 s, 100 W * 50 s = 5000 J -> 6100 J, estimated.
    r = readings("n1/bmc", "node", "n1", [(10, 999.0, 1000.0), (70, 999.0, 7000.0), (130, 999.0, 13600.0)],
                 fields=("power_w", "energy_j"))
    df = energy([r], [("n1", "s", IDLE)], [("n1/bmc", "node", "n1")])
    assert slots(df, "n1", 0, 2) == [(pytest.approx(6000.0, rel=1e-12), "interpolated"),
                                     (pytest.approx(6500.0, rel=1e-12), "measured_counter"),
                                     (pytest.approx(6100.0, rel=1e-12), "estimated")]


def test_counter_reset_uses_the_gauge_when_present_else_the_energy_since_reboot():
    # Counter 50000, 56000, then 900 at 120 s (reboot), 6900 at 180 s.
    # a: powers 100, 100, 140, 100 W on the rows: the interval across the reset is the gauge's
    #    trapezoid (100+140)/2*60 = 7200 J, measured_gauge; both sides are counter differences.
    # b: no gauge: the post-reset value 900 J (energy since the reboot), interpolated.
    # c: as b, but the reset is not flagged: any decrease of the counter is a reset.
    a = readings("a/bmc", "node", "a", [(0, 100.0, 50000.0), (60, 100.0, 56000.0), (120, 140.0, 900.0, True),
                                        (180, 100.0, 6900.0)], fields=("power_w", "energy_j"))
    b = readings("b/bmc", "node", "b", [(0, 50000.0), (60, 56000.0), (120, 900.0, True), (180, 6900.0)],
                 fields=("energy_j",))
    c = readings("c/bmc", "node", "c", [(0, 50000.0), (60, 56000.0), (120, 900.0, False), (180, 6900.0)],
                 fields=("energy_j",))
    df = energy([a, b, c], [("a", "s", IDLE), ("b", "s", IDLE), ("c", "s", IDLE)],
                [("a/bmc", "node", "a"), ("b/bmc", "node", "b"), ("c/bmc", "node", "c")])
    assert slots(df, "a", 0, 2) == [(6000.0, "measured_counter"), (7200.0, "measured_gauge"),
                                    (6000.0, "measured_counter")]
    for node in ("b", "c"):
        assert slots(df, node, 0, 2) == [(6000.0, "measured_counter"), (900.0, "interpolated"),
                                         (6000.0, "measured_counter")]


def test_gap_beyond_the_limit_gauge_estimated_counter_spread():
    # Samples at 0, 60, 600, 660 s; [60,600) is 540 s > 300 s.
    # gauge (300 W, then 500 W): slot 0 = 300*60 = 18000 measured; slots 1-9 idle 100 W * 60 =
    #   6000 J each, estimated; slot 10 = 500*60 = 30000 measured.
    # counter (0, 18000, 180000, 210000 J): the gap's 162000 J spread evenly over 540 s = 300 W:
    #   18000 J per slot, interpolated; slots 0 and 10 measured_counter.
    g = readings("g/bmc", "node", "g", [(0, 300.0), (60, 300.0), (600, 500.0), (660, 500.0)])
    c = readings("c/bmc", "node", "c", [(0, 0.0), (60, 18000.0), (600, 180000.0), (660, 210000.0)],
                 fields=("energy_j",))
    df = energy([g, c], [("g", "s", IDLE), ("c", "s", IDLE)], [("g/bmc", "node", "g"), ("c/bmc", "node", "c")])
    assert slots(df, "g", 0, 10) == [(18000.0, "measured_gauge")] + [(6000.0, "estimated")] * 9 + [
        (30000.0, "measured_gauge")]
    spread = [(pytest.approx(18000.0), "interpolated")] * 9
    assert slots(df, "c", 0, 10) == [(18000.0, "measured_counter")] + spread + [(30000.0, "measured_counter")]

    # With slot_s = 300: slot 0 [0,300) = 18000 + 240*100 = 42000 J, slot 1 [300,600) = 30000 J
    # (both estimated), slot 2 [600,900) = 30000 + idle edge 240*100 = 54000, estimated.
    df = energy([g], [("g", "s", IDLE)], [("g/bmc", "node", "g")], grid=G300)
    assert slots(df, "g", 0, 2) == [(42000.0, "estimated"), (30000.0, "estimated"), (54000.0, "estimated")]

    # A wider gap limit bridges the same gap by the trapezoid: (300+500)/2*540 = 216000 J, 24000 J
    # per slot, interpolated (540 s is longer than twice the normal 60 s).
    df = energy([g], [("g", "s", IDLE)], [("g/bmc", "node", "g")], gap_limit_s=600)
    assert slots(df, "g", 1, 9) == [(pytest.approx(24000.0), "interpolated")] * 9


def test_short_gap_within_the_limit_is_interpolated():
    # 200 W every 60 s except one 180 s interval (longer than twice the normal 60 s): measured
    # energy, flagged interpolated on the slots it touches.
    r = readings("n1/bmc", "node", "n1", [(0, 200.0), (60, 200.0), (240, 200.0), (300, 200.0)])
    df = energy([r], [("n1", "s", IDLE)], [("n1/bmc", "node", "n1")])
    assert slots(df, "n1", 0, 4) == [(12000.0, "measured_gauge")] + [(12000.0, "interpolated")] * 3 + [
        (12000.0, "measured_gauge")]


@pytest.mark.parametrize("grid", [G60, G300], ids=["slot60", "slot300"])
def test_node_without_data_is_idle_in_every_slot_never_zero(grid):
    # `quiet` has no meter at all, `dark` a node meter and GPU meters that sent nothing: both get
    # idle_w x slot_s in every slot (250 W * 60 s = 15000 J, * 300 s = 75000 J), estimated.
    # A facility reading is not IT energy and changes nothing.
    fac = readings("s/facility", "facility", None, [(900, 3.6e6, 900.0)], fields=("interval_energy_j", "interval_s"))
    df = energy([fac], [("quiet", "s", 250.0), ("dark", "s", 250.0)],
                [("dark/bmc", "node", "dark"), ("dark/gpu0", "gpu", "dark"), ("dark/gpu1", "gpu", "dark"),
                 ("s/facility", "facility", None)], grid=grid)
    assert df.height == 2 * grid.n_slots
    assert df.select((pl.col("it_energy_j") == 250.0 * grid.slot_s).all(),
                     (pl.col("energy_method") == "estimated").all()).row(0) == (True, True)


def test_node_meter_preferred_to_the_sum_of_gpus():
    # Node meter 1000 W; GPU counters at 300 W each. The node meter wins: 60000 J per slot.
    node = readings("n/bmc", "node", "n", [(t, 1000.0) for t in range(0, 361, 60)])
    gpus = [readings(f"n/gpu{i}", "gpu", "n", [(t, 300.0 * t) for t in range(0, 361, 30)], fields=("energy_j",))
            for i in range(2)]
    df = energy([node, *gpus], [("n", "s", IDLE)],
                [("n/bmc", "node", "n"), ("n/gpu0", "gpu", "n"), ("n/gpu1", "gpu", "n")])
    assert slots(df, "n", 0, 5) == [(60000.0, "measured_gauge")] * 6


def test_sum_of_gpus_when_no_node_meter_has_data():
    # Node g: its node meter is declared but silent; GPU counters at 300 W and 200 W from 0 to
    # 300 s -> 30000 J per slot, measured_counter. After 300 s (edge > 300 s) each GPU meter is
    # idle at idle_w / 2 GPU meters: the node at its idle 400 W = 24000 J per slot, estimated.
    # Node h: GPU 1 never reported: 300 W * 60 + 200 W (its idle share) * 60 = 30000 J, estimated.
    g = [readings(f"g/gpu{i}", "gpu", "g", [(t, w * t) for t in range(0, 301, 30)], fields=("energy_j",))
         for i, w in enumerate((300.0, 200.0))]
    h = readings("h/gpu0", "gpu", "h", [(t, 300.0 * t) for t in range(0, 301, 30)], fields=("energy_j",))
    df = energy([*g, h], [("g", "s", 400.0), ("h", "s", 400.0)],
                [("g/bmc", "node", "g"), ("g/gpu0", "gpu", "g"), ("g/gpu1", "gpu", "g"),
                 ("h/gpu0", "gpu", "h"), ("h/gpu1", "gpu", "h")])
    assert slots(df, "g", 0, 6) == [(30000.0, "measured_counter")] * 5 + [(24000.0, "estimated")] * 2
    assert slots(df, "h", 0, 1) == [(30000.0, "estimated")] * 2


def test_edges_of_the_day():
    # e1 (counter): 0 J at 100 s, 12000 J at 160 s (200 W), 21522000 J at 86200 s (250 W over the
    #   86040 s gap, spread evenly), 21540000 J at 86260 s (300 W).
    #   Start edge [0,100) is within 300 s: 200 W * 100 s = 20000 J, interpolated.
    #   slot 0 = 12000, slot 1 = 8000 + 20 s * 200 W = 12000, slot 2 = 40*200 + 20*250 = 13000 (all
    #   interpolated). End edge [86260, 86400): 300 W * 140 s = 42000 J, interpolated: slot 1437 =
    #   40*300 + 20*300 = 18000, slots 1438-1439 = 18000. Day = 20000 + 21540000 + 42000.
    # e2 (gauge): first sample at 400 s, beyond 300 s: the whole edge [0,400) is idle (100 W):
    #   slots 0-5 = 6000 J, slot 6 = 40*100 + 20*500 = 14000 J, all estimated.
    e1 = readings("e1/bmc", "node", "e1", [(100, 0.0), (160, 12000.0), (86200, 21522000.0), (86260, 21540000.0)],
                  fields=("energy_j",))
    e2 = readings("e2/bmc", "node", "e2", [(400, 500.0), (460, 500.0), (520, 500.0)])
    df = energy([e1, e2], [("e1", "s", IDLE), ("e2", "s", IDLE)],
                [("e1/bmc", "node", "e1"), ("e2/bmc", "node", "e2")])
    assert slots(df, "e1", 0, 2) == [(pytest.approx(x), "interpolated") for x in (12000.0, 12000.0, 13000.0)]
    assert slots(df, "e1", 1437, 1439) == [(pytest.approx(18000.0), "interpolated")] * 3
    assert total(df, "e1") == pytest.approx(20000.0 + 21540000.0 + 42000.0, rel=1e-12)
    assert slots(df, "e2", 0, 7) == [(6000.0, "estimated")] * 6 + [(14000.0, "estimated"), (30000.0, "measured_gauge")]

    # A sample of the previous day within the gap limit bridges midnight: no edge.
    e3 = readings("e3/bmc", "node", "e3", [(-30, 600.0), (30, 600.0), (90, 600.0)])
    df = energy([e3], [("e3", "s", IDLE)], [("e3/bmc", "node", "e3")])
    assert slots(df, "e3", 0, 0) == [(36000.0, "measured_gauge")]


# --- facility overhead ------------------------------------------------------------------------

def site_case():
    """Site m (design PUE 1.2, one facility meter) with nodes m1 (90000 J per 300-s slot) and m2
    (30000 J): IT 1,440,000 J per hour. Site d (design PUE 1.5, no meter), node d1 (60000 J):
    720,000 J per hour. Site x has a facility meter and no node. Facility intervals of 30 min
    ending 00:45, 01:15, 01:45, 02:15 (800000, 700000, 1000000, 800000 J) and one hour ending
    06:00 (1,000,000 J)."""
    ne = pl.LazyFrame({"node_id": ["m1"] * 288 + ["m2"] * 288 + ["d1"] * 288,
                       "slot": pl.Series(list(range(288)) * 3, dtype=pl.Int32),
                       "it_energy_j": [90000.0] * 288 + [30000.0] * 288 + [60000.0] * 288,
                       "energy_method": ["measured_counter"] * 864})
    nd = nodes(("m1", "m", 0.0), ("m2", "m", 0.0), ("d1", "d", 0.0))
    mt = meters(("m/facility", "facility", None), ("x/facility", "facility", None))
    mt = mt.with_columns(pl.when(pl.col("meter_id") == "x/facility").then(pl.lit("x")).otherwise(pl.lit("m"))
                         .alias("site_id"))
    fac = readings("m/facility", "facility", None,
                   [(2700, 800000.0, 1800.0), (4500, 700000.0, 1800.0), (6300, 1000000.0, 1800.0),
                    (8100, 800000.0, 1800.0), (21600, 1000000.0, 3600.0)],
                   fields=("interval_energy_j", "interval_s"))
    fx = readings("x/facility", "facility", None, [(3600, 5e6, 3600.0)], fields=("interval_energy_j", "interval_s"))
    sites = pl.LazyFrame({"site_id": ["m", "d", "x"], "design_pue": [1.2, 1.5, 1.3]})
    return ne, nd, pl.concat([fac, fx]).lazy(), mt, sites


def test_site_hour_overhead_measured_design_and_straddling_intervals():
    ne, nd, rd, mt, sites = site_case()
    sh = site_hour_overhead(ne, nd, rd, mt, sites, G300).collect()
    assert sh.columns == ["site_id", "hour", "it_energy_j", "facility_energy_j", "overhead_j", "pue", "pue_method",
                          "overhead_clamped"]
    assert sh.height == 48 and sorted(sh["site_id"].unique()) == ["d", "m"]  # x has no nodes
    rows = {(s, h.hour): r for s, h, *r in sh.iter_rows()}
    # Hour 0 of m is covered only from 00:15 (the 00:45 interval and half of 01:15's): design PUE,
    # overhead 1,440,000 * 0.2 = 288,000.
    assert rows["m", 0] == [1440000.0, pytest.approx(1728000.0), pytest.approx(288000.0), 1.2, "design_pue", False]
    # Hour 1: half of the 01:15 interval (350,000) + 1,000,000 + half of 02:15's (400,000)
    # = 1,750,000 J facility; overhead 310,000; PUE 1,750,000 / 1,440,000.
    assert rows["m", 1] == [1440000.0, pytest.approx(1750000.0), pytest.approx(310000.0),
                            pytest.approx(1750000.0 / 1440000.0), "measured", False]
    # Hour 2 only half covered (until 02:15): design.
    assert rows["m", 2][4] == "design_pue"
    # Hour 5: metered 1,000,000 J below IT: overhead clamped to 0 and flagged.
    assert rows["m", 5] == [1440000.0, 1000000.0, 0.0, pytest.approx(1000000.0 / 1440000.0), "measured", True]
    # Site d has no facility meter: 720,000 * 0.5 = 360,000 every hour.
    for h in range(24):
        assert rows["d", h] == [720000.0, pytest.approx(1080000.0), pytest.approx(360000.0), 1.5, "design_pue", False]
    assert sh["hour"].dtype == pl.Datetime("us", "UTC") and sh["hour"].min() == START


def test_attach_overhead_spreads_by_it_energy_and_conserves():
    ne, nd, rd, mt, sites = site_case()
    sh = site_hour_overhead(ne, nd, rd, mt, sites, G300)
    out = attach_overhead(ne, nd, sh, G300).collect()
    assert out.columns == ["node_id", "slot", "it_energy_j", "energy_method", "overhead_j", "pue_method"]
    assert out.height == 864
    got = {(n, s): (o, m) for n, s, _, _, o, m in out.iter_rows()}
    # Hour 0 of m (design 1.2): 90000 * 0.2 = 18000, 30000 * 0.2 = 6000. Hour 1 (slots 12-23,
    # measured): overhead/IT = 310000 / 1440000. Hour 5 clamped: 0. d1: 60000 * 0.5 = 30000.
    assert got["m1", 0] == (pytest.approx(18000.0), "design_pue")
    assert got["m2", 11] == (pytest.approx(6000.0), "design_pue")
    assert got["m1", 12] == (pytest.approx(90000.0 * 310000.0 / 1440000.0), "measured")
    assert got["m2", 23] == (pytest.approx(30000.0 * 310000.0 / 1440000.0), "measured")
    assert got["m1", 60] == (0.0, "measured")
    assert got["d1", 287] == (pytest.approx(30000.0), "design_pue")
    assert_overhead_conserved(out, nd, sh.collect(), G300)


def assert_overhead_conserved(out: pl.DataFrame, nd: pl.LazyFrame, sh: pl.DataFrame, grid: SlotGrid) -> None:
    per_hour = (out.join(nd.collect().select("node_id", "site_id"), on="node_id")
                .with_columns(hour=pl.lit(grid.start) + pl.duration(hours=pl.col("slot") // (3600 // grid.slot_s)))
                .group_by("site_id", "hour").agg(pl.col("overhead_j").sum().alias("spread")))
    both = sh.join(per_hour, on=["site_id", "hour"], how="full", coalesce=True)
    assert both.height == sh.height
    bad = both.filter((pl.col("spread") - pl.col("overhead_j")).abs() > 1e-9 * pl.col("overhead_j").abs())
    assert bad.height == 0, bad


def test_slots_must_nest_in_hours():
    ne, nd, rd, mt, sites = site_case()
    with pytest.raises(ValueError, match="divide an hour"):
        site_hour_overhead(ne, nd, rd, mt, sites, SlotGrid(DAY, 7200))


def test_sites_frame(small_inventory):
    df = small_inventory.sites_frame().collect()
    assert df.columns == ["site_id", "kind", "cooling", "design_pue", "timezone", "tariff"]
    assert df["site_id"].to_list() == small_inventory.site_ids
    assert df["design_pue"].to_list() == [s.design_pue for s in small_inventory.sites]


# --- the simulator's demo day -------------------------------------------------------------------

SIM_DAY = date(2026, 11, 24)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("energy")
    fleetsim.simulate(root / "raw", SIM_DAY, requests=10_000, seed=11)
    inv = load_inventory(root / "raw" / "inventory.yaml")
    lake = Lake(root / "lake")
    for site in inv.site_ids:
        ingest_partition("power_readings", SIM_DAY, site, root / "raw", lake, inv)
    r = pl.read_parquet(lake.root / "power_readings" / "**" / "*.parquet", hive_partitioning=True)
    grid = SlotGrid(SIM_DAY, 60)
    ne = node_slot_energy(r.lazy(), inv.nodes_frame(), inv.meters_frame(), grid).collect()
    return {"inv": inv, "readings": r, "grid": grid, "energy": ne}


def test_demo_day_every_node_and_slot_once(demo):
    ne, inv = demo["energy"], demo["inv"]
    assert ne.height == len(inv.nodes) * 1440
    assert ne.select(pl.struct("node_id", "slot").n_unique()).item() == ne.height
    assert ne.null_count().sum_horizontal().item() == 0
    assert set(ne["energy_method"].unique()) <= set(METHODS)
    assert ne.filter(pl.col("it_energy_j") <= 0).height == 0
    # A rerun gives the same bytes (group sums are added in a fixed order).
    again = node_slot_energy(demo["readings"].lazy(), inv.nodes_frame(), inv.meters_frame(), demo["grid"]).collect()
    assert again.equals(ne)


@pytest.mark.parametrize("group", [1, 3, 1000])
def test_energy_computed_a_group_of_nodes_at_a_time_is_the_same_frame(demo, group):
    """`share_day` computes the node-slot energy a group of nodes at a time (bounded memory): the
    same frame, to the bit, whatever the group size (the demo day has GPU, IPMI and Redfish
    meters, a counter reset, blank samples and a BMC gap, and a facility meter, read by no node)."""
    readings = demo["readings"].lazy()
    assert demo["readings"].filter(pl.col("scope") == "facility").height > 0
    grouped = node_slot_energy_by_group(readings, demo["inv"].nodes_frame(), demo["inv"].meters_frame(), demo["grid"],
                                        group=group)
    assert grouped.equals(demo["energy"])


def test_demo_day_redfish_energy_is_the_counter_difference(demo):
    # Redfish nodes are read from their TotalEnergy counter: the day's energy is the counter's
    # first-to-last difference plus the two edges (~1 min together) at the adjacent interval's power.
    r, ne, grid = demo["readings"], demo["energy"], demo["grid"]
    sec = grid.seconds_since_start

    def power(i: int, j: int) -> pl.Expr:  # W between samples i and j of a meter
        e, t = pl.col("energy_j"), pl.col("ts")
        return (e.get(j) - e.get(i)) / (sec(t.get(j)) - sec(t.get(i)))

    red = (r.filter(pl.col("source") == "redfish").sort("ts").group_by("node_id").agg(
        (pl.col("energy_j").last() - pl.col("energy_j").first()).alias("diff"),
        (power(0, 1) * sec(pl.col("ts").first())).alias("head"),
        (power(-2, -1) * (86400 - sec(pl.col("ts").last()))).alias("tail"))
        .join(ne.group_by("node_id").agg(pl.col("it_energy_j").sum().alias("day")), on="node_id"))
    assert sorted(red["node_id"]) == ["m-h200-01", "m-h200-02"]
    for node, diff, head, tail, day in red.iter_rows():
        assert day == pytest.approx(diff, rel=1e-3), node
        assert day == pytest.approx(diff + head + tail, rel=1e-9), node
        assert ne.filter(pl.col("node_id") == node)["energy_method"].is_in(["measured_counter", "interpolated"]).all()


def test_demo_day_estimated_only_over_the_bmc_gap(demo):
    # The simulator silenced r-l40s-bat-01's BMC from 02:38 to 02:57 UTC (20 polls). IPMI is a
    # gauge, so the 21-minute interval around the gap (> 300 s) is estimated at idle_w (420 W):
    # exactly the slots it touches, and nothing else in the fleet.
    r, ne = demo["readings"], demo["energy"]
    est = ne.filter(pl.col("energy_method") == "estimated")
    assert est["node_id"].unique().to_list() == ["r-l40s-bat-01"]
    sec = demo["grid"].seconds_since_start
    t = r.filter(pl.col("meter_id") == "r-l40s-bat-01/bmc").sort("ts").select(sec(pl.col("ts")))["ts"]
    gaps = t.diff() > 300
    assert gaps.sum() == 1
    i = gaps.arg_max()
    t_prev, t_next = t[i - 1], t[i]
    assert t_next - t_prev > 20 * 60
    lo, hi = int(t_prev // 60), int(-(-t_next // 60)) - 1
    assert est["slot"].sort().to_list() == list(range(lo, hi + 1))
    assert lo <= 158 and hi >= 177  # 02:38-02:57 UTC
    inside = est.filter(pl.col("slot").is_between(lo + 1, hi - 1))
    assert inside.height == hi - lo - 1
    assert inside["it_energy_j"].to_list() == [pytest.approx(420.0 * 60)] * inside.height


def test_demo_day_overhead(demo):
    inv, r, ne, grid = demo["inv"], demo["readings"], demo["energy"], demo["grid"]
    nd = inv.nodes_frame()
    sh = site_hour_overhead(ne.lazy(), nd, r.lazy(), inv.meters_frame(), inv.sites_frame(), grid).collect()
    assert sh.height == 3 * 24
    methods = dict(sh.group_by("site_id").agg(pl.col("pue_method").unique().sort()).iter_rows())
    assert methods == {"metro-east": ["measured"], "remote-plains": ["design_pue"],
                       "cloud-use1": ["design_pue"]}
    metro = sh.filter(pl.col("site_id") == "metro-east").sort("hour")
    # The day's partition holds the facility intervals that START on the day (00:00 to 23:45),
    # so every hour of the metro site, 23:00-24:00 included, has a measured PUE.
    assert metro["pue_method"].to_list() == ["measured"] * 24
    measured = metro.filter(pl.col("pue_method") == "measured")
    assert measured["pue"].is_between(1.2, 1.6).all() and not measured["overhead_clamped"].any()
    out = attach_overhead(ne.lazy(), nd, sh.lazy(), grid).collect()
    assert out.height == ne.height and out["overhead_j"].null_count() == 0
    assert_overhead_conserved(out, nd, sh, grid)
