"""The mixed-integer program (docs/planning.md, "The model"), built as a sparse matrix and solved by HiGHS.

Columns: `x` the share of one demand row (hour, tier, model, bucket) routed to one pool allowed to
serve it (continuous, 0..1); `n` the nodes of a pool kept on in an hour (integer); in the fleet
horizon also `N` the nodes of a pool owned or rented over the window (integer) and `z` whether the
pool has any (binary, for its redundancy minimum). Rows: demand served, capacity, power caps and,
in the fleet horizon, the links between `n`, `N` and `z`. The columns and rows are Polars frames
with their ids; the matrix is their (row, col, value) triplets, handed to HiGHS column-wise.
"""

from dataclasses import dataclass

import numpy as np
import polars as pl

from transforms.planning.inputs import PlanInputs
from transforms.planning.pairs import demand, node_costs, pool_frame, routing_pairs, unit_costs



class PlanInfeasible(ValueError):
    """No plan meets every constraint; the message says what to relax."""


@dataclass(frozen=True)
class Program:
    """The model's columns and rows: `x`, `n`, `fleet` (N and z per pool; empty in the day horizon)
    frames with a `col` id, `cost`, bounds; `triplets` (row, col, value); `rows` (row, kind, key,
    lower, upper)."""

    x: pl.DataFrame
    n: pl.DataFrame
    fleet: pl.DataFrame
    triplets: pl.DataFrame
    rows: pl.DataFrame
    pairs: pl.DataFrame


def _hour_prices(inputs: PlanInputs) -> pl.LazyFrame:
    return pool_frame(inputs).join(inputs.prices, on="site")


def _routing_columns(inputs: PlanInputs, pairs: pl.LazyFrame) -> pl.LazyFrame:
    """One `x` per positive demand row and eligible pool: its load per unit share (node-equivalents)
    and cost per unit share (incremental energy + egress)."""
    rows = demand(inputs).filter(pl.col("output_tokens_per_s") > 0)
    eligible = pairs.filter(pl.col("excluded").is_null()).select("tier", "model", "bucket", "pool",
                                                                 "capacity_at_objective")
    x = (rows.join(eligible, on=["tier", "model", "bucket"]).join(_hour_prices(inputs), on=["pool", "hour"])
         .with_columns(load=pl.col("output_tokens_per_s") / pl.col("capacity_at_objective")))
    coeffs = unit_costs(pl.col("load"))
    return (x.with_columns(load_kw=coeffs["load_kw"], cost=coeffs["load_energy_cost"] + coeffs["egress_cost"])
            .select("hour", "tier", "model", "bucket", "pool", "site", "output_tokens_per_s", "capacity_at_objective",
                    "load", "load_kw", "cost")
            .sort("hour", "tier", "model", "bucket", "pool"))


def _unserved(inputs: PlanInputs, x: pl.DataFrame, pairs: pl.DataFrame) -> None:
    served = x.select("hour", "tier", "model", "bucket").unique()
    lost = (demand(inputs).filter(pl.col("output_tokens_per_s") > 0)
            .join(served.lazy(), on=["hour", "tier", "model", "bucket"], how="anti")
            .sort("hour", "tier", "model", "bucket").head(1).collect())
    if lost.height:
        row = lost.row(0, named=True)
        why = pairs.filter(tier=row["tier"], model=row["model"], bucket=row["bucket"]).select("pool", "excluded")
        raise PlanInfeasible(f"demand row {row} has no pool allowed to serve it: "
                             f"{dict(why.iter_rows())}; add a capacity profile meeting the tier's objectives "
                             "at a site close enough, or relax the what-if")


def build(inputs: PlanInputs) -> Program:
    """The program of checked inputs (`PlanInputs.check()` first)."""
    pairs = routing_pairs(inputs).collect()
    x = _routing_columns(inputs, pairs.lazy()).collect()
    _unserved(inputs, x, pairs)
    fleet = inputs.horizon == "fleet"
    hours = demand(inputs).select("hour").unique()
    costs = node_costs()
    n = (hours.join(_hour_prices(inputs), on="hour")
         .with_columns(idle_kw=costs["idle_kw"], cost=costs["idle_energy_cost"] + costs["rent_cost"],
                       lower=pl.lit(0) if fleet else pl.col("redundancy_min"), upper=pl.col("nodes_available"))
         .select("pool", "site", "hour", "idle_kw", "cost", "lower", "upper", "redundancy_min")
         .sort("pool", "hour").collect())
    x = x.with_row_index("col").with_columns(pl.col("col").cast(pl.Int64))
    n = n.with_row_index("col", offset=x.height).with_columns(pl.col("col").cast(pl.Int64))
    n_hours = hours.select(pl.len()).collect().item()
    base = n.height + x.height
    pools = pool_frame(inputs).collect().sort("pool")
    fleet_cols = (pools.with_row_index("i").select(
        "pool", "nodes_available", "redundancy_min",
        N=base + 2 * pl.col("i").cast(pl.Int64), z=base + 2 * pl.col("i").cast(pl.Int64) + 1,
        cost=pl.col("amortization_per_node_hour") * n_hours) if fleet else pools.head(0).select(
        "pool", "nodes_available", "redundancy_min", N=pl.lit(0, pl.Int64), z=pl.lit(0, pl.Int64),
        cost=pl.lit(0.0)))
    triplets, rows = _rows(inputs, x, n, fleet_cols)
    return Program(x, n, fleet_cols, triplets, rows, pairs)


def _rows(inputs: PlanInputs, x: pl.DataFrame, n: pl.DataFrame, fleet: pl.DataFrame):
    """(triplets, rows): demand (= 1), capacity (<= 0), power cap (<= cap), and the fleet links."""
    blocks: list[tuple[pl.DataFrame, pl.DataFrame]] = []
    key = pl.concat_str

    def add(kind: str, entries: pl.DataFrame, lower: float, upper: float | pl.Expr) -> None:
        """`entries`: (key, col, value, upper?) -> one row per distinct key."""
        start = sum(r.height for _, r in blocks)
        ids = entries.select("key").unique(maintain_order=True).with_row_index("row", offset=start)
        t = entries.join(ids, on="key").select(pl.col("row").cast(pl.Int64), "col", "value")
        bound = entries.group_by("key", maintain_order=True).agg(upper=upper if isinstance(upper, pl.Expr)
                                                                 else pl.lit(upper))
        r = ids.join(bound, on="key").select(pl.col("row").cast(pl.Int64), kind=pl.lit(kind), key="key",
                                             lower=pl.lit(lower, pl.Float64), upper=pl.col("upper").cast(pl.Float64))
        blocks.append((t, r))

    hour = pl.col("hour").dt.strftime("%Y-%m-%dT%H")
    add("demand", x.select(key=key([hour, "tier", "model", "bucket"], separator="|"), col="col", value=pl.lit(1.0)),
        1.0, 1.0)
    add("capacity", pl.concat([x.select(key=key(["pool", hour], separator="|"), col="col", value="load"),
                               n.select(key=key(["pool", hour], separator="|"), col="col", value=pl.lit(-1.0))]),
        -np.inf, 0.0)
    caps = pl.DataFrame({"site": [s.name for s in inputs.sites if s.power_cap_kw is not None],
                         "cap": [float(s.power_cap_kw) for s in inputs.sites if s.power_cap_kw is not None]},
                        schema={"site": pl.String, "cap": pl.Float64})
    power = pl.concat([x.select("site", key=key(["site", hour], separator="|"), col="col", value="load_kw"),
                       n.select("site", key=key(["site", hour], separator="|"), col="col", value="idle_kw")])
    add("power_cap", power.join(caps, on="site").sort("key", "col"), -np.inf, pl.col("cap").first())
    if fleet.height:
        nf = n.join(fleet, on="pool")
        add("installed", pl.concat([nf.select(key=key(["pool", hour], separator="|"), col="col", value=pl.lit(1.0)),
                                    nf.select(key=key(["pool", hour], separator="|"), col="N", value=pl.lit(-1.0))])
            .sort("key"), -np.inf, 0.0)
        red = nf.filter(pl.col("redundancy_min_right") > 0)
        add("redundancy", pl.concat([red.select(key=key(["pool", hour], separator="|"), col="col", value=pl.lit(1.0)),
                                     red.select(key=key(["pool", hour], separator="|"), col="z",
                                                value=-pl.col("redundancy_min_right").cast(pl.Float64))]).sort("key"),
            0.0, np.inf)
        add("has_nodes", pl.concat([fleet.select(key="pool", col="N", value=pl.lit(1.0)),
                                    fleet.select(key="pool", col="z",
                                                 value=-pl.col("nodes_available").cast(pl.Float64))]).sort("key"),
            -np.inf, 0.0)
    return pl.concat([t for t, _ in blocks]), pl.concat([r for _, r in blocks])
