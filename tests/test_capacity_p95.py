"""Issue 17/18 regression: a profile's capacity is judged on the tier's p95 answer, not the mean one,
and the planner never uses a full-load power above the node's nameplate without saying so.

The bug (2026-12-07): `profile_capacity` estimated the p95 E2E at a profile point as ITL p95 x the MEAN
output tokens with a missing TTFT counted as 0. On the demo day the premium pool's H200 nodes
(8 GPUs, Llama-3.1-70B on 2 GPUs per replica: 4 replicas) were given batch 64, 4 x 1,798.6 = 7,194.4
output tokens/s per node, where the simulator (and the profile itself: 64 / 1,798.6 s per token x the
p95 answer of 750 tokens = 26.7 s > 20 s) says batch 8, 4 x 336.5 = 1,346.0: capacity 5.3x too high,
the busiest hour at 10% where it is at 54%, and the planner's full-load power fitted on 5.3x too few
busy node-hours (29.6 kW per node)."""

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_planning_ledger import OPTIONS
from tests.test_planning_buckets import lake  # noqa: F401  (the hand day's lake fixture)
from tests.conftest import examples
from tests.hand_days import hand_inventory, tier
from transforms.capacity import day_capacity, profile_capacity
from transforms.contracts import PERFORMANCE_PROFILES
from transforms.inventory import parse_inventory
from transforms.planning.ledger import calibration, from_ledger, power_note
from transforms.planning.options import parse_options
from tests.test_capacity_marts import DAY as HAND_DAY, INVENTORY as HAND_INVENTORY
from warehouse.plan_inputs import ledger_frames

DAY = date(2026, 11, 24)
INVENTORY = hand_inventory("""
sites:
  - {id: metro-east, kind: metro, cooling: liquid, design_pue: 1.15, timezone: UTC, tariff: flat}
pools:
  - {id: premium-h200, site: metro-east, gpu_model: H200, tiers: [premium, fast], gpus_per_replica: 2}
nodes:
  - {id: m-h200-01, pool: premium-h200, gpus: 8, gpu_tdp_w: 700, idle_w: 1400, nameplate_w: 10200}
""", [tier("premium", 1.0, 20, 1.2, 3.6), tier("fast", 0.2, 20, 1.2, 3.6)],
    {"llama-3.1-70b-instruct": 70})
# fleetsim/profiles.csv's H200 rows of the 70B at 2 GPUs per replica (batch, tokens/s, W, ITL p95 ms)
H200_70B = ((8, 336.5, 882.7, 23.76), (16, 618.0, 901.9, 25.70), (32, 1065.1, 897.1, 32.20),
            (64, 1798.6, 1000.8, 44.65), (128, 2777.0, 1091.9, 76.33))


def _profiles() -> pl.LazyFrame:
    rows = [("H200", "llama-3.1-70b-instruct", 2, b, t, w, None, itl, "assumed", "fleetsim/profiles.csv")
            for b, t, w, itl in H200_70B]
    return pl.DataFrame(rows, schema=PERFORMANCE_PROFILES.schema, orient="row").lazy()


def _facts() -> pl.LazyFrame:
    """21 ok premium requests of 0, 40, ..., 800 output tokens (p95, linear: 0.95 x 20 = the 19th, 760 tokens;
    mean 400) and one fast request of 500 tokens, an hour apart (too few node-minutes for the telemetry:
    the profile decides)."""
    t0 = datetime(2026, 11, 24, tzinfo=UTC)
    tiers = ["premium"] * 21 + ["fast"]
    tokens = [40 * i for i in range(21)] + [500]
    arrived = [t0 + timedelta(minutes=60 * i) for i in range(21)] + [t0 + timedelta(minutes=30)]
    return pl.LazyFrame({
        "node_id": "m-h200-01", "pool_id": "premium-h200", "model": "llama-3.1-70b-instruct", "tier": tiers,
        "status": "ok", "arrived_at": arrived, "completed_at": [a + timedelta(seconds=10) for a in arrived],
        "ttft_s": 0.5, "output_tokens": tokens, "occupied_s": 10.0},
        schema_overrides={"arrived_at": pl.Datetime("us", "UTC"), "completed_at": pl.Datetime("us", "UTC")})


def test_the_profile_capacity_is_at_the_tiers_p95_answer_with_its_ttft():
    cap = (day_capacity(_facts(), _profiles(), parse_inventory(INVENTORY), DAY)["capacity"]
           .collect().sort("tier"))
    # premium (TTFT 1 s, E2E 20 s), the profile without TTFT: taken at the objective, 1 s. The p95 answer
    # 760 tokens at a stream's time per token batch / tokens/s:
    #   batch 8:  1 + 8 / 336.5 x 760 = 1 + 18.07 = 19.07 s <= 20
    #   batch 16: 1 + 16 / 618.0 x 760 = 1 + 19.68 = 20.68 s > 20 (and every larger batch more)
    # -> batch 8, 4 replicas (8 GPUs / 2 per replica) x 336.5 = 1,346.0 tokens/s per node, 32 in flight.
    # (The old estimate, ITL p95 x the mean 400 tokens and no TTFT: batch 64 0.04465 x 400 = 17.9 s,
    # batch 128 0.07633 x 400 = 30.5 s -> 4 x 1,798.6 = 7,194.4, 5.3x.)
    # fast (TTFT 0.2 s, E2E 20 s): its one answer, 500 tokens, is its p95:
    #   batch 32: 0.2 + 32 / 1,065.1 x 500 = 0.2 + 15.02 = 15.22 s <= 20
    #   batch 64: 0.2 + 64 / 1,798.6 x 500 = 0.2 + 17.79 = 17.99 s <= 20
    #   batch 128: 0.2 + 128 / 2,777.0 x 500 = 0.2 + 23.05 s > 20
    # -> batch 64: 4 x 1,798.6 = 7,194.4 tokens/s per node, 256 in flight.
    assert cap.select("tier", "capacity_output_tokens_per_s", "capacity_in_flight", "capacity_source",
                      "profile_batch").rows() == [
        ("fast", pytest.approx(7194.4), 256.0, "profile_assumed", 64),
        ("premium", pytest.approx(1346.0), 32.0, "profile_assumed", 8)]


def test_a_tier_without_an_ok_answer_takes_the_pools_p95():
    # fast's only request failed: its p95 is the pool's, over premium's 21 answers and none of fast's: 760
    # tokens. fast at TTFT 0.2 s: batch 16 0.2 + 19.68 = 19.88 s <= 20, batch 32 0.2 + 32 / 1,065.1 x 760 =
    # 0.2 + 22.83 s > 20 -> 4 x 618.0 = 2,472.0 tokens/s per node.
    facts = _facts().with_columns(status=pl.when(pl.col("tier") == "fast").then(pl.lit("error")).otherwise("status"))
    cap = day_capacity(facts, _profiles(), parse_inventory(INVENTORY), DAY)["capacity"].collect()
    fast = cap.filter(pl.col("tier") == "fast")
    assert fast.select("capacity_output_tokens_per_s", "profile_batch").rows() == [(pytest.approx(2472.0), 16)]


def test_a_full_load_power_fitted_above_the_nameplate_is_reported(lake):  # noqa: F811
    # The hand day (tests/test_planning_ledger.py): prem's 4 H200 nodes, idle 1,400 W, nameplate 10,200 W,
    # 8 node-hours, IT 16 kWh (8 x 7.2 MJ), energy 0.25 per kWh. At its capacity 1,600 tokens/s per node its
    # hours' demand is (2,400 + 4,000) / 1,600 = 4.0 busy node-hours: full-load 1,400 + (16,000 - 8 x 1,400) Wh
    # / 4.0 h = 1,400 + 1,200 = 2,600 W, within the nameplate: used, nothing to report.
    options = parse_options(OPTIONS + "buckets: [{name: all}]\n", "opts.yaml")
    frames = ledger_frames(lake, parse_inventory(HAND_INVENTORY), HAND_DAY, HAND_DAY, options.buckets)
    data = from_ledger(frames, options)
    prem = data.power.filter(pl.col("pool") == "prem").row(0, named=True)
    assert (prem["full_w"], prem["full_w_fitted"], prem["full_w_above_rated"]) == (
        pytest.approx(2600.0), pytest.approx(2600.0), False)
    assert power_note(data.power) is None
    # The capacity 10x too high (16,000 tokens/s per node, the kind of error of the bug): 0.4 busy node-hours,
    # fitted 1,400 + 4,800 Wh / 0.4 h = 13,400 W per node, above the 10,200 W nameplate: reported, by name. It
    # is still the plan's line (it reproduces the energy: 0.25 x (8 x 1.4 + 0.4 x 12.0) = 0.25 x 16 = 4.00,
    # the ledger's), so calibration cannot catch it: the note does.
    tenfold = frames.capacity.with_columns(pl.when(pl.col("pool") == "prem").then(pl.col("output_tokens_per_s") * 10)
                                           .otherwise(pl.col("output_tokens_per_s")))
    data = from_ledger(replace(frames, capacity=tenfold), options)
    prem = data.power.filter(pl.col("pool") == "prem").row(0, named=True)
    assert (prem["full_w"], prem["full_w_fitted"], prem["nameplate_w"], prem["full_w_above_rated"]) == (
        pytest.approx(13400.0), pytest.approx(13400.0), 10200.0, True)
    assert power_note(data.power) == (
        "full-load power fitted above the nodes' nameplate (used, as it reproduces the energy; docs/planning.md, "
        "'Inputs from the ledger': a capacity per node set too high, or a pool far below its capacity): prem "
        "13,400 W fitted > 10,200 W nameplate (0.40 busy node-hours)")
    table = calibration(data).filter(pl.col("pool") == "prem", pl.col("component") == "energy_cost").row(0, named=True)
    assert (table["model_cost"], table["ledger_cost"], table["within"]) == (pytest.approx(4.0), pytest.approx(4.0),
                                                                          True)


@settings(max_examples=examples(30), deadline=None)
@given(st.floats(10, 3000), st.floats(1.01, 4.0), st.floats(0.1, 2.0), st.floats(5, 120))
def test_a_longer_p95_answer_never_raises_the_capacity(p95, longer, ttft_obj, e2e_obj):
    # profile_capacity on the H200 70B points: the chosen point's E2E (TTFT objective + batch / tokens/s x the
    # p95 answer) is within the objective, and a longer p95 answer never gets a larger capacity.
    pools = pl.LazyFrame({"pool_id": ["p"], "gpu_model": ["H200"], "gpus": [8], "gpus_per_replica": [2]},
                         schema_overrides={"gpus_per_replica": pl.Int32})
    obj = pl.LazyFrame({"pool_id": ["p"], "tier": ["t"], "ttft_p95_s": [ttft_obj], "e2e_p95_s": [e2e_obj]})

    def cap(tokens: float) -> float:
        out = pl.LazyFrame({"pool_id": ["p"], "model": ["llama-3.1-70b-instruct"], "tier": ["t"],
                            "p95_output_tokens": [tokens]})
        got = profile_capacity(_profiles(), pools, obj, out).collect()
        if got.is_empty():
            return 0.0
        b = got["profile_batch"].item()
        tps = {x[0]: x[1] for x in H200_70B}[b]
        assert ttft_obj + b / tps * tokens <= e2e_obj
        assert got["profile_output_tokens_per_s"].item() == pytest.approx(4 * tps)
        return got["profile_output_tokens_per_s"].item()

    assert cap(p95 * longer) <= cap(p95)
