"""bench: the planner's solve time (bench/README.md, "bench_plan"; issue 18's goals).

A synthetic fleet of P pools x 5 tiers x 10 models x B request-size buckets x 24 hours (P = 10 and
100, B = 1 by default; `--buckets 3`: small / medium / large, each GPU model's capacity differing by
size: the L40S loses most on large requests, the B200 least): pools
spread over P / 5 sites (one of four GPU models each, liquid or air cooled), three operating points
per (pool, model), diurnal demand sized to 60 % of the fleet's capacity at its peak, hourly prices,
round trips metro / regional / remote, a power cap on every third site, redundancy 1 on every
pool. Prints per size: build, HiGHS solve and read-back seconds, the plan's objective, MIP gap,
binding constraints, and beside it the Polars cost model pricing a naive plan (every node on,
demand spread over the allowed pools by capacity) — the reference a user would compute without
a solver — with its cost and time.

    .venv/bin/python bench/bench_plan.py [--pools 10,100] [--buckets 1,3] [--time-limit 120] [--seed 7]
"""

import argparse
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transforms.planning import (CAPACITY_SCHEMA, DEMAND_SCHEMA, NODES_SCHEMA, PRICE_SCHEMA,  # noqa: E402
                                 ROUND_TRIP_SCHEMA, PlanInputs, Pool, Site, Tier, build, price, read_plan, solve)
from transforms.planning.pairs import routing_pairs  # noqa: E402

GOALS = {10: 5.0, 100: 60.0}
GPUS = {"H100": (100.0, 1.0), "H200": (140.0, 1.3), "L40S": (45.0, 0.45), "B200": (220.0, 1.9)}
TIERS = (Tier("premium", 0.4, 8.0, "metro"), Tier("standard", 1.5, 20.0, "metro"),
         Tier("regional", 1.5, 20.0, "regional"), Tier("assistant", 3.0, 40.0, "metro"),
         Tier("batch", 30.0, 600.0, "metro"))
DAY = datetime(2026, 11, 30, tzinfo=UTC)
# Request-size buckets: (share of the demand, capacity factor of the size, per GPU model a further factor)
SIZES = {"small": (0.30, 1.3, {"L40S": 1.2, "B200": 0.95}), "medium": (0.55, 1.0, {}),
         "large": (0.15, 0.6, {"L40S": 0.5, "B200": 1.2})}


def fleet(n_pools: int, seed: int, n_buckets: int = 1) -> PlanInputs:
    rng = np.random.default_rng(seed)
    n_sites = max(2, n_pools // 5)
    sites = tuple(Site(f"site{s:02d}", 60.0 * (n_pools // n_sites) if s % 3 == 2 else None) for s in range(n_sites))
    gpu = list(GPUS)
    rents = rng.choice([0.0, 0.0, 9.0, 12.0], n_pools)
    pools = tuple(Pool(f"pool{i:03d}", sites[i % n_sites].name, gpu[i % 4], int(rng.integers(4, 17)),
                       idle_w=1500.0 * GPUS[gpu[i % 4]][1], full_w=6000.0 * GPUS[gpu[i % 4]][1],
                       pue=1.1 if i % 2 else 1.4, rent_per_node_hour=float(rents[i]),
                       # owned: capex over life (counted in the fleet horizon only)
                       amortization_per_node_hour=0.0 if rents[i] else 5.0 * GPUS[gpu[i % 4]][1],
                       egress_per_gb=float(rng.choice([0.0, 0.05, 0.09])), response_bytes_per_token=4.0,
                       redundancy_min=1) for i in range(n_pools))
    models = [f"model{m}" for m in range(10)]
    size = rng.uniform(0.5, 2.0, len(models))  # tokens/s per node scale of each model
    sizes = {"all": (1.0, 1.0, {})} if n_buckets == 1 else dict(list(SIZES.items())[:n_buckets])
    capacity = [(p.name, m, b, ttft, ttft * 12,
                 GPUS[p.gpu_model][0] * 10 * size[j] * factor * by_size * gpu_size.get(p.gpu_model, 1.0))
                for p in pools for j, m in enumerate(models) for ttft, factor in ((0.2, 0.5), (0.8, 0.8), (2.5, 1.0))
                for b, (_, by_size, gpu_size) in sizes.items()]
    rtts = {"metro": (2.0, 30.0), "regional": (10.0, 60.0)}
    round_trips = [(s.name, users, float(rng.uniform(*rtts[users])) if i % 4 else 150.0)
                   for i, s in enumerate(sites) for users in rtts]
    hours = [DAY + timedelta(hours=h) for h in range(24)]
    diurnal = 0.55 + 0.45 * np.sin(np.linspace(0, 2 * np.pi, 24, endpoint=False) - np.pi / 2) ** 2
    fleet_tps = sum(p.nodes_available * GPUS[p.gpu_model][0] * 10 for p in pools) * 0.8
    mix = rng.dirichlet(np.ones(len(TIERS) * len(models)))
    share = sum(s for s, _, _ in sizes.values())
    demand = [(h, t.name, m, b, float(fleet_tps * 0.6 * diurnal[i] * mix[k * len(models) + j] * s / share))
              for i, h in enumerate(hours) for k, t in enumerate(TIERS) for j, m in enumerate(models)
              for b, (s, _, _) in sizes.items()]
    prices = [(s.name, h, float(0.08 + 0.10 * diurnal[i] + 0.02 * (k % 5))) for k, s in enumerate(sites)
              for i, h in enumerate(hours)]
    return PlanInputs(pl.LazyFrame(demand, DEMAND_SCHEMA, orient="row"), TIERS, pools, sites,
                      pl.LazyFrame(capacity, CAPACITY_SCHEMA, orient="row"),
                      pl.LazyFrame(round_trips, ROUND_TRIP_SCHEMA, orient="row"),
                      pl.LazyFrame(prices, PRICE_SCHEMA, orient="row")).check()


def naive(inputs: PlanInputs) -> tuple[float, float]:
    """Every node on, each demand row spread over its allowed pools by their capacity: (cost, seconds)."""
    started = time.perf_counter()
    allowed = (routing_pairs(inputs).filter(pl.col("excluded").is_null())
               .with_columns(pl.col("capacity_at_objective").alias("w")))
    pools = pl.LazyFrame({"pool": [p.name for p in inputs.pools], "n": [p.nodes_available for p in inputs.pools]})
    routing = (inputs.demand.select("hour", "tier", "model", "bucket").join(allowed, on=["tier", "model", "bucket"])
               .join(pools, on="pool").with_columns(w=pl.col("w") * pl.col("n"))
               .select("hour", "tier", "model", "bucket", "pool",
                       share=pl.col("w") / pl.col("w").sum().over("hour", "tier", "model", "bucket")))
    nodes = (inputs.demand.select("hour").unique().join(pools, how="cross")
             .select("pool", "hour", nodes_on=pl.col("n").cast(pl.Int64)))
    cost = price(inputs, nodes.select(NODES_SCHEMA.names()), routing).select(pl.col("total_cost").sum()).collect()
    return float(cost.item()), time.perf_counter() - started


def run(n_pools: int, seed: int, time_limit: float, horizon: str = "day", n_buckets: int = 1) -> bool:
    inputs = fleet(n_pools, seed, n_buckets).with_(horizon=horizon)
    cpu = time.process_time()
    started = time.perf_counter()
    program = build(inputs)
    built = time.perf_counter()
    solved = solve(program, time_limit)
    plan = read_plan(inputs, solved)
    done = time.perf_counter()
    total, cpu = done - started, time.process_time() - cpu
    naive_cost, naive_s = naive(inputs)
    binds = dict(plan.binds.group_by("kind").len().iter_rows())
    goal = GOALS.get(n_pools) if horizon == "day" else None
    ok = goal is None or total < goal
    print(f"{horizon} horizon, {n_pools:>4} pools x 5 tiers x 10 models x {n_buckets} bucket(s) x 24 h: "
          f"{program.x.height:,} routing + "
          f"{program.n.height + 2 * program.fleet.height:,} integer columns, {program.rows.height:,} rows")
    print(f"      build {built - started:.2f} s, HiGHS {solved.solve_time_s:.2f} s, read back "
          f"{done - built - solved.solve_time_s:.2f} s: total {total:.2f} s wall, {cpu:.2f} s CPU"
          + (f" (goal < {goal:.0f} s: {'met' if ok else 'MISSED'})" if goal else ""))
    print(f"      objective {plan.objective:,.2f}, MIP gap {plan.mip_gap:.2e}, status {plan.status}, binds {binds}")
    print(f"      naive plan (every node on, spread by capacity), Polars cost model alone: {naive_cost:,.2f} "
          f"in {naive_s:.2f} s; the optimum is {1 - plan.objective / naive_cost:.1%} cheaper")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", default="10,100")
    parser.add_argument("--time-limit", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--buckets", default="1", help="request-size buckets, e.g. 1,3 (each size run in turn)")
    parser.add_argument("--horizon", choices=("day", "fleet"), default="day",
                        help="fleet: the pools as options, amortization counted, one program over the 24 hours")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (wall time counts the waits on a "
          "shared machine; CPU time is this process's own)")
    results = [run(int(n), args.seed, args.time_limit, args.horizon, int(b)) for b in args.buckets.split(",")
               for n in args.pools.split(",")]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
