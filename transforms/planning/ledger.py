"""The planner's inputs from the ledger (docs/planning.md, "Inputs from the ledger"), and calibration.

Pure conversion: the warehouse's reader (`warehouse/plan_inputs.py`) hands the frames below, read
from the published days' marts and facts; this module turns them into `PlanInputs`, the ACTUAL
nodes on and routing of the same hours, and the ledger's cost per pool to calibrate against.

Frames (one row per key; money in the reporting currency):
- POOL_HOURS: per pool and hour with node-slots (capacity_by_pool_hour, node_slots): nodes on, the
  redundancy minimum, IT kWh of the pool's node-slots, the ledger's energy, rent and amortization.
- SITE_HOURS: per site and hour (the serving nodes' node-slots): IT and facility kWh, energy cost
  (trued up to the invoice, demand charge apart).
- TRAFFIC: per hour, tier, model, request-size bucket and pool (request_costs, by completion hour):
  requests, output tokens, response bytes and egress cost.
- CAPACITY: per pool, model, tier served and bucket, one node's capacity at the tier's objectives
  over the window (`buckets.window_capacity`; null when unknown) and its source.
- POOL_DIMS: per pool (dim_pools, dim_nodes): site, GPU model, nodes, mean idle and nameplate W.
"""

from dataclasses import dataclass

import polars as pl

from transforms.bounds import FITTED_FULL_LOAD_NAMEPLATE_MULTIPLE
from transforms.contracts import UTC_US
from transforms.planning.buckets import BUCKET_CAPACITY_SCHEMA
from transforms.planning.costs import calibrate
from transforms.planning.inputs import PlanInputError, PlanInputs, Pool, Site, Tier
from transforms.planning.options import Candidate, PlanOptions
from transforms.planning.pairs import routing_pairs

POOL_HOURS_SCHEMA = pl.Schema({"pool": pl.String, "hour": UTC_US, "nodes_on": pl.Float64,
                               "redundancy_min": pl.Int64, "it_kwh": pl.Float64,
                               "energy_cost": pl.Float64, "rent_cost": pl.Float64, "amortization_cost": pl.Float64})
SITE_HOURS_SCHEMA = pl.Schema({"site": pl.String, "hour": UTC_US, "it_kwh": pl.Float64, "facility_kwh": pl.Float64,
                               "energy_cost": pl.Float64})
TRAFFIC_SCHEMA = pl.Schema({"hour": UTC_US, "tier": pl.String, "model": pl.String, "bucket": pl.String,
                            "pool": pl.String,
                            "requests": pl.Int64, "output_tokens": pl.Float64, "response_bytes": pl.Float64,
                            "egress_cost": pl.Float64})
POOL_DIMS_SCHEMA = pl.Schema({"pool": pl.String, "site": pl.String, "gpu_model": pl.String, "nodes": pl.Int64,
                              "idle_w": pl.Float64, "nameplate_w": pl.Float64})
CALIBRATION_TOLERANCE = 0.05  # issue 18: per pool and in total
CALIBRATED = ("energy_cost", "rent_cost", "egress_cost")  # the day horizon's components (amortization is sunk)
# A capacity point sits this far (s) inside the objective it was learned at, so that adding back the
# round trip it was measured with never fails the comparison by a float's last bit.
POINT_SLACK_S = 1e-9


@dataclass(frozen=True)
class LedgerFrames:
    pool_hours: pl.LazyFrame
    site_hours: pl.LazyFrame
    traffic: pl.LazyFrame
    pool_dims: pl.LazyFrame
    tiers: tuple[Tier, ...]
    capacity: pl.LazyFrame


@dataclass(frozen=True)
class FromLedger:
    """`inputs` for the planner; `actual_nodes` and `actual_routing` of the same hours; `ledger`: per
    pool, the ledger's energy, rent and egress (and amortization, for the record); `power`: per pool,
    idle and full-load W (the fit, unless above the nameplate: `power_note`), PUE and the capacity's source."""

    inputs: PlanInputs
    actual_nodes: pl.LazyFrame
    actual_routing: pl.LazyFrame
    ledger: pl.DataFrame
    power: pl.DataFrame
    requests: pl.DataFrame  # tier, requests of the window


def _check(frames: LedgerFrames) -> None:
    for name, frame, schema in (("pool_hours", frames.pool_hours, POOL_HOURS_SCHEMA),
                                ("site_hours", frames.site_hours, SITE_HOURS_SCHEMA),
                                ("traffic", frames.traffic, TRAFFIC_SCHEMA),
                                ("pool_dims", frames.pool_dims, POOL_DIMS_SCHEMA),
                                ("capacity", frames.capacity, BUCKET_CAPACITY_SCHEMA)):
        got = dict(frame.collect_schema())
        if got != dict(schema):
            raise PlanInputError(f"{name} frame has columns {got}; expected {dict(schema)} "
                                 "(transforms/planning/ledger.py)")


def _demand(frames: LedgerFrames) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Demand per hour, tier, model and bucket (mean output tokens/s by completion hour), a zero row
    for every other (hour of the window, tier, model, bucket) seen; and the actual routing's shares."""
    keys = ["hour", "tier", "model", "bucket"]
    hours = frames.pool_hours.select("hour").unique()
    served = frames.traffic.group_by(keys).agg(tokens=pl.col("output_tokens").sum())
    combos = frames.traffic.select("tier", "model", "bucket").unique()
    demand = (hours.join(combos, how="cross").join(served, on=keys, how="left")
              .select(*keys, output_tokens_per_s=pl.col("tokens").fill_null(0.0) / 3600.0).sort(keys))
    routing = (frames.traffic.filter(pl.col("output_tokens") > 0).join(served, on=keys)
               .select(*keys, pool="pool", share=pl.col("output_tokens") / pl.col("tokens")))
    return demand, routing


def _capacity(frames: LedgerFrames, options: PlanOptions, sites: pl.LazyFrame) -> pl.LazyFrame:
    """Operating points per (pool, model, bucket): one per tier whose capacity is known
    (`frames.capacity`, less the options' headroom), at that tier's objectives less the round trip
    from the pool's site to its users, so that tier qualifies again, a looser one takes the point
    too and a stricter or farther one does not. A (pool, model, bucket) known for no tier gets one
    point without latencies (`capacity_unknown`: never planned on) at the most output tokens/s per
    node the pool served in an hour of the window: only to price the actual routing there
    (calibration), as the node-slots' energy shows it was served."""
    tiers = pl.LazyFrame([{"tier": t.name, "ttft": t.ttft_p95_s, "e2e": t.e2e_p95_s,
                           "users": options.users.get(t.name, "")} for t in frames.tiers],
                         schema={"tier": pl.String, "ttft": pl.Float64, "e2e": pl.Float64, "users": pl.String})
    rtt = pl.LazyFrame([{"site": s, "users": u, "rtt_s": ms / 1000.0}
                        for s, row in options.round_trips_ms.items() for u, ms in row.items()],
                       schema={"site": pl.String, "users": pl.String, "rtt_s": pl.Float64})
    rtt_s = pl.col("rtt_s").fill_null(0.0)
    known = (frames.capacity.filter(pl.col("output_tokens_per_s") > 0).join(sites, on="pool").join(tiers, on="tier")
             .join(rtt, on=["site", "users"], how="left")
             .select("pool", "model", "bucket",
                     ttft_p95_s=(pl.col("ttft") - rtt_s - POINT_SLACK_S).clip(lower_bound=0.0),
                     e2e_p95_s=(pl.col("e2e") - rtt_s - POINT_SLACK_S).clip(lower_bound=0.0),
                     output_tokens_per_s=pl.col("output_tokens_per_s") * (1.0 - options.headroom)))
    observed = (frames.traffic.group_by("pool", "hour").agg(tokens=pl.col("output_tokens").sum())
                .join(frames.pool_hours.filter(pl.col("nodes_on") > 0), on=["pool", "hour"])
                .group_by("pool").agg(observed=(pl.col("tokens") / 3600.0 / pl.col("nodes_on")).max()))
    unknown = (frames.traffic.select("pool", "model", "bucket").unique()
               .join(known.select("pool", "model", "bucket").unique(), on=["pool", "model", "bucket"], how="anti")
               .join(observed.filter(pl.col("observed") > 0), on="pool")
               .select("pool", "model", "bucket", ttft_p95_s=pl.lit(None, pl.Float64),
                       e2e_p95_s=pl.lit(None, pl.Float64), output_tokens_per_s="observed"))
    return pl.concat([known, unknown]).unique().sort("pool", "model", "bucket", "ttft_p95_s", "output_tokens_per_s")


def _prices(frames: LedgerFrames, site_ids: list[str]) -> tuple[pl.LazyFrame, pl.DataFrame]:
    """The price actually paid per site and hour (energy cost / facility kWh; 0 for an hour without
    energy: the ledger has no energy cost there) and each site's PUE over the window."""
    hours = frames.pool_hours.select("hour").unique()
    sites = pl.LazyFrame({"site": site_ids}, schema={"site": pl.String})
    prices = (hours.join(sites, how="cross").join(frames.site_hours, on=["site", "hour"], how="left")
              .select("site", "hour", price_per_kwh=pl.when(pl.col("facility_kwh") > 0)
                      .then(pl.col("energy_cost") / pl.col("facility_kwh")).otherwise(0.0).fill_null(0.0))
              .sort("site", "hour"))
    pue = (sites.join(frames.site_hours.group_by("site").agg(pl.col("it_kwh", "facility_kwh").sum()), on="site",
                      how="left")
           .select("site", pue=pl.when(pl.col("it_kwh") > 0).then(pl.col("facility_kwh") / pl.col("it_kwh"))
                   .otherwise(1.0).fill_null(1.0).clip(lower_bound=1.0)))
    return prices, pue.collect()


def _pool_rates(frames: LedgerFrames, pairs: pl.LazyFrame, pue: pl.DataFrame) -> pl.DataFrame:
    """Per pool: nodes, idle W (inventory), full-load W fitted on the window (below), PUE of its site,
    rent, amortization and egress rates from the ledger, and the ledger's costs. `pairs`:
    `pairs.routing_pairs` of the inputs (the capacity each routed row is loaded at, as `price` does)."""
    cap = pl.coalesce("capacity_at_objective", "capacity_max")
    busy = (frames.traffic.join(pairs.select("tier", "model", "bucket", "pool", cap=cap),
                                on=["tier", "model", "bucket", "pool"], how="left")
            .group_by("pool").agg(busy=(pl.col("output_tokens") / 3600.0 / pl.col("cap")).sum()))
    sources = (frames.capacity.group_by("pool")
               .agg(capacity_source=pl.col("capacity_source").drop_nulls().unique().sort().str.join(",")))
    hours = frames.pool_hours.group_by("pool").agg(
        pl.col("nodes_on", "it_kwh", "energy_cost", "rent_cost", "amortization_cost").sum(),
        redundancy_min=pl.col("redundancy_min").max()).join(sources, on="pool", how="left")
    traffic = frames.traffic.group_by("pool").agg(pl.col("output_tokens", "response_bytes", "egress_cost").sum())
    above_idle_wh = pl.col("it_kwh") * 1000.0 - pl.col("nodes_on") * pl.col("idle_w")
    rated = pl.col("nameplate_w") * FITTED_FULL_LOAD_NAMEPLATE_MULTIPLE
    return (frames.pool_dims.join(hours, on="pool", how="left").join(busy, on="pool", how="left")
            .join(traffic, on="pool", how="left").join(pue.lazy(), on="site", how="left")
            .with_columns(pl.col("nodes_on", "it_kwh", "energy_cost", "rent_cost", "amortization_cost", "busy",
                                 "output_tokens", "response_bytes", "egress_cost").fill_null(0.0),
                          pl.col("redundancy_min").fill_null(0), pl.col("pue").fill_null(1.0))
            .with_columns(
                # Power vs load: idle W (inventory) at no load; the slope is the window's measured IT
                # energy above idle per busy node-equivalent-hour (the nameplate without load to fit).
                full_w_fitted=pl.when(pl.col("busy") > 0).then(pl.col("idle_w") + (above_idle_wh / pl.col("busy"))
                                                               .clip(lower_bound=0.0)))
            .with_columns(full_w_above_rated=pl.col("full_w_fitted") > rated)
            .with_columns(
                # a fit above the node's rated power is no node's full load: used (it reproduces the window's
                # energy, which calibration holds it to) but reported (`power_note`), never silently
                full_w=pl.coalesce("full_w_fitted", pl.max_horizontal("nameplate_w", "idle_w")),
                rent_per_node_hour=_per("rent_cost", "nodes_on"),
                amortization_per_node_hour=_per("amortization_cost", "nodes_on"),
                response_bytes_per_token=pl.when(pl.col("response_bytes") > 0)
                .then(_per("response_bytes", "output_tokens")).otherwise(_per_token_nominal()),
                egress_per_gb=pl.when(pl.col("response_bytes") > 0).then(_per("egress_cost", "response_bytes") * 1e9)
                .otherwise(_per("egress_cost", "output_tokens") * 1e9))
            .sort("pool").collect())


def _per(num: str, den: str) -> pl.Expr:
    return pl.when(pl.col(den) > 0).then(pl.col(num) / pl.col(den)).otherwise(0.0)


def _per_token_nominal() -> pl.Expr:
    """Without logged response bytes, egress is priced per output token: 1 nominal byte per token."""
    return pl.when(pl.col("egress_cost") > 0).then(1.0).otherwise(0.0)


def from_ledger(frames: LedgerFrames, options: PlanOptions, horizon: str = "day") -> FromLedger:
    """The planner's inputs, the actual fleet and routing, and the ledger's cost, of the window the
    frames cover (the published days read)."""
    _check(frames)
    demand, routing = _demand(frames)
    dims = frames.pool_dims.collect()
    sites_of = dims.select("pool", "site").lazy()
    capacity = _capacity(frames, options, sites_of)
    site_ids = sorted(set(dims["site"]))
    prices, pue = _prices(frames, site_ids)
    rtts = pl.LazyFrame([{"site": s, "users": u, "rtt_ms": float(ms)} for s, row in options.round_trips_ms.items()
                         for u, ms in row.items()], schema={"site": pl.String, "users": pl.String,
                                                            "rtt_ms": pl.Float64})
    tiers = tuple(Tier(t.name, t.ttft_p95_s, t.e2e_p95_s, options.users[t.name]) for t in frames.tiers
                  if t.name in options.users)
    sites = tuple(Site(s, options.power_caps_kw.get(s)) for s in site_ids)
    # which capacity each routed row takes (the pools' power is not needed for that, so it is left idle here)
    placed = tuple(Pool(r["pool"], r["site"], r["gpu_model"], int(r["nodes"]), r["idle_w"], r["idle_w"], 1.0)
                   for r in dims.iter_rows(named=True))
    pairs = routing_pairs(PlanInputs(demand, tiers, placed, sites, capacity, rtts, prices))
    rates = _pool_rates(frames, pairs, pue)
    pools = tuple(Pool(r["pool"], r["site"], r["gpu_model"], int(r["nodes"]), r["idle_w"], r["full_w"], r["pue"],
                       rent_per_node_hour=r["rent_per_node_hour"],
                       amortization_per_node_hour=r["amortization_per_node_hour"], egress_per_gb=r["egress_per_gb"],
                       response_bytes_per_token=r["response_bytes_per_token"],
                       redundancy_min=min(int(options.redundancy.get(r["pool"], r["redundancy_min"])),
                                          int(r["nodes"])))
                  for r in rates.iter_rows(named=True))
    inputs = PlanInputs(demand, tiers, pools, sites, capacity, rtts, prices, horizon=horizon,
                        growth=options.growth if horizon == "fleet" else 1.0)
    nodes = frames.pool_hours.select("pool", "hour", "nodes_on")
    ledger = rates.select("pool", "energy_cost", "rent_cost", "egress_cost", "amortization_cost")
    power = rates.select("pool", "idle_w", "full_w", "pue", "capacity_source", "busy", "full_w_fitted", "nameplate_w",
                         "full_w_above_rated")
    requests = frames.traffic.group_by("tier").agg(pl.col("requests").sum()).sort("tier").collect()
    return FromLedger(inputs, nodes, routing, ledger, power, requests)


def power_note(power: pl.DataFrame) -> str | None:
    """One line naming the pools whose fitted full-load power is above their nameplate, or None. The fit is
    still the plan's power-vs-load line (it reproduces the window's energy), but no node draws that at full
    load: the load it was fitted on is small, because the capacity per node is overstated (the issue 17/18
    bug) or because the pool ran far below its capacity on a concave power curve (the line through idle
    and the day's mean load is steeper than the chord to full load); its power-cap rows overstate the kW
    at high load."""
    over = power.filter(pl.col("full_w_above_rated"))
    if over.is_empty():
        return None
    pools = ", ".join(f"{r['pool']} {r['full_w_fitted']:,.0f} W fitted > {r['nameplate_w']:,.0f} W nameplate "
                      f"({r['busy']:,.2f} busy node-hours)" for r in over.iter_rows(named=True))
    return ("full-load power fitted above the nodes' nameplate (used, as it reproduces the energy; docs/planning.md, "
            "'Inputs from the ledger': a capacity per node set too high, or a pool far below its capacity): " + pools)


def calibration(data: FromLedger) -> pl.DataFrame:
    """The cost model on the actual nodes and routing against the ledger, per pool and component
    and in total (pool `ALL`), over the components of the day horizon (energy, rent, egress;
    amortization is sunk and not compared). `within`: |model - ledger| <= 5% of the ledger's total
    of the pool (or of the fleet), the rule of issue 18."""
    priced = calibrate(data.inputs, data.actual_nodes, data.actual_routing).collect()
    model = priced.group_by("pool").agg(pl.col(*CALIBRATED).sum())
    rows = (model.unpivot(index="pool", variable_name="component", value_name="model_cost")
            .join(data.ledger.unpivot(index="pool", on=list(CALIBRATED), variable_name="component",
                                      value_name="ledger_cost"), on=["pool", "component"], how="full",
                  coalesce=True)
            .with_columns(pl.col("model_cost", "ledger_cost").fill_null(0.0)))
    total = rows.group_by("component").agg(pl.col("model_cost", "ledger_cost").sum()).with_columns(pool=pl.lit("ALL"))
    rows = pl.concat([rows, total.select(rows.columns)])
    sums = rows.group_by("pool").agg(pool_model=pl.col("model_cost").sum(), pool_ledger=pl.col("ledger_cost").sum())
    return (rows.join(sums, on="pool")
            .with_columns(difference=pl.col("model_cost") - pl.col("ledger_cost"),
                          pool_error=pl.when(pl.col("pool_ledger") > 0)
                          .then((pl.col("pool_model") - pl.col("pool_ledger")) / pl.col("pool_ledger"))
                          .otherwise(pl.when(pl.col("pool_model").abs() > 0).then(float("inf")).otherwise(0.0)))
            .with_columns(within=pl.col("pool_error").abs() <= CALIBRATION_TOLERANCE)
            .select("pool", "component", "model_cost", "ledger_cost", "difference", "pool_error", "within")
            .sort(pl.col("pool") == "ALL", "pool", "component"))


def calibration_verdict(table: pl.DataFrame) -> str:
    """One line: calibrated, or which pools are off and by which component most."""
    off = table.filter(~pl.col("within"))
    if off.is_empty():
        worst = table["pool_error"].abs().max()
        return f"calibrated: every pool and the total within 5% of the ledger (worst {worst:.2%})"
    parts = []
    for (pool,), rows in off.group_by("pool", maintain_order=True):
        worst = rows.sort(pl.col("difference").abs(), descending=True).row(0, named=True)
        parts.append(f"{pool} {worst['pool_error']:+.1%} (mostly {worst['component']}: model "
                     f"{worst['model_cost']:.2f} vs ledger {worst['ledger_cost']:.2f})")
    return "NOT calibrated: " + "; ".join(parts) + " — savings are not to be trusted"


def with_candidates(inputs: PlanInputs, candidates: tuple[Candidate, ...]) -> PlanInputs:
    """The fleet horizon's inputs with the options' candidate hardware added as pools, each with the
    capacity points of the existing pool it is `capacity_like`, at a site of the fleet (its price)."""
    if not candidates:
        return inputs
    sites = {s.name for s in inputs.sites}
    for c in candidates:
        if c.option.site not in sites:
            raise PlanInputError(f"candidate {c.option.name!r}: site {c.option.site!r} has no energy price in the "
                                 f"ledger; place it at one of {sorted(sites)}")
    like = pl.LazyFrame({"like": [c.capacity_like for c in candidates], "name": [c.option.name for c in candidates]})
    extra = (inputs.capacity.join(like, left_on="pool", right_on="like")
             .with_columns(pool=pl.col("name")).select(inputs.capacity.collect_schema().names()))
    return inputs.with_(pools=inputs.pools + tuple(c.option.as_pool() for c in candidates),
                        capacity=pl.concat([inputs.capacity, extra]))
