"""Step 9 of docs/attribution.md, per-request cost facts: direct cost, idle share under each
tier's policy, fully loaded cost.

`idle_by_policy` decides where each pool's idle cost goes (a factor per pool and tier);
`request_facts` applies the factors and assembles one row per request of the day (every request
exactly once, zero-cost ones too), in the columns of `REQUEST_COSTS_SCHEMA`.
"""

from datetime import date

import polars as pl

from transforms.attribution.grid import COMPONENTS, fsum, materialize
from transforms.attribution.occupancy import IDX
from transforms.contracts import REQUESTS
from transforms.inventory import Inventory

# The facts, `<lake>/request_costs/date=D/`: one row per request of the day, checked by the
# `request_costs` suite (transforms/quality/suites.py), published as the warehouse's
# `request_costs` view (warehouse/tables.py says what each column means). Their columns and
# types, in their order, are declared here only.
REQUEST_COSTS_SCHEMA = pl.Schema({
    **{c: REQUESTS.schema[c] for c in ("request_id", "node_id", "pool_id", "site_id", "tier", "tenant_id", "model",
                                        "status", "arrived_at", "completed_at", "input_tokens", "cached_input_tokens",
                                        "output_tokens", "response_bytes", "ttft_s")},
    "date": pl.Date,
    **dict.fromkeys(("it_energy_j", "overhead_energy_j", "energy_kwh", "energy_cost", "demand_cost",
                     "amortization_cost", "cloud_cost", "fixed_cost", "egress_cost", "direct_cost", "idle_share",
                     "fully_loaded_cost"), pl.Float64),
    "currency": pl.String, "occupied_s": pl.Float64, "weight": pl.String, "energy_method": pl.String,
    "pue_method": pl.String, "idle_policy": pl.String,
    "estimated_energy_j": pl.Float64, "interpolated_energy_j": pl.Float64, "infrastructure_cost": pl.Float64,
})
ENERGY = ("it_energy_j", "overhead_j")


def idle_by_pool(node_slots_out: pl.LazyFrame, nodes: pl.LazyFrame) -> pl.LazyFrame:
    """Idle amounts per pool: `pool_id, site_id, idle_<component>..., idle_cost` (sum of money
    components), `idle_it_energy_j`, `idle_overhead_j`, `idle_slots`."""
    money = [f"idle_{c}" for c in COMPONENTS]
    return (
        node_slots_out.join(nodes.select("node_id", "pool_id", "site_id"), on="node_id")
        .group_by("pool_id", "site_id")
        .agg(*[pl.col(c).pipe(fsum) for c in money], *[pl.col(f"idle_{e}").pipe(fsum) for e in ENERGY],
             (~pl.col("occupied")).sum().cast(pl.Int64).alias("idle_slots"))
        .with_columns(pl.sum_horizontal(money).alias("idle_cost"))
        .sort("pool_id")
    )


def idle_factors(groups: pl.LazyFrame, idle_pools: pl.LazyFrame,
                 inventory: Inventory) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Where each pool's idle cost goes, as factors per (pool, tier) of requests.

    `groups`: `pool_id, tier, direct_cost` (sum over the group's requests), `requests` (count).
    A pool reserved by tiers with the `reserved` policy gives its idle to those tiers' requests
    on the pool, else to those tiers' requests anywhere; any other pool gives its idle to all
    requests on it (`pro_rata`). Within the chosen requests the idle is shared by direct cost,
    equally when their direct costs sum to zero. A request's idle share is then
    `direct_cost * per_direct + per_request` of its (pool, tier): one join on a small table.

    Returns `(factors: pool_id, tier, per_direct, per_request, idle_policy)` and
    `(pool_idle: pool_id, idle_cost, absorbed, unabsorbed, policy, reserved_by)`."""
    reserving = [(t.id, p) for t in inventory.tiers if t.idle_policy == "reserved" for p in t.reserved_pools]
    reserved = pl.LazyFrame(reserving, schema={"tier": pl.String, "idle_pool": pl.String}, orient="row")
    reserved_by = reserved.group_by("idle_pool").agg(pl.col("tier").sort().str.join(",").alias("reserved_by"))
    pools = idle_pools.select(pl.col("pool_id").alias("idle_pool"), "idle_cost").join(reserved_by, on="idle_pool",
                                                                                      how="left")

    # Candidate groups with a precedence: 0 = reserved tier on the pool, 1 = reserved tier
    # fleet-wide, 2 = any group on an unreserved pool. The best level present wins per pool.
    g = groups.filter(pl.col("requests") > 0)
    on_pool = g.join(reserved, left_on=["tier", "pool_id"], right_on=["tier", "idle_pool"], how="inner") \
        .with_columns(pl.col("pool_id").alias("idle_pool"), pl.lit(0).alias("level"))
    tier_wide = g.join(reserved, on="tier").with_columns(pl.lit(1).alias("level"))
    unreserved = g.join(reserved_by.rename({"idle_pool": "pool_id"}), on="pool_id", how="anti") \
        .with_columns(pl.col("pool_id").alias("idle_pool"), pl.lit(2).alias("level"))
    cols = ["idle_pool", "pool_id", "tier", "direct_cost", "requests", "level"]
    cand = pl.concat([on_pool.select(cols), tier_wide.select(cols), unreserved.select(cols)])
    cand = cand.filter(pl.col("level") == pl.col("level").min().over("idle_pool")).join(pools, on="idle_pool")
    total = fsum(pl.col("direct_cost")).over("idle_pool")
    cand = cand.with_columns(
        pl.when(total > 0).then(pl.col("idle_cost") / total).otherwise(0.0).alias("per_direct"),
        pl.when(total > 0).then(0.0).otherwise(pl.col("idle_cost") / pl.col("requests").sum().over("idle_pool"))
        .alias("per_request"))
    # A group draws idle from a handful of pools; ratios can be of any magnitude, so add them in
    # a fixed order (by idle pool) rather than through decimals.
    factors = cand.group_by("pool_id", "tier").agg(
        pl.col("per_direct").sort_by("idle_pool").cum_sum().last().alias("per_direct"),
        pl.col("per_request").sort_by("idle_pool").cum_sum().last().alias("per_request"),
        pl.when(pl.col("level").max() == 2).then(pl.lit("pro_rata")).otherwise(pl.lit("reserved")).alias("idle_policy"))
    absorbed = cand.group_by("idle_pool").agg(
        fsum(pl.col("direct_cost") * pl.col("per_direct") + pl.col("requests") * pl.col("per_request"))
        .alias("absorbed"))
    pool_idle = (pools.join(absorbed, on="idle_pool", how="left")
                 .with_columns(pl.col("absorbed").fill_null(0.0))
                 .with_columns((pl.col("idle_cost") - pl.col("absorbed")).alias("unabsorbed"),
                               pl.when(pl.col("reserved_by").is_null()).then(pl.lit("pro_rata"))
                               .otherwise(pl.lit("reserved")).alias("policy"))
                 .rename({"idle_pool": "pool_id"}).sort("pool_id"))
    return factors.sort("pool_id", "tier"), pool_idle


def idle_by_policy(per_request: pl.LazyFrame, pool_idle_amounts: pl.LazyFrame,
                   inventory: Inventory) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Where each pool's idle cost goes under the tiers' idle policies (`idle_factors`), from the
    direct costs of the requests per pool and tier: one pass over `per_request` (the shares of
    `occupancy.share_node_slots` with `egress_cost`; a plan over the requests, not collected).

    `pool_idle_amounts`: `idle_by_pool`. A request's direct cost is its components plus its
    egress cost. Returns `(factors, pool_idle)`: `factors` (`pool_id, tier, per_direct,
    per_request, idle_policy`) for `request_facts`, and `pool_idle_amounts` with `absorbed`,
    `unabsorbed` (idle no request could carry), `policy` and `reserved_by` per pool."""
    has_group = pl.col("pool_id").is_not_null() & pl.col("tier").is_not_null()
    groups = (per_request.group_by("pool_id", "tier")
              .agg(fsum(pl.sum_horizontal(COMPONENTS)).alias("direct_cost"),
                   fsum(pl.col("egress_cost")).alias("egress_cost"), pl.len().alias("requests"))
              .select("pool_id", "tier",
                      (pl.col("direct_cost") + pl.when(has_group).then(pl.col("egress_cost")).otherwise(0.0))
                      .alias("direct_cost"),
                      "requests"))
    (groups,) = materialize(groups)  # one pass over the requests, read by both frames below
    factors, pool_idle = materialize(*idle_factors(groups, pool_idle_amounts, inventory))
    pool_idle = pool_idle_amounts.join(
        pool_idle.select("pool_id", "absorbed", "unabsorbed", "policy", "reserved_by"), on="pool_id", how="left")
    return factors, pool_idle.sort("pool_id")


def _factor_lookup(factors: pl.LazyFrame | pl.DataFrame) -> tuple[pl.Expr, list[pl.Expr]]:
    """`per_direct, per_request, idle_policy` of each request's (pool_id, tier) in `factors`,
    null when it has none: looked up by position (the pools and tiers as Enum indexes, a dense
    pools x tiers table), the same as a left join on the two strings without hashing them per
    request. Returns `(position, lookups)`: the lookups read the position from a column
    `_factor_at`, made once beforehand (in one expression the streaming engine made it, two Enum
    casts of the request's strings, anew for each of the three gathers)."""
    f = factors.lazy().select("pool_id", "tier", "per_direct", "per_request", "idle_policy").collect()
    pools = sorted(f["pool_id"].drop_nulls().unique().to_list())
    tiers = sorted(f["tier"].drop_nulls().unique().to_list())
    if not pools or not tiers:
        return pl.lit(None, IDX), [pl.lit(None, pl.Float64).alias("per_direct"),
                                   pl.lit(None, pl.Float64).alias("per_request"),
                                   pl.lit(None, pl.String).alias("idle_policy")]
    table = (pl.DataFrame({"pool_id": pools}).join(pl.DataFrame({"tier": tiers}), how="cross").sort("pool_id", "tier")
             .join(f, on=["pool_id", "tier"], how="left", maintain_order="left"))
    idx = (pl.col("pool_id").cast(pl.Enum(pools), strict=False).to_physical().cast(pl.Int64) * len(tiers)
           + pl.col("tier").cast(pl.Enum(tiers), strict=False).to_physical().cast(pl.Int64))
    return idx.cast(IDX), [pl.lit(table[c]).gather(pl.col("_factor_at")).alias(c)
                           for c in ("per_direct", "per_request", "idle_policy")]


def request_facts(per_request: pl.LazyFrame, factors: pl.LazyFrame, *, currency: str, weight: str,
                  day: date | None = None) -> pl.LazyFrame:
    """One row per request occupying the day (request columns, shares, `egress_cost`, flags
    `n_estimated`, `n_interpolated`, `n_design_pue`, `occupied_s`), in the order of
    `per_request`: costs, idle share, fully loaded cost and methods. Requests that occupied no
    slot appear with zero costs. `date` is `day` (the day whose costs the row holds; a request
    in flight at midnight has a row in each day it touches), by default its completion day."""
    money = [*COMPONENTS, "egress_cost"]
    on_day = pl.lit(day, pl.Date) if day is not None else pl.col("completed_at").dt.date()
    factor_at, lookups = _factor_lookup(factors)
    facts = (
        per_request
        .with_columns(pl.col("egress_cost").fill_null(0.0), on_day.alias("date"), factor_at.alias("_factor_at"))
        .with_columns(pl.sum_horizontal(money).alias("direct_cost"), *lookups)
        .with_columns((pl.col("direct_cost") * pl.col("per_direct").fill_null(0.0)
                       + pl.col("per_request").fill_null(0.0)).alias("idle_share"),
                      pl.col("idle_policy").fill_null("none"))
    )
    occupied = pl.col("occupied_s") > 0
    derived = {
        "overhead_energy_j": pl.col("overhead_j"),
        "energy_kwh": (pl.col("it_energy_j") + pl.col("overhead_j")) * (1 / 3.6e6),
        "fully_loaded_cost": pl.col("direct_cost") + pl.col("idle_share"),
        "currency": pl.lit(currency),
        "weight": pl.lit(weight),
        "energy_method": pl.when(~occupied).then(pl.lit("none")).when(pl.col("n_estimated") > 0)
        .then(pl.lit("estimated")).when(pl.col("n_interpolated") > 0).then(pl.lit("interpolated"))
        .otherwise(pl.lit("measured")),
        "pue_method": pl.when(~occupied).then(pl.lit("none")).when(pl.col("n_design_pue") > 0)
        .then(pl.lit("design_pue")).otherwise(pl.lit("measured")),
    }
    return facts.select(derived[c].alias(c) if c in derived else pl.col(c) for c in REQUEST_COSTS_SCHEMA)
