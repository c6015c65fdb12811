"""Requests in flight at midnight (issue 16, item 3; DOMAIN 3.2): a request occupies its node on
every day it touches and is charged in each. Day D reads its own request log and the requests
of D+1's log that started on the GPU before D ended (`day.occupying_requests`), each day
charging the part of the request inside it (`occupancy.share_node_slots`). Hand-computed
figures; the pipeline's side (D attributed again when D+1's log arrives) is in
tests/test_pipeline_midnight.py."""

from datetime import date, datetime, timedelta, UTC

import polars as pl
import pytest

from transforms.attribution.day import DayInputs, occupying_requests
from transforms.attribution.grid import SlotGrid
from transforms.attribution.occupancy import share_node_slots
from transforms.contracts import REQUESTS

D = date(2026, 11, 24)
MIDNIGHT = datetime(2026, 11, 25, tzinfo=UTC)  # D's end, D+1's start
COMPONENTS = ["it_energy_j", "energy_cost", "amortization_cost"]
# Every 60 s slot of node `n` on both days: 30,000 J (500 W), 0.006 energy, 0.12 amortization.
SLOT = {"it_energy_j": 30_000.0, "energy_cost": 0.006, "amortization_cost": 0.12}


def _log(rows) -> pl.LazyFrame:
    """A request log: rows (request_id, arrived_at, completed_at, queue_s), node `n`."""
    times = REQUESTS.schema["arrived_at"]
    frame = pl.DataFrame([(r, "n", a, c, q) for r, a, c, q in rows],
                         schema={"request_id": pl.String, "node_id": pl.String, "arrived_at": times,
                                 "completed_at": times, "queue_s": pl.Float64}, orient="row")
    return frame.lazy()


def _day(log: pl.LazyFrame, next_log: pl.LazyFrame | None, day: date) -> tuple[pl.DataFrame, pl.DataFrame]:
    grid = SlotGrid(day, 60)
    inputs = DayInputs(log, pl.LazyFrame(), pl.LazyFrame(), pl.LazyFrame(), next_day_requests=next_log)
    n = grid.n_slots
    slots = pl.LazyFrame({"node_id": ["n"] * n, "slot": list(range(n)), **{c: [v] * n for c, v in SLOT.items()}},
                         schema_overrides={"slot": pl.Int32})
    per_request, nodes = share_node_slots(occupying_requests(inputs, grid), slots, COMPONENTS, grid)
    return per_request.sort("request_id").collect(), nodes.sort("slot").collect()


def test_a_request_from_23_59_30_to_00_00_30_is_charged_30_s_in_each_day():
    # R runs 23:59:30 (D) -> 00:00:30 (D+1), logged on D+1 (its completion day). D's last slot
    # (1439, [23:59, 24:00)) is occupied 30 s of 60: R pays half of it on D (15,000 J, 0.003,
    # 0.06), the other half is D's idle. D+1's first slot likewise: R pays half, half idle.
    # R's total: 30,000 J, 0.006, 0.12 = one slot's worth, for 60 s.
    r = ("R", MIDNIGHT - timedelta(seconds=30), MIDNIGHT + timedelta(seconds=30), None)
    empty = _log([])
    on_d, nodes_d = _day(empty, _log([r]), D)
    on_next, nodes_next = _day(_log([r]), None, D + timedelta(days=1))
    assert on_d["request_id"].to_list() == on_next["request_id"].to_list() == ["R"]
    for facts, nodes, slot in ((on_d, nodes_d, 1439), (on_next, nodes_next, 0)):
        row = facts.row(0, named=True)
        assert row["occupied_s"] == 30.0
        assert {c: row[c] for c in COMPONENTS} == pytest.approx({c: v / 2 for c, v in SLOT.items()}, rel=1e-15)
        busy = nodes.filter(pl.col("slot") == slot).row(0, named=True)
        assert busy["occupied_s"] == 30.0
        assert {c: busy[f"idle_{c}"] for c in COMPONENTS} == pytest.approx({c: v / 2 for c, v in SLOT.items()},
                                                                            rel=1e-15)
        # Every other slot of the day is wholly idle; the day conserves each component.
        assert nodes.filter(pl.col("slot") != slot)["occupied_s"].max() == 0.0
        for c, v in SLOT.items():
            assert row[c] + nodes[f"idle_{c}"].sum() == pytest.approx(v * 1440, rel=1e-12)
    for c, v in SLOT.items():
        assert on_d[c].item() + on_next[c].item() == pytest.approx(v, rel=1e-15)


def test_a_batch_job_running_hours_across_midnight_is_charged_its_hours_in_each_day():
    # B arrives 21:00:00 on D, queues 15 minutes, runs on the GPU 21:15:00 -> 03:40:20 on D+1.
    # On D: 21:15 -> 24:00 = 2 h 45 min = 9,900 s: slots 1275..1439 whole (165 slots), so
    # 165 x 30,000 J = 4,950,000 J, 165 x 0.12 = 19.8 amortization. On D+1: 00:00 -> 03:40:20
    # = 13,220 s: slots 0..219 whole (220 slots) and 20 s of slot 220: 220.333... slots' worth,
    # 6,610,000 J, 26.44 amortization, and 40 s of slot 220 idle.
    b = ("B", MIDNIGHT - timedelta(hours=3), MIDNIGHT + timedelta(hours=3, minutes=40, seconds=20), 900.0)
    # A short request completed on D+1 but started after midnight is not D's.
    late = ("L", MIDNIGHT + timedelta(seconds=5), MIDNIGHT + timedelta(seconds=9), None)
    on_d, _ = _day(_log([]), _log([b, late]), D)
    on_next, nodes_next = _day(_log([b, late]), None, D + timedelta(days=1))
    assert on_d["request_id"].to_list() == ["B"]
    d_row = on_d.row(0, named=True)
    assert d_row["occupied_s"] == 9_900.0
    assert d_row["it_energy_j"] == pytest.approx(4_950_000.0, rel=1e-12)
    assert d_row["amortization_cost"] == pytest.approx(19.8, rel=1e-12)
    n_row = on_next.filter(pl.col("request_id") == "B").row(0, named=True)
    assert n_row["occupied_s"] == 13_220.0
    # Slot 0 is shared with L (4 s of 60, by time: B 60 of 64): it stays occupied throughout,
    # so B takes 30,000 x 60/64 there and L 30,000 x 4/64; B's other 219 1/3 slots are its own.
    assert n_row["it_energy_j"] == pytest.approx(30_000 * 60 / 64 + 30_000 * (219 + 20 / 60), rel=1e-12)
    assert nodes_next.filter(pl.col("slot") == 220)["idle_it_energy_j"].item() == pytest.approx(20_000.0, rel=1e-12)
    # The two days together: B's GPU time, 23,120 s, at 500 W (less its share of slot 0 with L).
    total_j = d_row["it_energy_j"] + n_row["it_energy_j"]
    assert total_j == pytest.approx(500 * 23_120 - 30_000 * 4 / 64, rel=1e-12)
