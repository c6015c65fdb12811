"""Per-request cost facts: direct cost, idle share under each tier's policy, fully loaded cost.

`idle_shares` implements the idle policies of docs/attribution.md step 9; `request_facts`
assembles one row per request of the day (every request exactly once, zero-cost ones too).
"""

import polars as pl

from transforms.attribution.grid import COMPONENTS, fsum
from transforms.inventory import Inventory

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


def idle_factors(groups: pl.LazyFrame, idle_pools: pl.LazyFrame, inventory: Inventory) -> tuple[pl.LazyFrame, pl.LazyFrame]:
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
    pools = idle_pools.select(pl.col("pool_id").alias("idle_pool"), "idle_cost").join(reserved_by, on="idle_pool", how="left")

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
        fsum(pl.col("direct_cost") * pl.col("per_direct") + pl.col("requests") * pl.col("per_request")).alias("absorbed"))
    pool_idle = (pools.join(absorbed, on="idle_pool", how="left")
                 .with_columns(pl.col("absorbed").fill_null(0.0))
                 .with_columns((pl.col("idle_cost") - pl.col("absorbed")).alias("unabsorbed"),
                               pl.when(pl.col("reserved_by").is_null()).then(pl.lit("pro_rata"))
                               .otherwise(pl.lit("reserved")).alias("policy"))
                 .rename({"idle_pool": "pool_id"}).sort("pool_id"))
    return factors.sort("pool_id", "tier"), pool_idle


def idle_shares(direct: pl.LazyFrame, idle_pools: pl.LazyFrame, inventory: Inventory) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Per-request idle shares (`request_id, idle_share, idle_policy`) and the pools' summary,
    from `direct` (`request_id, pool_id, tier, direct_cost`): `idle_factors` applied."""
    groups = direct.group_by("pool_id", "tier").agg(fsum(pl.col("direct_cost")).alias("direct_cost"),
                                                    pl.len().alias("requests"))
    factors, pool_idle = idle_factors(groups, idle_pools, inventory)
    shares = direct.join(factors, on=["pool_id", "tier"], how="inner").select(
        "request_id", (pl.col("direct_cost") * pl.col("per_direct") + pl.col("per_request")).alias("idle_share"),
        "idle_policy")
    return shares, pool_idle


def _factor_lookup(factors: pl.LazyFrame | pl.DataFrame) -> list[pl.Expr]:
    """`per_direct, per_request, idle_policy` of each request's (pool_id, tier) in `factors`,
    null when it has none: looked up by position (the pools and tiers as Enum indexes, a dense
    pools x tiers table), the same as a left join on the two strings without hashing them per
    request."""
    f = factors.lazy().select("pool_id", "tier", "per_direct", "per_request", "idle_policy").collect()
    pools = sorted(f["pool_id"].drop_nulls().unique().to_list())
    tiers = sorted(f["tier"].drop_nulls().unique().to_list())
    if not pools or not tiers:
        return [pl.lit(None, pl.Float64).alias("per_direct"), pl.lit(None, pl.Float64).alias("per_request"),
                pl.lit(None, pl.String).alias("idle_policy")]
    table = (pl.DataFrame({"pool_id": pools}).join(pl.DataFrame({"tier": tiers}), how="cross").sort("pool_id", "tier")
             .join(f, on=["pool_id", "tier"], how="left", maintain_order="left"))
    idx = (pl.col("pool_id").cast(pl.Enum(pools), strict=False).to_physical().cast(pl.Int64) * len(tiers)
           + pl.col("tier").cast(pl.Enum(tiers), strict=False).to_physical().cast(pl.Int64))
    return [pl.lit(table[c]).gather(idx).alias(c) for c in ("per_direct", "per_request", "idle_policy")]


def request_facts(per_request: pl.LazyFrame, factors: pl.LazyFrame, *, currency: str, weight: str) -> pl.LazyFrame:
    """One row per request of the day (request columns, shares, `egress_cost`, flags
    `n_estimated`, `n_interpolated`, `n_design_pue`, `occupied_s`), in the order of
    `per_request`: costs, idle share, fully loaded cost and methods. Requests that occupied no
    slot appear with zero costs."""
    money = [*COMPONENTS, "egress_cost"]
    facts = (
        per_request
        .with_columns(pl.col("egress_cost").fill_null(0.0), pl.col("completed_at").dt.date().alias("date"))
        .with_columns(pl.sum_horizontal(money).alias("direct_cost"), *_factor_lookup(factors))
        .with_columns((pl.col("direct_cost") * pl.col("per_direct").fill_null(0.0) + pl.col("per_request").fill_null(0.0))
                      .alias("idle_share"), pl.col("idle_policy").fill_null("none"))
    )
    occupied = pl.col("occupied_s") > 0
    return facts.select(
        "request_id", "node_id", "pool_id", "site_id", "tier", "tenant_id", "model", "status", "arrived_at",
        "completed_at", "input_tokens", "cached_input_tokens", "output_tokens", "response_bytes", "ttft_s", "date",
        "it_energy_j", pl.col("overhead_j").alias("overhead_energy_j"),
        ((pl.col("it_energy_j") + pl.col("overhead_j")) * (1 / 3.6e6)).alias("energy_kwh"),
        *money, "direct_cost", "idle_share", (pl.col("direct_cost") + pl.col("idle_share")).alias("fully_loaded_cost"),
        pl.lit(currency).alias("currency"), "occupied_s", pl.lit(weight).alias("weight"),
        pl.when(~occupied).then(pl.lit("none")).when(pl.col("n_estimated") > 0).then(pl.lit("estimated"))
        .when(pl.col("n_interpolated") > 0).then(pl.lit("interpolated")).otherwise(pl.lit("measured")).alias("energy_method"),
        pl.when(~occupied).then(pl.lit("none")).when(pl.col("n_design_pue") > 0).then(pl.lit("design_pue"))
        .otherwise(pl.lit("measured")).alias("pue_method"),
        "idle_policy",
    )
