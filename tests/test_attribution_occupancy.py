"""Occupancy sharing (steps 2 and 3, `occupancy.share_node_slots` as `day.share_day` calls it):
exact hand-computed shares, and conservation over generated days."""

import math
import random
from datetime import date, datetime, timedelta, UTC

import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.conftest import examples
from transforms.attribution.grid import SlotGrid
from transforms.attribution.occupancy import request_segments, share_node_slots

DAY = date(2026, 11, 24)
T0 = datetime(2026, 11, 24, tzinfo=UTC)
GRID = SlotGrid(DAY, 60)


def _requests(rows):
    """rows: (request_id, node_id, start_s, end_s, queue_s, prefill_s, decode_s, input_tokens, output_tokens)."""
    return pl.LazyFrame(
        [(r[0], r[1], T0 + timedelta(seconds=r[2]), T0 + timedelta(seconds=r[3]), *r[4:]) for r in rows],
        schema={"request_id": pl.String, "node_id": pl.String, "arrived_at": pl.Datetime("us", "UTC"),
                "completed_at": pl.Datetime("us", "UTC"), "queue_s": pl.Float64, "prefill_s": pl.Float64,
                "decode_s": pl.Float64, "input_tokens": pl.Int64, "output_tokens": pl.Int64}, orient="row")


def _slots(costs: dict[str, list[float]]):
    rows = [(n, k, c) for n, cs in costs.items() for k, c in enumerate(cs)]
    return pl.LazyFrame(rows, schema={"node_id": pl.String, "slot": pl.Int32, "cost": pl.Float64}, orient="row")


def _share(reqs, slots, weight="time", grid=GRID):
    per_request, nodes = share_node_slots(reqs, slots, ["cost"], grid, weight)
    return dict(per_request.select("request_id", "cost").collect().iter_rows()), nodes.sort("node_id", "slot").collect()


def test_two_requests_share_a_slot_one_to_three():
    # A occupies 15 s of slot 0, B the other 45 s (B waited 5 s in the queue before the GPU).
    reqs = _requests([("A", "n", 0, 15, None, None, None, 10, 10), ("B", "n", 10, 60, 5.0, None, None, 10, 10)])
    shares, nodes = _share(reqs, _slots({"n": [8.0]}))
    assert shares == pytest.approx({"A": 2.0, "B": 6.0}, abs=1e-12)
    assert nodes["weight"].to_list() == [60.0]


def test_a_request_spanning_three_slots_a_shared_slot_and_an_idle_slot():
    # R: 00:00:30-00:02:30 over slots 0, 1, 2; Q shares 30 s of slot 1; slot 3 has nobody.
    reqs = _requests([("R", "n", 30, 150, None, None, None, 1, 1), ("Q", "n", 60, 90, None, None, None, 1, 1)])
    shares, nodes = _share(reqs, _slots({"n": [6.0, 12.0, 18.0, 5.0]}))
    # slot 0: R alone for 30 of 60 s -> 6 x 30/60 = 3, the other 3 idle; slot 1: occupied
    # throughout, R 60 s, Q 30 s of 90 -> 8 and 4; slot 2: R alone for 30 s -> 18 x 30/60 = 9,
    # 9 idle; slot 3 wholly idle (5). R = 3 + 8 + 9 = 20.
    assert shares == pytest.approx({"R": 20.0, "Q": 4.0}, abs=1e-12)
    assert nodes["active"].to_list() == [1, 2, 1, 0]
    assert nodes["weight"].to_list() == [30.0, 90.0, 30.0, 0.0]
    assert nodes["occupied_s"].to_list() == [30.0, 60.0, 30.0, 0.0]
    assert nodes["idle_cost"].to_list() == [3.0, 0.0, 9.0, 5.0]


def test_token_weights_split_prefill_by_input_and_decode_by_output():
    # Slot 0 only. A: prefill [0,10) 100 input tokens (10 tok/s), decode [10,60) 50 output (1 tok/s).
    # B: no phase timings, 60 tokens over [0,60) -> 1 tok/s.
    reqs = _requests([("A", "n", 0, 60, 0.0, 10.0, 50.0, 100, 50), ("B", "n", 0, 60, None, None, None, 30, 30)])
    shares, nodes = _share(reqs, _slots({"n": [16.0]}), weight="tokens")
    # W = A: 10*10 + 50*1 = 150; B: 60 -> 210. A = 150/210*16, B = 60/210*16.
    assert nodes["weight"].to_list() == pytest.approx([210.0])
    assert shares == pytest.approx({"A": 150 / 210 * 16, "B": 60 / 210 * 16}, rel=1e-12)


def test_a_one_microsecond_request_pays_its_microsecond_and_costs_nobody_else_a_digit():
    # "blip" holds the GPU for 1 µs alone in slot 0: the slot is occupied for 1e-6 of its 60 s,
    # so blip pays 1000.0 x 1e-6 / 60 and the rest of the slot is idle (issue 16, item 4). Its
    # weight, 1e-6, must keep all its digits on the way to the share. "long" spans slots 1-9
    # (100.0 each): its middle slots are read through the node's prefix sum of cost per weight,
    # where slot 0's rate once swallowed digits (issue 21). "zero" holds the GPU for 0 µs: it
    # occupies nothing, and slot 10, which only it touches, stays idle.
    reqs = _requests([("blip", "n", 1.0, 1.000001, None, None, None, 1, 1),
                      ("long", "n", 60, 600, None, None, None, 1, 1),
                      ("zero", "n", 630, 630, None, None, None, 1, 1)])
    shares, nodes = _share(reqs, _slots({"n": [1000.0] + [100.0] * 10}))
    assert shares == pytest.approx({"blip": 1000.0 * 1e-6 / 60, "long": 900.0, "zero": 0.0}, rel=1e-12)
    assert nodes["active"].to_list() == [1] * 10 + [0]
    assert nodes["idle_cost"].to_list() == pytest.approx([1000.0 - 1000.0 * 1e-6 / 60] + [0.0] * 9 + [100.0],
                                                         rel=1e-15)


def test_segments_clip_to_the_day_and_drop_empty_windows():
    reqs = _requests([("late", "n", 86_390, 86_460, None, None, None, 1, 1),
                      ("zero", "n", 100, 100, None, None, None, 1, 1)])
    segs = request_segments(reqs, GRID).collect()
    # With time weights every request keeps its one segment; an empty one shares nothing.
    assert segs.select("request_id", "s", "e").rows() == [("late", 86_390.0, 86_400.0), ("zero", 100.0, 100.0)]
    assert request_segments(reqs, GRID, "tokens").collect()["request_id"].to_list() == ["late"]


@st.composite
def fleets(draw):
    n_nodes = draw(st.integers(1, 3))
    slot_s = draw(st.sampled_from([60, 300, 3600]))
    rows = []
    for i in range(draw(st.integers(0, 40))):
        node = f"n{draw(st.integers(0, n_nodes - 1))}"
        s = draw(st.floats(0, 86_400, allow_nan=False))
        # now and then a request of a few microseconds: a slot it holds alone has a tiny weight
        dur = draw(st.one_of(st.floats(0, 7_200, allow_nan=False), st.sampled_from([5e-7, 1e-6, 2e-6])))
        q = draw(st.one_of(st.none(), st.floats(0, 30, allow_nan=False)))
        pf = draw(st.one_of(st.none(), st.floats(0.01, 20, allow_nan=False)))
        dc = draw(st.one_of(st.none(), st.floats(0.01, 600, allow_nan=False)))
        rows.append((f"r{i}", node, s, min(s + dur, 86_400), q, pf, dc, draw(st.integers(0, 5000)),
                     draw(st.integers(0, 5000))))
    costs = draw(st.lists(st.floats(0, 1000, allow_nan=False), min_size=1, max_size=5))
    return n_nodes, slot_s, rows, costs, draw(st.sampled_from(["time", "tokens"])), draw(st.randoms())


@settings(max_examples=examples(60), deadline=None)
@given(fleets())
# Issue 21: r2 holds slot 0 for 1 µs (its times fall on .164062 and .164063 s), so slot 0's rate
# is 3.0 / 1e-6; in the node's prefix sum it swallowed the last digits of r0's and r1's interior
# slots (1.0e-6 of 864.0 lost).
@example((1, 300, [("r0", "n0", 300.0, 2101.0, None, None, None, 0, 0),
                   ("r1", "n0", 2403.0, 5401.0, None, None, None, 0, 0),
                   ("r2", "n0", 1.1640625, 1.1640626192092896, None, None, None, 0, 0)],
          [3.0], "time", random.Random(0)))
def test_conservation_and_order_independence(fleet):
    n_nodes, slot_s, rows, costs, weight, rnd = fleet
    grid = SlotGrid(DAY, slot_s)
    n = grid.n_slots
    slots = pl.LazyFrame({"node_id": [f"n{i}" for i in range(n_nodes) for _ in range(n)],
                          "slot": [k for _ in range(n_nodes) for k in range(n)],
                          "cost": [costs[(i + k) % len(costs)] for i in range(n_nodes) for k in range(n)]},
                         schema_overrides={"slot": pl.Int32})
    per_request, nodes = share_node_slots(_requests(rows), slots, ["cost"], grid, weight)
    s = per_request.select("request_id", "cost").collect()
    nd = nodes.collect()
    # Both sides added exactly: what is left is the shares' own rounding. Token-weighted request
    # totals are kept to 1e-18 (`fsum`'s decimals), the rest to float precision: 1e-12 of the day
    # is ample (issue 21 lost 1.2e-9 of it).
    total = math.fsum(slots.collect()["cost"])
    assert math.fsum([*s["cost"], *nd["idle_cost"]]) == pytest.approx(total, rel=1e-12, abs=1e-15)
    assert (s["cost"] >= -1e-9).all()
    # Permuting the input rows changes nothing.
    shuffled = rows[:]
    rnd.shuffle(shuffled)
    a = dict(s.iter_rows())
    b, _ = _share(_requests(shuffled), slots, weight, grid)
    assert a.keys() == b.keys()
    assert all(abs(a[k] - b[k]) <= 1e-9 * max(1.0, abs(a[k])) for k in a)


def test_segments_on_slot_boundaries_occupy_exactly_their_slots():
    # Starts and ends exactly on slot bounds (k * 60 s) for many k: a request over [60k, 60k + 60)
    # occupies slot k alone; the slots around it stay idle. (Float division by a constant goes
    # through a reciprocal in some kernels: 180 / 60 must still be slot 3.)
    ks = list(range(1, 1439, 7))
    reqs = _requests([(f"r{k}", "n", 60 * k, 60 * k + 60, None, None, None, 1, 1) for k in ks])
    costs = [float(k) for k in range(1440)]
    shares, nodes = _share(reqs, _slots({"n": costs}))
    assert shares == pytest.approx({f"r{k}": float(k) for k in ks}, rel=1e-12)
    occupied = nodes.filter(pl.col("active") > 0)["slot"].to_list()
    assert occupied == ks
    assert nodes["idle_cost"].sum() == pytest.approx(sum(costs) - sum(float(k) for k in ks), rel=1e-12)
