"""Per-request cost facts: direct cost, idle share under each tier's policy, fully loaded cost.

`idle_shares` implements the idle policies of docs/attribution.md step 9; `request_facts`
assembles one row per request of the day (every request exactly once, zero-cost ones too).
"""

import polars as pl

from transforms.attribution.grid import COMPONENTS, fsum
from transforms.inventory import Inventory

ENERGY = ("it_energy_j", "overhead_j")
METHOD_RANK = {"measured_counter": 0, "measured_gauge": 0, "interpolated": 1, "estimated": 2}


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


def idle_shares(direct: pl.LazyFrame, idle_pools: pl.LazyFrame, inventory: Inventory) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Distribute each pool's idle cost to requests, by their direct cost.

    `direct`: `request_id, pool_id, tier, direct_cost`. A pool reserved by tiers with the
    `reserved` policy gives its idle to those tiers' requests on the pool, else to those
    tiers' requests anywhere; any other pool gives its idle to all requests on it
    (`pro_rata`). Weights are direct costs (equal weights when they sum to zero).

    Returns `(request_idle: request_id, idle_share, idle_policy)` and
    `(pool_idle: pool_id, idle_cost, absorbed, unabsorbed, policy, reserved_by)`."""
    reserving = [(t.id, p) for t in inventory.tiers if t.idle_policy == "reserved" for p in t.reserved_pools]
    reserved = pl.LazyFrame(reserving, schema={"tier": pl.String, "pool_id": pl.String}, orient="row")
    reserved_pools = reserved.group_by("pool_id").agg(pl.col("tier").sort().str.join(",").alias("reserved_by"))
    pools = idle_pools.select("pool_id", "idle_cost").join(reserved_pools, on="pool_id", how="left")

    # Candidate absorbers with a precedence: 0 = reserved tier on the pool, 1 = reserved tier
    # fleet-wide, 2 = any request on an unreserved pool. The best level present wins per pool.
    on_pool = direct.join(reserved, on=["tier", "pool_id"], how="semi").with_columns(
        pl.lit(0).alias("level"), pl.col("pool_id").alias("idle_pool"))
    tier_wide = direct.join(reserved.rename({"pool_id": "idle_pool"}), on="tier").with_columns(pl.lit(1).alias("level"))
    unreserved = direct.join(reserved_pools, on="pool_id", how="anti").with_columns(
        pl.lit(2).alias("level"), pl.col("pool_id").alias("idle_pool"))
    cols = ["request_id", "idle_pool", "direct_cost", "level"]
    cand = pl.concat([on_pool.select(cols), tier_wide.select(cols), unreserved.select(cols)])
    cand = cand.filter(pl.col("level") == pl.col("level").min().over("idle_pool"))
    w = pl.when(pl.col("direct_cost").pipe(fsum).over("idle_pool") > 0).then(pl.col("direct_cost")).otherwise(1.0)
    shared = (cand.join(pools.rename({"pool_id": "idle_pool"}), on="idle_pool")
              .with_columns((pl.col("idle_cost") * w / w.pipe(fsum).over("idle_pool")).alias("idle_share")))
    request_idle = shared.group_by("request_id").agg(
        pl.col("idle_share").pipe(fsum),
        pl.when(pl.col("level").max() == 2).then(pl.lit("pro_rata")).otherwise(pl.lit("reserved")).alias("idle_policy"))
    absorbed = shared.group_by("idle_pool").agg(pl.col("idle_share").pipe(fsum).alias("absorbed")).rename({"idle_pool": "pool_id"})
    pool_idle = (pools.join(absorbed, on="pool_id", how="left")
                 .with_columns(pl.col("absorbed").fill_null(0.0))
                 .with_columns((pl.col("idle_cost") - pl.col("absorbed")).alias("unabsorbed"),
                               pl.when(pl.col("reserved_by").is_null()).then(pl.lit("pro_rata"))
                               .otherwise(pl.lit("reserved")).alias("policy"))
                 .sort("pool_id"))
    return request_idle, pool_idle


def span_methods(segments: pl.LazyFrame, node_slots: pl.LazyFrame, slot_s: int) -> pl.LazyFrame:
    """Worst energy method and PUE method over the slots each request occupies:
    `request_id, energy_method, pue_method`. Uses per-node prefix counts, no request x slot rows."""
    flags = node_slots.select(
        "node_id", "slot",
        (pl.col("energy_method") == "estimated").cast(pl.Int64).alias("_est"),
        (pl.col("energy_method") == "interpolated").cast(pl.Int64).alias("_int"),
        (pl.col("pue_method") == "design_pue").cast(pl.Int64).alias("_dpue"),
    ).sort("node_id", "slot").with_columns(
        pl.col(c).cum_sum().over("node_id").alias(f"{c}_upto") for c in ("_est", "_int", "_dpue"))
    upto = flags.select("node_id", "slot", "_est_upto", "_int_upto", "_dpue_upto", "_est", "_int", "_dpue")
    spans = segments.with_columns((pl.col("s") // slot_s).cast(pl.Int32).alias("a"),
                                  ((pl.col("e") / slot_s).ceil().cast(pl.Int32) - 1).alias("b"))
    a = upto.rename({"slot": "a", "_est_upto": "ea", "_int_upto": "ia", "_dpue_upto": "da", "_est": "e0", "_int": "i0", "_dpue": "d0"})
    b = upto.select("node_id", pl.col("slot").alias("b"), pl.col("_est_upto").alias("eb"),
                    pl.col("_int_upto").alias("ib"), pl.col("_dpue_upto").alias("db"))
    j = spans.join(a, on=["node_id", "a"], how="left").join(b, on=["node_id", "b"], how="left")
    counts = j.select("request_id", (pl.col("eb") - pl.col("ea") + pl.col("e0")).alias("n_est"),
                      (pl.col("ib") - pl.col("ia") + pl.col("i0")).alias("n_int"),
                      (pl.col("db") - pl.col("da") + pl.col("d0")).alias("n_dpue"))
    return counts.group_by("request_id").agg(
        pl.when(pl.col("n_est").sum() > 0).then(pl.lit("estimated"))
        .when(pl.col("n_int").sum() > 0).then(pl.lit("interpolated")).otherwise(pl.lit("measured")).alias("energy_method"),
        pl.when(pl.col("n_dpue").sum() > 0).then(pl.lit("design_pue")).otherwise(pl.lit("measured")).alias("pue_method"),
    )


def request_facts(requests: pl.LazyFrame, shares: pl.LazyFrame, egress: pl.LazyFrame, request_idle: pl.LazyFrame,
                  methods: pl.LazyFrame, occupied_s: pl.LazyFrame, *, currency: str, weight: str) -> pl.LazyFrame:
    """One row per request of the day (REQUEST_COSTS columns). Requests that occupied no
    slot (zero duration) appear with zero costs."""
    money = [*COMPONENTS, "egress_cost"]
    facts = (
        requests.select("request_id", "node_id", "pool_id", "site_id", "tier", "tenant_id", "model", "status",
                        "arrived_at", "completed_at", "input_tokens", "cached_input_tokens", "output_tokens",
                        "response_bytes", "ttft_s", pl.col("completed_at").dt.date().alias("date"))
        .join(shares, on="request_id", how="left")
        .join(egress, on="request_id", how="left")
        .join(request_idle, on="request_id", how="left")
        .join(methods, on="request_id", how="left")
        .join(occupied_s, on="request_id", how="left")
        .with_columns(pl.col(*ENERGY, *money, "idle_share", "occupied_s").fill_null(0.0),
                      pl.col("energy_method").fill_null("none"), pl.col("pue_method").fill_null("none"),
                      pl.col("idle_policy").fill_null("none"))
    )
    return facts.with_columns(
        ((pl.col("it_energy_j") + pl.col("overhead_j")) * (1 / 3.6e6)).alias("energy_kwh"),
        pl.sum_horizontal(money).alias("direct_cost"),
    ).with_columns(
        (pl.col("direct_cost") + pl.col("idle_share")).alias("fully_loaded_cost"),
        pl.lit(currency).alias("currency"),
        pl.lit(weight).alias("weight"),
    ).rename({"overhead_j": "overhead_energy_j"}).sort("request_id")
