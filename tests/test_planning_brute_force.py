"""The MIP's optimum equals a brute-force enumeration on tiny instances (hypothesis, `ci` budget).

Demand rows are (hour, tier, request-size bucket), with one or two buckets whose capacity points
differ per pool. The day horizon has no link between hours, so the brute force takes each hour
alone: every integer vector of nodes kept on (redundancy minimum .. nodes available per pool), and
for each the cheapest routing, an LP written here from the problem's statement (independently of
the planner's matrix), solved by HiGHS as a pure LP. The planner's objective must equal the sum over
hours of the cheapest vector's cost.
"""

import itertools

import highspy
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from tests.conftest import examples
from tests.planning_instances import inputs
from transforms.planning import MIP_REL_GAP, PlanInfeasible, Pool, Site, Tier, plan

SITES = ("s0", "s1")
USERS = ("metro", "far")


@st.composite
def instances(draw):
    tiers = [Tier(f"t{i}", draw(st.sampled_from([0.3, 1.0, 2.0])), draw(st.sampled_from([5.0, 20.0])),
                  draw(st.sampled_from(USERS))) for i in range(draw(st.integers(1, 2)))]
    pools = []
    for i in range(draw(st.integers(2, 3))):
        available = draw(st.integers(0, 3))
        idle = float(draw(st.integers(0, 4)) * 250)
        # pools alternate between the sites, so a binding cap moves load to the other site
        pools.append(Pool(f"p{i}", SITES[i % 2], "H100", available, idle,
                          idle + draw(st.integers(0, 8)) * 250, draw(st.sampled_from([1.0, 1.2, 1.5])),
                          rent_per_node_hour=draw(st.sampled_from([0.0, 0.0, 1.5])),
                          egress_per_gb=draw(st.sampled_from([0.0, 0.09])), response_bytes_per_token=4.0,
                          redundancy_min=draw(st.integers(0, min(1, available)))))
    # one or two request-size buckets, each with its own points per pool (a pool may be cheaper per
    # token for one bucket and dearer for the other); a pool may have no point for a bucket at all
    buckets = ["b0", "b1"][:draw(st.integers(1, 2))]
    capacity = [(p.name, "m", b, ttft, ttft * 10, float(tps)) for p in pools for b in buckets
                for ttft, tps in draw(st.lists(st.tuples(st.sampled_from([0.1, 0.25, 0.8]),
                                                         st.integers(50, 400)), min_size=int(b == "b0"), max_size=3,
                                               unique_by=lambda t: t[0]))]
    round_trips = [(s, u, draw(st.sampled_from([60.0, 400.0, 2.0]))) for s in SITES for u in USERS]
    hours = draw(st.integers(1, 2))
    demand = [(h, t.name, "m", b, float(draw(st.integers(0, 6)) * 50)) for h in range(hours) for t in tiers
              for b in buckets]
    caps = [Site("s0", draw(st.sampled_from([3.0, None, 6.0]))), Site("s1", draw(st.sampled_from([None, 6.0])))]
    # s0 cheaper than s1 (mostly), so its cap is what stops the load going there
    prices = {s: [float(draw(st.integers(lo, lo + 20))) / 100 for _ in range(hours)]
              for s, lo in zip(SITES, (1, 10), strict=True)}
    return inputs(demand=demand, tiers=tiers, pools=pools, sites=caps, capacity=capacity,
                  round_trips=round_trips, prices=prices)


def capacity_for(tier, pool, bucket, points, rtt):
    """Best tokens/s of the pool's points for the bucket meeting the tier's objectives with the round
    trip, or None."""
    if rtt >= tier.ttft_p95_s:
        return None
    ok = [tps for (name, _, b, ttft, e2e, tps) in points
          if name == pool.name and b == bucket and ttft + rtt <= tier.ttft_p95_s and e2e + rtt <= tier.e2e_p95_s]
    return max(ok) if ok else None


def cheapest_hour(inst, h, demand, rtt, price, points, caps):
    """The least cost of hour h over every vector of nodes on, or None when none is feasible."""
    best = None
    for n in itertools.product(*[range(p.redundancy_min, p.nodes_available + 1) for p in inst.pools]):
        fixed = sum(k * (p.idle_w / 1000 * p.pue * price[p.site, h] + p.rent_per_node_hour)
                    for k, p in zip(n, inst.pools, strict=True))
        routed = routing_lp(inst, h, n, demand, rtt, price, points, caps)
        if routed is not None and (best is None or fixed + routed < best):
            best = fixed + routed
    return best


def routing_lp(inst, h, n, demand, rtt, price, points, caps):
    lp = highspy.Highs()
    lp.silent()
    load: dict = {}
    obj = 0
    tiers = {t.name: t for t in inst.tiers}
    for (hour, tier, b), d in sorted(demand.items()):
        if hour != h or d == 0:
            continue
        t = tiers[tier]
        xs = []
        for p in inst.pools:
            cap = capacity_for(t, p, b, points, rtt[p.site, t.users])
            if cap is None:
                continue
            x = lp.addVariable(0, 1)
            xs.append(x)
            load.setdefault(p.name, []).append((d / cap) * x)
            obj += x * (d / cap * (p.full_w - p.idle_w) / 1000 * p.pue * price[p.site, h]
                        + d * 3600 * p.response_bytes_per_token / 1e9 * p.egress_per_gb)
        if not xs:
            return None
        lp.addConstr(sum(xs) == 1)
    for k, p in zip(n, inst.pools, strict=True):
        if p.name in load:
            lp.addConstr(sum(load[p.name]) <= k)
    for s in inst.sites:
        if s.power_cap_kw is None:
            continue
        draw = sum(k * p.idle_w / 1000 * p.pue for k, p in zip(n, inst.pools, strict=True) if p.site == s.name)
        extra = [ld * ((p.full_w - p.idle_w) / 1000 * p.pue) for p in inst.pools if p.site == s.name
                 for ld in load.get(p.name, [])]
        if extra:
            lp.addConstr(sum(extra) <= s.power_cap_kw - draw)
        elif draw > s.power_cap_kw + 1e-9:
            return None
    if not load:
        return 0.0
    lp.minimize(obj)
    if lp.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None
    return lp.getInfo().objective_function_value


@settings(max_examples=examples(60))
@given(instances())
def test_mip_optimum_equals_brute_force(inst):
    demand = {(r["hour"].hour, r["tier"], r["bucket"]): r["output_tokens_per_s"]
              for r in inst.demand.collect().iter_rows(named=True)}
    price = {(r["site"], r["hour"].hour): r["price_per_kwh"] for r in inst.prices.collect().iter_rows(named=True)}
    rtt = {(s, u): ms / 1000 for s, u, ms in inst.round_trips.collect().iter_rows()}
    points = list(inst.capacity.collect().iter_rows())
    hours = sorted({h for h, *_ in demand})
    per_hour = [cheapest_hour(inst, h, demand, rtt, price, points, inst.sites) for h in hours]
    event("infeasible" if any(c is None for c in per_hour) else "feasible")
    if any(c is None for c in per_hour):
        with pytest.raises(PlanInfeasible):
            plan(inst)
        return
    best = sum(per_hour)
    exact = plan(inst, mip_rel_gap=1e-9)
    assert exact.objective == pytest.approx(best, rel=1e-7, abs=1e-9)
    # the plan's costs, priced by the cost model on its nodes and routing, are its objective
    assert exact.costs["total_cost"].sum() == pytest.approx(exact.objective, rel=1e-9, abs=1e-9)
    # at the default gap, the plan is within the gap it states of the optimum
    default = plan(inst)
    assert best - 1e-9 <= default.objective <= best + default.mip_gap * abs(default.objective) + 1e-9
    # the hours share the window's gap (highs.py: an hour may use what the quieter hours left): the
    # window's stated gap is still within the target
    assert default.mip_gap <= MIP_REL_GAP
