"""The planner on hand-solvable instances: exact optima, arithmetic in the comments (docs/planning.md)."""

import polars as pl
import pytest

from tests.planning_instances import STANDARD, hour, inputs, two_pools_one_tier
from transforms.planning import (NODES_SCHEMA, ROUTING_SCHEMA, HardwareOption, PlanInfeasible, PlanInputError, Pool,
                                 Site, Tier, WhatIfError, calibrate, parse_what_if, plan, what_if)
from transforms.planning.whatif import ChangeNodes, Route

CENT = 1e-9


def shares(p) -> dict:
    return {(r["hour"].hour, r["tier"], r["pool"]): r["share"] for r in p.routing.iter_rows(named=True)}


def nodes(p) -> dict:
    return {(r["pool"], r["hour"].hour): r["nodes_on"] for r in p.nodes.iter_rows(named=True)}


def binds(p) -> set:
    return {(r["kind"], r["key"], r["hour"].hour) for r in p.binds.iter_rows(named=True)}


def test_cheaper_pool_takes_demand_until_its_capacity_binds():
    p = plan(two_pools_one_tier())
    # cheap: a node on costs idle 1 kW x 0.10 = 0.10/h, a busy node-equivalent (100 tok/s) adds
    # (3 - 1) kW x 0.10 = 0.20. dear: the same + rent 2.00. 300 tok/s = 3 node-equivalents:
    # cheap takes 2 (its 2 nodes full), dear 1 node.
    assert nodes(p) == {("cheap", 0): 2, ("dear", 0): 1}
    assert shares(p) == pytest.approx({(0, "standard", "cheap"): 2 / 3, (0, "standard", "dear"): 1 / 3})
    # energy: cheap 2 x 0.10 + 2 x 0.20 = 0.60; dear 0.10 + 0.20 = 0.30 -> 0.90.
    # rent: dear 1 x 2.00 = 2.00. egress: 300 tok/s x 3600 s x 1000 B = 1.08 GB x 0.05 = 0.054.
    costs = p.cost_by_component()
    assert costs["energy_cost"] == pytest.approx(0.90, abs=CENT)
    assert costs["rent_cost"] == pytest.approx(2.00, abs=CENT)
    assert costs["egress_cost"] == pytest.approx(0.054, abs=CENT)
    assert costs["amortization_cost"] == 0  # owned hardware is sunk within a day
    assert costs["total_cost"] == pytest.approx(2.954, abs=CENT)
    assert p.objective == pytest.approx(2.954, abs=CENT)
    assert p.status == "Optimal" and p.mip_gap <= 1e-6
    assert {("capacity", "cheap", 0), ("availability", "cheap", 0), ("capacity", "dear", 0)} <= binds(p)


def metro_and_remote():
    premium = Tier("premium", ttft_p95_s=0.3, e2e_p95_s=10.0, users="metro")
    common = {"gpu_model": "H100", "nodes_available": 2, "idle_w": 1000.0, "full_w": 3000.0, "pue": 1.0}
    points = [(0.2, 5.0, 100.0), (1.0, 10.0, 200.0)]  # (ttft, e2e, tok/s per node)
    return inputs(
        demand=[(0, "premium", "llama", "all", 100.0), (0, "standard", "llama", "all", 100.0)],
        tiers=[premium, STANDARD], pools=[Pool("metro-h100", site="metro", **common),
                                         Pool("remote-h100", site="remote", **common)],
        sites=[Site("metro"), Site("remote")],
        capacity=[(pool, "llama", "all", *pt) for pool in ("metro-h100", "remote-h100") for pt in points],
        round_trips=[("metro", "metro", 5.0), ("remote", "metro", 400.0)],
        prices={"metro": 0.30, "remote": 0.05})


def test_premium_tier_kept_off_the_remote_site_by_its_round_trip():
    p = plan(metro_and_remote())
    # premium: remote's 0.400 s round trip alone breaks its 0.3 s TTFT -> excluded. At metro the
    # budget is 0.3 - 0.005 = 0.295 s: only the 0.2 s point (100 tok/s) -> 1 node, fully busy:
    # 1 kW x 0.30 + 2 kW x 1.0 x 0.30 = 0.90. standard on remote: budget 2 - 0.4 = 1.6 s, the 1.0 s
    # point (200 tok/s) -> 0.5 node-equivalent on 1 node: 1 kW x 0.05 + 2 kW x 0.5 x 0.05 = 0.10.
    # (standard at metro would need a second node there: 0.30 + 2 x 0.5 x 0.30 = 0.60 > 0.10.)
    assert shares(p) == {(0, "premium", "metro-h100"): 1.0, (0, "standard", "remote-h100"): 1.0}
    assert nodes(p) == {("metro-h100", 0): 1, ("remote-h100", 0): 1}
    assert p.objective == pytest.approx(1.00, abs=CENT)
    excluded = {(r["tier"], r["pool"]): r["excluded"] for r in p.exclusions.iter_rows(named=True)}
    assert excluded == {("premium", "remote-h100"): "round_trip"}


def test_what_if_moves_a_tier_to_a_site():
    # standard moved to the metro site: a second metro node, 0.5 busy at the 1.0 s point (budget
    # 2 - 0.005 s): 0.30 + 2 kW x 0.5 x 0.30 = 0.60, beside premium's 0.90; remote off: 1.50.
    p = what_if(metro_and_remote(), "move standard to metro")
    assert nodes(p) == {("metro-h100", 0): 2, ("remote-h100", 0): 0}
    assert p.objective == pytest.approx(1.50, abs=CENT)
    # the premium tier cannot be moved to the remote site: every pool left to it is excluded
    with pytest.raises(PlanInfeasible, match="'remote-h100': 'round_trip'"):
        what_if(metro_and_remote(), "premium -> site remote")


def test_site_power_cap_binds():
    common = {"gpu_model": "H100", "nodes_available": 10, "idle_w": 1000.0, "full_w": 2000.0}
    p = plan(inputs(
        demand=[(0, "standard", "llama", "all", 600.0)], tiers=[STANDARD],
        pools=[Pool("pa", site="a", pue=1.25, **common), Pool("pb", site="b", pue=1.0, **common)],
        sites=[Site("a", power_cap_kw=5.0), Site("b")],
        capacity=[(pool, "llama", "all", 0.5, 10.0, 100.0) for pool in ("pa", "pb")],
        round_trips=[("a", "metro", 5.0), ("b", "metro", 5.0)], prices={"a": 0.10, "b": 0.20}))
    # A node-equivalent fully busy: at a, 2 kW IT x 1.25 = 2.5 kW x 0.10 = 0.25/h; at b, 2 kW x 0.20
    # = 0.40/h. 600 tok/s = 6 node-equivalents; all at a would draw 15 kW > the 5 kW cap. a's draw
    # with n nodes and u busy: 1.25 x (n + u) kW <= 5 -> n = u = 2 (0.50); b takes 4 (1.60).
    assert nodes(p) == {("pa", 0): 2, ("pb", 0): 4}
    assert shares(p) == pytest.approx({(0, "standard", "pa"): 1 / 3, (0, "standard", "pb"): 2 / 3})
    assert p.objective == pytest.approx(2.10, abs=CENT)
    assert ("power_cap", "a", 0) in binds(p)


def test_an_hour_of_zero_demand_keeps_only_the_redundancy_minimum():
    p = plan(inputs(
        demand=[(0, "standard", "llama", "all", 250.0), (1, "standard", "llama", "all", 0.0)], tiers=[STANDARD],
        pools=[Pool("p", "m", "H100", nodes_available=5, idle_w=500.0, full_w=1500.0, pue=1.0, redundancy_min=2)],
        sites=[Site("m")], capacity=[("p", "llama", "all", 0.5, 10.0, 100.0)],
        round_trips=[("m", "metro", 5.0)], prices={"m": 0.20}))
    # hour 0: 250 tok/s = 2.5 node-equivalents -> 3 nodes: 3 x 0.5 kW x 0.20 + 2.5 x 1 kW x 0.20
    # = 0.30 + 0.50 = 0.80. hour 1: no demand, the minimum 2 nodes idle: 2 x 0.5 x 0.20 = 0.20.
    assert nodes(p) == {("p", 0): 3, ("p", 1): 2}
    assert p.objective == pytest.approx(1.00, abs=CENT)
    assert ("redundancy", "p", 1) in binds(p) and ("redundancy", "p", 0) not in binds(p)


def test_what_if_is_priced_above_the_optimum_and_at_most_today():
    base = two_pools_one_tier()
    optimum = plan(base).objective  # 2.954 (above)
    # today: everything on `dear`, 3 nodes: 3 x (0.10 + 2.00) + 3 x 0.20 + egress 0.054 = 6.954
    today_nodes = pl.LazyFrame([("dear", hour(0), 3)], schema=NODES_SCHEMA, orient="row")
    today_routing = pl.LazyFrame([(hour(0), "standard", "llama", "all", "dear", 1.0)], schema=ROUTING_SCHEMA,
                                 orient="row")
    today = calibrate(base, today_nodes, today_routing).collect()
    assert today["total_cost"].sum() == pytest.approx(6.954, abs=CENT)
    # retire 1 node of cheap: cheap 1 node full (0.30), dear 2 nodes 2 x 2.10 + 2 x 0.20 = 4.60, egress
    # 0.054 -> 4.954.
    retired = what_if(base, "retire 1 node of cheap")
    assert retired.objective == pytest.approx(4.954, abs=CENT)
    assert optimum < retired.objective <= today["total_cost"].sum()
    # forcing the tier onto `dear` is today's routing: priced as today.
    forced = what_if(base, "standard -> pool dear")
    assert forced.objective == pytest.approx(6.954, abs=CENT)


def test_what_if_grammar_and_its_errors():
    assert parse_what_if("standard -> pool remote-l40s; retire 2 nodes of premium-h200; move batch to cloud") == (
        Route("standard", "pool", "remote-l40s"), ChangeNodes("premium-h200", -2), Route("batch", "any", "cloud"))
    assert parse_what_if("Add 1 node of p") == (ChangeNodes("p", 1),)
    with pytest.raises(WhatIfError, match=r"clause 2 'retire two nodes of p' is not understood"):
        parse_what_if("standard -> site m; retire two nodes of p")
    base = two_pools_one_tier()
    with pytest.raises(WhatIfError, match=r"pool 'nope'; the pools are \['cheap', 'dear'\]"):
        what_if(base, "retire 1 node of nope")
    with pytest.raises(WhatIfError, match="leaves pool 'cheap' -1 nodes"):
        what_if(base, "retire 3 nodes of cheap")
    with pytest.raises(PlanInfeasible, match="infeasible"):
        what_if(base, "retire 1 node of cheap; retire 3 nodes of dear")


def test_fleet_horizon_buys_the_base_and_rents_the_peak():
    # Option `buy`: capex 43,800 over 43,800 h = 1.00 per node-hour for every hour of the window;
    # `cloud`: 2.50 per node-hour kept on. Both: price 0.10, idle 1 kW, full 3 kW, 100 tok/s.
    # Demand 150, 50, 50 tok/s x growth 2 = 3, 1, 1 node-equivalents. A node on and full costs
    # 0.10 + 0.20 = 0.30/h of energy. Own 1 + rent 2 at the peak: 3 x 1.00 + 3 x 0.30 + 2 x (2.50
    # + 0.30) = 9.50; own 2 + rent 1: 6.00 + 1.20 + 2.80 = 10.00; own 3: 9.00 + 1.50 = 10.50.
    common = {"site": "m", "gpu_model": "H100", "max_nodes": 5, "idle_w": 1000.0, "full_w": 3000.0, "pue": 1.0}
    options = [HardwareOption("buy", capex=43_800.0, life_hours=43_800.0, **common),
               HardwareOption("cloud", hourly_price=2.5, **common)]
    p = plan(inputs(
        demand=[(h, "standard", "llama", "all", d) for h, d in ((0, 150.0), (1, 50.0), (2, 50.0))],
        tiers=[STANDARD], pools=[o.as_pool() for o in options], sites=[Site("m")],
        capacity=[(o.name, "llama", "all", 0.5, 10.0, 100.0) for o in options],
        round_trips=[("m", "metro", 5.0)], prices={"m": 0.10}, horizon="fleet", growth=2.0))
    assert dict(p.installed.iter_rows()) == {"buy": 1, "cloud": 2}
    assert nodes(p) == {("buy", 0): 1, ("buy", 1): 1, ("buy", 2): 1, ("cloud", 0): 2, ("cloud", 1): 0,
                        ("cloud", 2): 0}
    costs = p.cost_by_component()
    assert costs["amortization_cost"] == pytest.approx(3.00, abs=CENT)
    assert costs["rent_cost"] == pytest.approx(5.00, abs=CENT)
    assert costs["energy_cost"] == pytest.approx(1.50, abs=CENT)
    assert p.objective == pytest.approx(9.50, abs=CENT)


def test_fleet_horizon_redundancy_minimum_applies_once_an_option_is_used():
    # The instance above, but a rented pool must keep 2 nodes on in every hour once it has any.
    # own 1 + rent: the cloud keeps 2 on all 3 hours: 3.00 + 0.90 + 2 x 2.80 + 2 x 2 x (2.50 + 0.10)
    # = 19.90; rent only: h0 3 x 2.80, h1 and h2 one full and one idle 2.80 + 2.60: 19.20; own 3:
    # 9.00 + 0.90 + 0.30 + 0.30 = 10.50 (the other owned nodes off in hours 1 and 2).
    common = {"site": "m", "gpu_model": "H100", "max_nodes": 5, "idle_w": 1000.0, "full_w": 3000.0, "pue": 1.0}
    options = [HardwareOption("buy", capex=43_800.0, life_hours=43_800.0, **common),
               HardwareOption("cloud", hourly_price=2.5, redundancy_min=2, **common)]
    p = plan(inputs(
        demand=[(h, "standard", "llama", "all", d) for h, d in ((0, 150.0), (1, 50.0), (2, 50.0))],
        tiers=[STANDARD], pools=[o.as_pool() for o in options], sites=[Site("m")],
        capacity=[(o.name, "llama", "all", 0.5, 10.0, 100.0) for o in options],
        round_trips=[("m", "metro", 5.0)], prices={"m": 0.10}, horizon="fleet", growth=2.0))
    assert dict(p.installed.iter_rows()) == {"buy": 3, "cloud": 0}
    assert nodes(p) == {("buy", 0): 3, ("buy", 1): 1, ("buy", 2): 1, ("cloud", 0): 0, ("cloud", 1): 0,
                        ("cloud", 2): 0}
    assert p.objective == pytest.approx(10.50, abs=CENT)


def test_inputs_errors_name_the_frame_row_and_fix():
    base = two_pools_one_tier()
    with pytest.raises(PlanInputError, match=r"prices frame, row .*'site': 'm'.*no energy price"):
        plan(base.with_(prices=base.prices.filter(pl.lit(False))))
    with pytest.raises(PlanInputError, match=r"pool 'dear': site 'x' is not among the sites"):
        plan(base.with_(pools=(base.pools[0], Pool("dear", "x", "H100", 1, 1.0, 2.0, 1.0))))
    with pytest.raises(PlanInfeasible, match="no pool allowed to serve it"):
        plan(base.with_(tiers=(Tier("standard", 0.005, 30.0, "metro"),)))
    with pytest.raises(PlanInfeasible, match="infeasible"):
        plan(base.with_(demand=base.demand.with_columns(output_tokens_per_s=pl.lit(700.0))))


def test_calibration_prices_actual_routing_and_flags_what_the_plan_would_refuse():
    base = two_pools_one_tier()
    # actual: cheap runs 1 node at 150 tok/s (1.5 node-equivalents on 1 node: over capacity),
    # dear 2 nodes at 150 tok/s. cheap: 0.10 + 1.5 x 0.20 = 0.40; dear: 2 x 2.10 + 1.5 x 0.20 = 4.50;
    # egress 300 tok/s -> 0.054 in all (0.027 each).
    nodes_ = pl.LazyFrame([("cheap", hour(0), 1), ("dear", hour(0), 2)], schema=NODES_SCHEMA, orient="row")
    routing = pl.LazyFrame([(hour(0), "standard", "llama", "all", "cheap", 0.5),
                            (hour(0), "standard", "llama", "all", "dear", 0.5)], schema=ROUTING_SCHEMA, orient="row")
    got = {r["pool"]: r for r in calibrate(base, nodes_, routing).collect().iter_rows(named=True)}
    assert got["cheap"]["total_cost"] == pytest.approx(0.40 + 0.027, abs=CENT)
    assert got["dear"]["total_cost"] == pytest.approx(4.50 + 0.027, abs=CENT)
    assert got["cheap"]["over_capacity"] and not got["dear"]["over_capacity"]
    with pytest.raises(PlanInputError, match=r"actual routing, demand row .*'tier': 'standard'.* must sum to 1"):
        calibrate(base, nodes_, routing.filter(pl.col("pool") == "dear"))
    with pytest.raises(PlanInputError, match=r"actual nodes, row .*'pool': 'gone'.*not among the pools"):
        calibrate(base, pl.LazyFrame([("gone", hour(0), 1)], schema=NODES_SCHEMA, orient="row"), routing)
    with pytest.raises(PlanInputError, match=r"actual routing, row .*'model': 'other'.*no demand row"):
        calibrate(base, nodes_, routing.with_columns(model=pl.lit("other")))


def test_a_plan_is_the_same_on_every_run():
    first, second = plan(two_pools_one_tier()), plan(two_pools_one_tier())
    for a, b in ((first.routing, second.routing), (first.nodes, second.nodes), (first.costs, second.costs),
                 (first.binds, second.binds)):
        assert a.equals(b)


def test_small_requests_go_to_the_pool_cheaper_for_them_and_large_ones_to_the_other():
    # One tier, two request-size buckets, two owned pools at one site (price 0.10 per kWh, PUE 1):
    # `l40s` idle 500 W, full 1,500 W (a busy node-equivalent adds 1 kW = 0.10/h); capacity 200 tok/s
    # per node for small requests, 50 for large (long contexts crowd its memory).
    # `h200` idle 2,000 W, full 6,000 W (adds 4 kW = 0.40/h); 400 tok/s for both.
    # Cost of a busy token/s for an hour: small on l40s 0.10 / 200 = 0.0005, on h200 0.40 / 400 = 0.001;
    # large on l40s 0.10 / 50 = 0.002, on h200 0.001. Demand: small 200 tok/s, large 400 tok/s.
    # Plan: small -> l40s (1.0 node-equivalent: 1 node, 0.05 idle + 0.10 = 0.15); large -> h200 (1.0:
    # 1 node, 0.20 + 0.40 = 0.60): 0.75. Everything on h200: 0.5 + 1.0 = 1.5 -> 2 nodes, 0.40 + 0.60 =
    # 1.00; the large bucket on l40s needs 8 nodes of its 4: infeasible. One bucket could not tell them apart.
    common = {"site": "m", "nodes_available": 4, "pue": 1.0}
    p = plan(inputs(
        demand=[(0, "standard", "llama", "small", 200.0), (0, "standard", "llama", "large", 400.0)],
        tiers=[STANDARD], pools=[Pool("l40s", gpu_model="L40S", idle_w=500.0, full_w=1500.0, **common),
                                 Pool("h200", gpu_model="H200", idle_w=2000.0, full_w=6000.0, **common)],
        sites=[Site("m")],
        capacity=[("l40s", "llama", "small", 0.5, 10.0, 200.0), ("l40s", "llama", "large", 0.5, 10.0, 50.0),
                  ("h200", "llama", "small", 0.5, 10.0, 400.0), ("h200", "llama", "large", 0.5, 10.0, 400.0)],
        round_trips=[("m", "metro", 5.0)], prices={"m": 0.10}))
    routed = {(r["bucket"], r["pool"]): r["share"] for r in p.routing.iter_rows(named=True)}
    assert routed == pytest.approx({("small", "l40s"): 1.0, ("large", "h200"): 1.0})
    assert nodes(p) == {("l40s", 0): 1, ("h200", 0): 1}
    assert p.objective == pytest.approx(0.75, abs=CENT)
    assert {("capacity", "l40s", 0), ("capacity", "h200", 0)} <= binds(p)
