"""Partial slots (issue 16, item 4; DOMAIN 3.3): the seconds of a slot with no active request are
idle. The union of the requests' active intervals inside a slot is occupied; that share of
every cost component of the slot goes to its requests by weight, the rest to idle. Hand-computed
figures on `occupancy.share_node_slots`, the function `day.share_day` calls."""

from datetime import date, datetime, timedelta, UTC

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import examples
from transforms.attribution.grid import SlotGrid
from transforms.attribution.occupancy import _union_events, share_node_slots, slot_weights

DAY = date(2026, 11, 24)
T0 = datetime(2026, 11, 24, tzinfo=UTC)
COMPONENTS = ["it_energy_j", "overhead_j", "energy_cost", "demand_cost", "amortization_cost", "cloud_cost",
              "fixed_cost"]


def _requests(rows):
    """rows: (request_id, start_s, end_s, prefill_s, decode_s, input_tokens, output_tokens), node `n`."""
    return pl.LazyFrame(
        [(r[0], "n", T0 + timedelta(seconds=r[1]), T0 + timedelta(seconds=r[2]), None, *r[3:]) for r in rows],
        schema={"request_id": pl.String, "node_id": pl.String, "arrived_at": pl.Datetime("us", "UTC"),
                "completed_at": pl.Datetime("us", "UTC"), "queue_s": pl.Float64, "prefill_s": pl.Float64,
                "decode_s": pl.Float64, "input_tokens": pl.Int64, "output_tokens": pl.Int64}, orient="row")


def _slots(grid: SlotGrid, amounts: dict[str, float]) -> pl.LazyFrame:
    """Every slot of node `n` with the same amounts per component."""
    n = grid.n_slots
    return pl.LazyFrame({"node_id": ["n"] * n, "slot": list(range(n)), **{c: [v] * n for c, v in amounts.items()}},
                        schema_overrides={"slot": pl.Int32})


def _share(reqs, slots, grid, weight="time", components=COMPONENTS):
    per_request, nodes = share_node_slots(reqs, slots, components, grid, weight)
    return per_request.sort("request_id").collect(), nodes.sort("slot").collect()


# One slot's amounts, a different figure per component.
AMOUNTS = {"it_energy_j": 36_000.0, "overhead_j": 7_200.0, "energy_cost": 0.012, "demand_cost": 0.006,
           "amortization_cost": 0.24, "cloud_cost": 0.09, "fixed_cost": 0.03}


def test_a_lone_30_s_request_in_a_60_s_slot_pays_half_of_every_component_and_leaves_30_s_idle():
    # R holds the GPU 00:01:10-00:01:40, alone, inside slot 1 [60, 120): occupied 30 s of 60, so
    # R pays 30/60 = 1/2 of each component (it_energy_j 36,000 J -> 18,000 J, amortization
    # 0.24 -> 0.12, ...), and the other half of each is idle. Every other slot is wholly idle.
    grid = SlotGrid(DAY, 60)
    facts, nodes = _share(_requests([("R", 70, 100, None, None, 1, 1)]), _slots(grid, AMOUNTS), grid)
    row = facts.row(0, named=True)
    for c, v in AMOUNTS.items():
        assert row[c] == pytest.approx(v / 2, rel=1e-15), c
    assert row["occupied_s"] == 30.0
    slot1 = nodes.row(1, named=True)
    assert slot1["occupied_s"] == 30.0 and slot1["occupied"] and slot1["active"] == 1
    for c, v in AMOUNTS.items():
        assert slot1[f"idle_{c}"] == pytest.approx(v / 2, rel=1e-15), c
        # Conserved per component: request + idle = the slot's amount, over the day too.
        assert row[c] + slot1[f"idle_{c}"] == pytest.approx(v, rel=1e-15)
        assert row[c] + nodes[f"idle_{c}"].sum() == pytest.approx(v * grid.n_slots, rel=1e-12)
    assert nodes.filter(pl.col("slot") != 1)["occupied_s"].max() == 0.0


def test_two_overlapping_requests_share_the_union_of_their_seconds_by_weight():
    # Slot 0 [0, 60), amortization 12.0. A [10, 40) and B [30, 50) overlap on [30, 40): their
    # union [10, 50) is 40 s, so 12 x 40/60 = 8.0 goes to requests and 4.0 is idle. By time
    # weight (A 30 s, B 20 s of 50): A = 8 x 30/50 = 4.8, B = 8 x 20/50 = 3.2.
    grid = SlotGrid(DAY, 60)
    reqs = _requests([("A", 10, 40, None, None, 1, 1), ("B", 30, 50, None, None, 1, 1)])
    facts, nodes = _share(reqs, _slots(grid, {"amortization_cost": 12.0}), grid, components=["amortization_cost"])
    assert dict(facts.select("request_id", "amortization_cost").iter_rows()) == pytest.approx({"A": 4.8, "B": 3.2},
                                                                                             rel=1e-15)
    slot0 = nodes.row(0, named=True)
    assert (slot0["occupied_s"], slot0["weight"], slot0["active"]) == (40.0, 50.0, 2)
    assert slot0["idle_amortization_cost"] == pytest.approx(4.0, rel=1e-15)
    # The union across a slot edge: C [50, 70) with A and B adds [50, 60) to slot 0 (now 50 s
    # occupied: 12 x 50/60 = 10.0 to requests, 2.0 idle) and [60, 70) to slot 1 (10 s: 2.0 to C,
    # 10.0 idle). Slot 0 by weight (A 30, B 20, C 10 of 60): A 5.0, B 10/3, C 10/6; C in all
    # 10/6 + 2 = 11/3.
    reqs = _requests([("A", 10, 40, None, None, 1, 1), ("B", 30, 50, None, None, 1, 1),
                      ("C", 50, 70, None, None, 1, 1)])
    facts, nodes = _share(reqs, _slots(grid, {"amortization_cost": 12.0}), grid, components=["amortization_cost"])
    assert dict(facts.select("request_id", "amortization_cost").iter_rows()) == pytest.approx(
        {"A": 5.0, "B": 10 / 3, "C": 11 / 3}, rel=1e-14)
    assert nodes["occupied_s"].head(2).to_list() == [50.0, 10.0]
    assert nodes["idle_amortization_cost"].head(2).to_list() == pytest.approx([2.0, 10.0], rel=1e-14)


def test_token_weights_share_the_occupied_part_only():
    # Slot 0, energy cost 9.0. A: prefill [0, 10) 100 input tokens (10 tok/s), decode [10, 30)
    # 20 output tokens (1 tok/s). B: no phase timings, [20, 40) with 40 tokens (2 tok/s). Union
    # [0, 40) = 40 s: 9 x 40/60 = 6.0 to requests, 3.0 idle. Weights: A 10x10 + 20x1 = 120,
    # B 20 x 2 = 40, W = 160: A = 6 x 120/160 = 4.5, B = 6 x 40/160 = 1.5.
    grid = SlotGrid(DAY, 60)
    reqs = _requests([("A", 0, 30, 10.0, 20.0, 100, 20), ("B", 20, 40, None, None, 20, 20)])
    facts, nodes = _share(reqs, _slots(grid, {"energy_cost": 9.0}), grid, weight="tokens",
                          components=["energy_cost"])
    assert dict(facts.select("request_id", "energy_cost").iter_rows()) == pytest.approx({"A": 4.5, "B": 1.5},
                                                                                       rel=1e-14)
    slot0 = nodes.row(0, named=True)
    assert (slot0["occupied_s"], slot0["weight"]) == (40.0, 160.0)
    assert slot0["idle_energy_cost"] == pytest.approx(3.0, rel=1e-15)


@pytest.mark.parametrize("slot_s", [30, 60, 300, 3600])
def test_a_lone_requests_direct_cost_does_not_depend_on_the_slot_length(slot_s):
    # Uniform energy: 500 W on the node, so a slot of slot_s seconds holds 500 x slot_s J and
    # costs 0.0001 x slot_s. R holds the GPU [45, 135) alone: 90 s, so it takes 500 x 90 =
    # 45,000 J and 0.009 whatever the slots (60 s: 15 s of slot 0, slot 1, 15 s of slot 2;
    # 30 s: 15 s of slot 1, slots 2-3, 15 s of slot 4; 300 s and 3600 s: 90 s of slot 0).
    grid = SlotGrid(DAY, slot_s)
    slots = _slots(grid, {"it_energy_j": 500.0 * slot_s, "energy_cost": 0.0001 * slot_s})
    facts, nodes = _share(_requests([("R", 45, 135, None, None, 1, 1)]), slots, grid,
                          components=["it_energy_j", "energy_cost"])
    assert facts["it_energy_j"].item() == pytest.approx(45_000.0, rel=1e-12)
    assert facts["energy_cost"].item() == pytest.approx(0.009, rel=1e-12)
    assert nodes["occupied_s"].sum() == pytest.approx(90.0, rel=1e-15)
    assert facts["energy_cost"].item() + nodes["idle_energy_cost"].sum() == pytest.approx(0.0001 * 86_400, rel=1e-12)


@st.composite
def intervals(draw):
    slot_s = draw(st.sampled_from([60, 300]))
    # whole microseconds, as the engine snaps them; some overlapping, some across slot edges
    rows = []
    for i in range(draw(st.integers(1, 12))):
        s_us = draw(st.integers(0, 1_800_000_000))
        rows.append((f"r{i}", s_us, s_us + draw(st.integers(0, 400_000_000))))
    return slot_s, rows


def _union_by_slot(rows, slot_s: int, n_slots: int) -> list[int]:
    """Occupied microseconds per slot, by merging the intervals in plain Python."""
    merged: list[list[int]] = []
    for s, e in sorted((s, e) for _, s, e in rows if e > s):
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    slot_us = slot_s * 1_000_000
    out = [0] * n_slots
    for s, e in merged:
        for k in range(s // slot_us, (e - 1) // slot_us + 1):
            out[k] += min(e, (k + 1) * slot_us) - max(s, k * slot_us)
    return out


@settings(max_examples=examples(40), deadline=None)
@given(intervals())
def test_occupied_seconds_are_the_union_of_the_intervals_and_each_slot_is_conserved(case):
    slot_s, rows = case
    grid = SlotGrid(DAY, slot_s)
    reqs = pl.LazyFrame({"request_id": [r for r, _, _ in rows], "node_id": ["n"] * len(rows),
                         "arrived_at": [T0 + timedelta(microseconds=s) for _, s, _ in rows],
                         "completed_at": [T0 + timedelta(microseconds=e) for _, _, e in rows],
                         "queue_s": [None] * len(rows)},
                        schema_overrides={"arrived_at": pl.Datetime("us", "UTC"),
                                          "completed_at": pl.Datetime("us", "UTC"), "queue_s": pl.Float64})
    facts, nodes = _share(reqs, _slots(grid, {"fixed_cost": 7.0}), grid, components=["fixed_cost"])
    expected = _union_by_slot([(r, s, e) for r, s, e in rows], slot_s, grid.n_slots)
    assert (nodes["occupied_s"] * 1e6).round(0).cast(pl.Int64).to_list() == expected
    # Per slot: the requests' part is 7 x occupied share, the idle part the rest (to float precision).
    busy = [7.0 * us / (slot_s * 1e6) for us in expected]
    assert nodes["idle_fixed_cost"].to_list() == pytest.approx([7.0 - b for b in busy], abs=1e-12)
    assert facts["fixed_cost"].sum() == pytest.approx(sum(busy), abs=1e-9)


def test_occupied_seconds_merge_nested_touching_and_long_segments_node_by_node():
    # slot_weights on two nodes at 60 s slots (the union read off in start order, the weight events
    # made from one read of the segments). Node a: [10, 40), [30, 50) (overlap), [15, 20) (nested),
    # [50, 60) (touching at 50), [60, 130) (touching at 60, over three slots): one interval [10, 130):
    # occupied slot 0 [10, 60) = 50 s, slot 1 = 60 s, slot 2 [120, 130) = 10 s. Node b: [0, 5) and
    # [100, 200): slot 0 = 5 s, slot 1 [100, 120) = 20 s, slot 2 = 60 s, slot 3 [180, 200) = 20 s.
    # Time weights (seconds of each segment in the slot, summed): node a slot 0 = 30 + 20 + 5 + 10 = 65
    # (4 segments active), slot 1 = 60 ([60, 130) spans it whole), slot 2 = 10; node b slot 0 = 5,
    # slot 1 = 20, slot 2 = 60 (spanned), slot 3 = 20.
    grid = SlotGrid(DAY, 60)
    spans = {"a": [(10, 40), (30, 50), (15, 20), (50, 60), (60, 130)], "b": [(0, 5), (100, 200)]}
    segments = pl.LazyFrame([(f"{n}{i}", n, float(s), float(e), 1.0) for n, rows in spans.items()
                             for i, (s, e) in enumerate(rows)],
                            schema={"request_id": pl.String, "node_id": pl.String, "s": pl.Float64,
                                    "e": pl.Float64, "density": pl.Float64}, orient="row")
    node_slots = pl.LazyFrame({"node_id": ["a"] * 5 + ["b"] * 5, "slot": list(range(5)) * 2},
                              schema_overrides={"slot": pl.Int32})
    out = slot_weights(segments, node_slots, grid).sort("node_id", "slot").collect()
    assert out["occupied_s"].to_list() == [50.0, 60.0, 10.0, 0.0, 0.0, 5.0, 20.0, 60.0, 20.0, 0.0]
    assert out["weight"].to_list() == [65.0, 60.0, 10.0, 0.0, 0.0, 5.0, 20.0, 60.0, 20.0, 0.0]
    assert out["active"].to_list() == [4, 1, 1, 0, 0, 1, 1, 1, 1, 0]


def test_union_events_one_row_per_slot_from_one_read_of_the_merged_intervals():
    # `_union_events` on the node-slot example above, nodes as indexes (a = 0, b = 1), 60 s slots.
    # Node 0 merges to one interval [10, 130) s over slots 0..2: slot 0 covers 60 - 10 = 50 s
    # (`_u` 50,000,000 µs), slot 2 covers 130 - 120 = 10 s (`_u` 10,000,000, `_k` -1: the run of whole
    # slots ends there), slot 1 is whole (`_u` 0, `_k` +1 after the first slot). Node 1: [0, 5) in
    # slot 0 alone (5,000,000 µs); [100, 200) over slots 1..3: slot 1 120 - 100 = 20 s, slot 3
    # 200 - 180 = 20 s (`_k` -1), slot 2 `_k` +1. One row per (node, slot) an interval touches.
    spans = pl.LazyFrame([(0, 10.0, 40.0), (0, 30.0, 50.0), (0, 15.0, 20.0), (0, 50.0, 60.0), (0, 60.0, 130.0),
                          (1, 0.0, 5.0), (1, 100.0, 200.0)],
                         schema={"_n": pl.Int64, "s": pl.Float64, "e": pl.Float64}, orient="row")
    out = _union_events(spans, 60).sort("_n", "slot").collect()
    assert out.rows() == [(0, 0, 50_000_000, 0), (0, 1, 0, 1), (0, 2, 10_000_000, -1),
                          (1, 0, 5_000_000, 0), (1, 1, 20_000_000, 0), (1, 2, 0, 1), (1, 3, 20_000_000, -1)]
    assert out.schema == pl.Schema({"_n": pl.Int64, "slot": pl.Int32, "_u": pl.Int64, "_k": pl.Int64})
