"""Small planner inputs built by hand for the planning tests (tests/test_planning_*.py)."""

from datetime import UTC, datetime, timedelta

import polars as pl

from transforms.planning import (CAPACITY_SCHEMA, DEMAND_SCHEMA, PRICE_SCHEMA, ROUND_TRIP_SCHEMA, PlanInputs, Pool,
                                 Site, Tier)

H0 = datetime(2026, 11, 30, tzinfo=UTC)


def hour(i: int) -> datetime:
    return H0 + timedelta(hours=i)


def inputs(*, demand, tiers, pools, sites, capacity, round_trips, prices, **kw) -> PlanInputs:
    """`demand`: (hour index, tier, model, bucket, tokens/s); `capacity`: (pool, model, bucket, ttft,
    e2e, tokens/s); `round_trips`: (site, users, ms); `prices`: {site: price or [price per hour]}."""
    hours = sorted({h for h, *_ in demand})
    price_rows = [(site, hour(h), p if isinstance(p, float) else p[h]) for site, p in prices.items() for h in hours]
    return PlanInputs(
        demand=pl.LazyFrame([(hour(h), *rest) for h, *rest in demand], schema=DEMAND_SCHEMA, orient="row"),
        tiers=tuple(tiers), pools=tuple(pools), sites=tuple(sites),
        capacity=pl.LazyFrame(capacity, schema=CAPACITY_SCHEMA, orient="row"),
        round_trips=pl.LazyFrame(round_trips, schema=ROUND_TRIP_SCHEMA, orient="row"),
        prices=pl.LazyFrame(price_rows, schema=PRICE_SCHEMA, orient="row"), **kw)


STANDARD = Tier("standard", ttft_p95_s=2.0, e2e_p95_s=30.0, users="metro")


def two_pools_one_tier(cheap_nodes: int = 2) -> PlanInputs:
    """Pools `cheap` (owned) and `dear` (rented at 2.00 per node-hour) at one site, price 0.10 per
    kWh, PUE 1.0, idle 1000 W, full 3000 W, 100 output tokens/s per node at the tier's objective;
    egress 0.05 per GB at 1000 bytes per token; one hour of 300 tokens/s of `standard`."""
    common = {"site": "m", "gpu_model": "H100", "idle_w": 1000.0, "full_w": 3000.0, "pue": 1.0,
              "egress_per_gb": 0.05, "response_bytes_per_token": 1000.0}
    return inputs(
        demand=[(0, "standard", "llama", "all", 300.0)], tiers=[STANDARD],
        pools=[Pool("cheap", nodes_available=cheap_nodes, **common),
               Pool("dear", nodes_available=4, rent_per_node_hour=2.0, **common)],
        sites=[Site("m")],
        capacity=[("cheap", "llama", "all", 0.5, 10.0, 100.0), ("dear", "llama", "all", 0.5, 10.0, 100.0)],
        round_trips=[("m", "metro", 10.0)], prices={"m": 0.10})
