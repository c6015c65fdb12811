"""The planner's capacity per (pool, model, tier objective) and per request-size bucket, read from a
real lake (issue 18, items 1 and 2; docs/planning.md, "Capacity per pool, model, tier and bucket").

The hand day is tests/test_capacity_marts.py's (see tests/test_planning_ledger.py): prem serves
premium llama-3.1-70b-instruct, 1,000 output tokens a request, 2,400 tokens/s at 10:00 and 4,000 at
11:00 on 4 nodes (capacity 1,600 tokens/s per node from its profile at the p95 output of 1,000;
its telemetry misses every E2E); std serves standard qwen3-32b, 250 output tokens, 300 tokens/s at
10:00 (capacity 600 from its profile, above its telemetry's lower bound of 150). Every request has
100 input tokens, except (here) prem's at 11:00: 3,000, so that the two hours are of two sizes.
Prices 0.25 (metro-east) and 0.20 (remote-plains) per kWh, PUE 1; prem full-load 2,600 W (1.2 kW
above idle 1.4 kW), std 1,060 W (0.64 above 0.42).
"""

from dataclasses import replace

import polars as pl
import pytest

from lake.store import Lake
from tests.test_capacity_marts import DAY, INVENTORY, build, request_costs
from tests.test_planning_ledger import OPTIONS
from pipelines.cli.planning import unknown_capacity_note
from transforms.inventory import parse_inventory
from transforms.planning import PlanInfeasible, plan
from transforms.planning.buckets import BUCKET_CAPACITY_SCHEMA, Bucket
from transforms.planning.ledger import calibration, from_ledger
from transforms.planning.options import PlanOptionsError, parse_options
from transforms.planning.pairs import routing_pairs
from warehouse.plan_inputs import ledger_frames

BUCKETS = OPTIONS + """
buckets:
  - {name: short, max_tokens: 2000}
  - {name: long}
"""


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("plan-buckets") / "lake"
    build(Lake(root), with_profiles=True)
    # prem's 11:00 requests read 3,000 input tokens: 4,000 tokens in all, the `long` bucket
    facts = request_costs().with_columns(input_tokens=pl.when((pl.col("pool_id") == "prem")
                                                              & (pl.col("arrived_at").dt.hour() == 11))
                                         .then(3000).otherwise(pl.col("input_tokens")))
    Lake(root).write(facts, "request_costs", DAY)
    return root


def _from(lake, text):
    options = parse_options(text, "opts.yaml")
    return from_ledger(ledger_frames(lake, parse_inventory(INVENTORY), DAY, DAY, options.buckets), options)


def test_capacity_per_bucket_is_the_mix_scaled_by_tokens_processed(lake):
    data = _from(lake, BUCKETS)
    # prem's mix: 8,640 requests of 100 + 1,000 tokens (10:00: 4 nodes x 60 min x 36) and 14,400 of
    # 3,000 + 1,000 (11:00: x 60): input 0.864e6 + 43.2e6 = 44.064e6, output 23.04e6 tokens:
    # r = 67.104e6 / 23.04e6 = 2.9125 tokens processed per output token. short: 1,100 / 1,000 = 1.1,
    # long: 4,000 / 1,000 = 4. Capacity 1,600 x 2.9125 / 1.1 = 4,236.36 (short), x 2.9125 / 4 = 1,165
    # (long). std: one size (350 / 250 = 1.4 both): 600, above its bucket's telemetry (150).
    cap = {(r["pool"], r["bucket"]): r for r in data.inputs.capacity.collect().iter_rows(named=True)}
    assert cap[("prem", "short")]["output_tokens_per_s"] == pytest.approx(1600 * 2.9125 / 1.1)
    assert cap[("prem", "long")]["output_tokens_per_s"] == pytest.approx(1165.0)
    assert cap[("std", "short")]["output_tokens_per_s"] == pytest.approx(600.0)
    assert set(cap) == {("prem", "short"), ("prem", "long"), ("std", "short")}
    sources = dict(data.power.select("pool", "capacity_source").iter_rows())
    assert sources == {"prem": "scaled_profile_reference", "std": "scaled_profile_assumed"}
    # demand per (hour, tier, model, bucket): 10:00 premium short 2,400, standard short 300; 11:00 premium
    # long 4,000; zero rows keep every combination in both hours
    demand = {(r["hour"].hour, r["tier"], r["bucket"]): r["output_tokens_per_s"]
              for r in data.inputs.demand.collect().iter_rows(named=True)}
    assert demand == {(10, "premium", "short"): 2400.0, (10, "premium", "long"): 0.0, (10, "standard", "short"): 300.0,
                      (11, "premium", "short"): 0.0, (11, "premium", "long"): 4000.0, (11, "standard", "short"): 0.0}


def test_buckets_move_the_nodes_to_the_hour_of_long_requests(lake):
    # busy prem: 10:00 2,400 / 4,236.36 = 0.5665, 11:00 4,000 / 1,165 = 3.4335; 4.0 node-hours in all, as
    # one bucket (2,400 / 1,600 + 4,000 / 1,600 = 1.5 + 2.5): the full-load fit is unchanged (2,600 W) and
    # calibration exact (4.40). Nodes: 10:00 max(ceil 0.57, minimum 2) = 2, 11:00 ceil(3.43) = 4 (one
    # bucket said 3). Energy prem 0.25 x ((2 x 1.4 + 0.5665 x 1.2) + (4 x 1.4 + 3.4335 x 1.2)) = 0.25 x
    # (8.4 + 4.0 x 1.2) = 3.30; std 0.232 (tests/test_planning_ledger.py): 3.532.
    data = _from(lake, BUCKETS)
    assert {p.name: p.full_w for p in data.inputs.pools}["prem"] == pytest.approx(2600.0)
    assert calibration(data).filter(pl.col("pool") == "ALL")["model_cost"].sum() == pytest.approx(4.4)
    made = plan(data.inputs)
    assert made.nodes.sort("pool", "hour")["nodes_on"].to_list() == [2, 4, 1, 1]
    assert made.objective == pytest.approx(3.532)
    # one bucket (the mix): 10:00 1.5 -> 2 nodes, 11:00 2.5 -> 3 nodes: 3.182, short of the long hour's need
    single = plan(_from(lake, OPTIONS + "buckets: [{name: all}]\n").inputs)
    assert single.nodes.sort("pool", "hour")["nodes_on"].to_list() == [2, 3, 1, 1]
    assert single.objective == pytest.approx(3.182)


def test_each_tier_takes_the_capacity_at_its_own_objective(lake):
    # prem learned at standard's objectives too (as if it had served it): 3,000 tokens/s per node. The
    # points: premium at (0.5 - 0.004, 8 - 0.004) s with 1,600, standard at (2 - 0.004, 30 - 0.004) with
    # 3,000. Premium qualifies only for its own point; standard (looser) for both, and takes 3,000.
    options = parse_options(OPTIONS + "buckets: [{name: all}]\n", "opts.yaml")
    frames = ledger_frames(lake, parse_inventory(INVENTORY), DAY, DAY, options.buckets)
    extra = pl.LazyFrame([("prem", "qwen3-32b", "standard", "all", 3000.0, "profile_reference"),
                          ("prem", "llama-3.1-70b-instruct", "standard", "all", 3000.0, "profile_reference")],
                         schema=BUCKET_CAPACITY_SCHEMA, orient="row")
    data = from_ledger(replace(frames, capacity=pl.concat([frames.capacity, extra])), options)
    pairs = {(r["tier"], r["model"], r["pool"]): r["capacity_at_objective"]
             for r in routing_pairs(data.inputs).collect().iter_rows(named=True)}
    assert pairs[("premium", "llama-3.1-70b-instruct", "prem")] == 1600.0
    assert pairs[("standard", "qwen3-32b", "prem")] == 3000.0
    assert pairs[("standard", "qwen3-32b", "std")] == 600.0


def test_an_unknown_capacity_is_never_planned_on_but_its_energy_is_priced(lake):
    # std's capacity unknown (no profile, no telemetry): one point without latencies at the most
    # tokens/s per node it served in an hour (10:00: 300 / 2 nodes = 150), for pricing only. Busy 300 /
    # 150 = 2 node-hours; fitted slope (2 - 4 x 0.42) / 2 = 0.16 kW; the model's energy 0.2 x ((2 x 0.42 +
    # 2 x 0.16) + 2 x 0.42) = 0.40, the ledger's. The plan cannot route standard anywhere: infeasible,
    # naming the reason.
    options = parse_options(OPTIONS + "buckets: [{name: all}]\n", "opts.yaml")
    frames = ledger_frames(lake, parse_inventory(INVENTORY), DAY, DAY, options.buckets)
    unknown = frames.capacity.with_columns(
        output_tokens_per_s=pl.when(pl.col("pool") == "std").then(None).otherwise(pl.col("output_tokens_per_s")),
        capacity_source=pl.when(pl.col("pool") == "std").then(pl.lit("unknown")).otherwise("capacity_source"))
    data = from_ledger(replace(frames, capacity=unknown), options)
    point = data.inputs.capacity.filter(pl.col("pool") == "std").collect()
    assert point["output_tokens_per_s"].to_list() == [150.0] and point["ttft_p95_s"].to_list() == [None]
    energy = calibration(data).filter(pl.col("pool") == "std", pl.col("component") == "energy_cost")
    assert energy["model_cost"].item() == pytest.approx(0.40)
    with pytest.raises(PlanInfeasible, match=r"'std': 'capacity_unknown'"):
        plan(data.inputs)


@pytest.mark.parametrize(("text", "message"), [
    ("buckets: [{name: a, max_tokens: 100}, {name: b, max_tokens: 50}, {name: c}]",
     r"buckets\[1\].max_tokens: 50 is not above 100"),
    ("buckets: [{name: a, max_tokens: 100}, {name: b, max_tokens: 500}]", r"buckets\[1\].max_tokens: present on"),
    ("buckets: [{name: a}, {name: b}]", r"buckets\[0\].max_tokens: missing"),
    ("buckets: [{name: a, max_tokens: 100}, {name: a}]", r"buckets\[1\].name: 'a' repeats"),
    ("buckets: []", r"buckets: expected a list of buckets"),
])
def test_bucket_options_are_checked(text, message):
    with pytest.raises(PlanOptionsError, match=message):
        parse_options(OPTIONS + text + "\n", "opts.yaml")


def test_default_buckets():
    assert parse_options(OPTIONS, "opts.yaml").buckets == (Bucket("small", 1000), Bucket("medium", 4000),
                                                           Bucket("large", None))


def test_the_plan_says_which_capacity_is_unknown_and_routes_around_it(lake):
    # std unknown; prem learned for standard's qwen3-32b at 3,000 tokens/s (as if it had served it): the
    # plan sends standard's 300 tokens/s to prem (0.1 node-equivalent) and names std as unknown
    options = parse_options(OPTIONS + "buckets: [{name: all}]\n", "opts.yaml")
    frames = ledger_frames(lake, parse_inventory(INVENTORY), DAY, DAY, options.buckets)
    capacity = pl.concat([frames.capacity.filter(pl.col("pool") != "std"), pl.LazyFrame(
        [("std", "qwen3-32b", "standard", "all", None, "unknown"),
         ("prem", "qwen3-32b", "standard", "all", 3000.0, "profile_reference")],
        schema=BUCKET_CAPACITY_SCHEMA, orient="row")])
    made = plan(from_ledger(replace(frames, capacity=capacity), options).inputs)
    assert set(made.routing.filter(pl.col("tier") == "standard")["pool"]) == {"prem"}
    assert unknown_capacity_note(made.exclusions).endswith("add a profile or let the telemetry learn it): "
                                                          "std qwen3-32b (all)")
    assert unknown_capacity_note(made.exclusions.filter(pl.col("pool") != "std")) is None


def test_a_bucket_seen_only_in_failed_requests_takes_their_size(tmp_path):
    # node p1's 36 requests of 10:00's first minute failed, with 20,000 input tokens: a `huge` bucket of
    # failed requests only. prem's ok mix: 10:00 8,604 x (100 + 1,000), 11:00 14,400 x (3,000 + 1,000):
    # input 0.8604e6 + 43.2e6 = 44.0604e6, output 23.004e6 -> r = 67.0644e6 / 23.004e6; huge's r_b from
    # its failed requests: 21,000 / 1,000 = 21. Capacity 1,600 x r / 21 (about 222.1), not unknown.
    root = tmp_path / "lake"
    build(Lake(root), with_profiles=True)
    first = (pl.col("node_id") == "p1") & (pl.col("arrived_at") == pl.datetime(2026, 3, 10, 10, time_zone="UTC"))
    facts = request_costs().with_columns(
        input_tokens=pl.when(first).then(20_000).when((pl.col("pool_id") == "prem")
                                                      & (pl.col("arrived_at").dt.hour() == 11))
        .then(3000).otherwise(pl.col("input_tokens")),
        status=pl.when(first).then(pl.lit("error")).otherwise(pl.col("status")))
    Lake(root).write(facts, "request_costs", DAY)
    data = _from(root, OPTIONS + "buckets: [{name: short, max_tokens: 2000}, {name: long, max_tokens: 5000}, "
                 "{name: huge}]\n")
    cap = {r["bucket"]: r["output_tokens_per_s"] for r in data.inputs.capacity.collect().iter_rows(named=True)
           if r["pool"] == "prem"}
    assert cap["huge"] == pytest.approx(1600 * (67_064_400 / 23_004_000) / 21)
    assert cap["long"] == pytest.approx(1600 * (67_064_400 / 23_004_000) / 4)
