"""The planner's tables (docs/planning.md, "Warehouse tables"): declared like the marts, written
from a `transforms.planning.Plan` by `write_plan`.

Not yet part of the published warehouse (`warehouse.tables.TABLES`): nothing builds a plan
nightly until `inferledger plan` reads its inputs from the capacity marts. `write_plan` writes
into any DuckDB connection (a planning file, or later the version being built), creating the
tables with their comments on first use; a run's rows are replaced when it is written again.
"""

from dataclasses import dataclass
from datetime import datetime

import duckdb
import polars as pl

from transforms.planning import Plan
from warehouse.connection import run, sql_string
from warehouse.table import Table

MONEY = "in the reporting currency"
_RUN = {"run_id": "Plan run (plan_runs.run_id)."}
_COSTS = {
    "energy_cost": f"Energy: (idle power x nodes on + incremental power x busy node-equivalents) x PUE x the "
                   f"hour's price, {MONEY}.",
    "rent_cost": f"Rent of the nodes kept on (0 for owned), {MONEY}.",
    "egress_cost": f"Responses' bytes x the site's egress rate, {MONEY}.",
    "amortization_cost": f"Fleet horizon: installed nodes x amortization per node-hour; 0 in the day horizon "
                         f"(sunk), {MONEY}.",
}

PLAN_TABLES = [
    Table("plan_runs", "One row per plan: its horizon, window, objective, optimality gap, solve time, what-if "
          "and how many constraints bind.", {
              **_RUN, "horizon": "day (operational) or fleet (strategic).",
              "made_at": "When the plan was made, UTC.",
              "window_start": "First hour planned, UTC.", "window_end": "Last hour planned, UTC.",
              "what_if": "The one-line what-if imposed (docs/planning.md), or null for the optimum.",
              "objective": f"Objective value: the window's cost, {MONEY}.",
              "mip_gap": "Relative optimality gap HiGHS reached, (objective - dual bound) / objective.",
              "solve_time_s": "Seconds HiGHS ran.", "status": "HiGHS's model status (Optimal, Time limit reached).",
              **_COSTS,
              "binds_capacity": "Pool-hours whose nodes on are all busy.",
              "binds_availability": "Pool-hours with every available node on.",
              "binds_redundancy": "Pool-hours held at their redundancy minimum above what the load needs.",
              "binds_power_cap": "Site-hours at their power cap.",
          }, ("run_id",), group="planning"),
    Table("plan_routing", "The share of each hour's demand (tier, model, request-size bucket) each pool serves "
          "in a plan.", {
              **_RUN, "hour": "Hour start, UTC.", "tier": "Service tier.", "model": "Model.",
              "bucket": "Request-size bucket.", "pool": "Pool routed to.",
              "share": "Share of the demand row served by the pool, 0-1 (a row's shares sum to 1).",
              "output_tokens_per_s": "Output tokens per second routed (mean of the hour).",
              "busy_nodes": "Node-equivalents busy: tokens/s / the pool's capacity at the tier's objective.",
          }, ("run_id", "hour", "tier", "model", "bucket", "pool"), group="planning"),
    Table("plan_nodes_by_pool_hour", "Nodes a plan keeps on per pool and hour, their load and cost.", {
        **_RUN, "pool": "Pool.", "site": "Site of the pool.", "hour": "Hour start, UTC.",
        "nodes_on": "Nodes kept on (integer).", "busy_nodes": "Node-equivalents busy.",
        "facility_kwh": "IT energy x PUE over the hour, kWh.", **_COSTS,
        "total_cost": f"Sum of the four cost columns, {MONEY}.",
    }, ("run_id", "pool", "hour"), group="planning"),
    Table("plan_summary", "Per plan, tier (ALL: the fleet) and cost component: the planned cost and, when the "
          "caller gave today's (the cost model on the actual fleet and routing), today's cost and the saving; per "
          "query, and the tier's objective risk. A tier's cost is each pool's cost split by the tier's share of "
          "the pool's busy node-hours (docs/planning.md).", {
              **_RUN, "tier": "Service tier, ALL for the fleet, (unused) for pools no tier used.",
              "component": "energy_cost, rent_cost, egress_cost, amortization_cost or total_cost.",
              "planned_cost": f"The plan's cost of the component over the window, {MONEY}.",
              "today_cost": f"The cost model on the actual nodes and routing, {MONEY} (null when not given).",
              "savings": f"today_cost - planned_cost, {MONEY} (null when today is not given).",
              "requests": "Requests of the tier in the window (null when not given).",
              "planned_cost_per_query": f"planned_cost / requests, {MONEY}.",
              "today_cost_per_query": f"today_cost / requests, {MONEY}.",
              "objective_risk": "Share of the tier's output tokens the plan serves on pool-hours at capacity (no "
                                "headroom within the hour), 0-1.",
          }, ("run_id", "tier", "component"), group="planning"),
]
_TYPES = {"run_id": "VARCHAR", "horizon": "VARCHAR", "made_at": "TIMESTAMPTZ", "window_start": "TIMESTAMPTZ",
          "window_end": "TIMESTAMPTZ", "what_if": "VARCHAR", "status": "VARCHAR", "hour": "TIMESTAMPTZ",
          "tier": "VARCHAR", "model": "VARCHAR", "bucket": "VARCHAR", "pool": "VARCHAR", "site": "VARCHAR",
          "component": "VARCHAR", "nodes_on": "BIGINT"}
COMPONENTS = ("energy_cost", "rent_cost", "egress_cost", "amortization_cost", "total_cost")


@dataclass(frozen=True)
class PlanRun:
    """Who the plan is: `run_id` (the caller's), when it was made, the what-if imposed (or None),
    and today's cost by component (`COMPONENTS`, from `transforms.planning.calibrate`; or None)."""

    run_id: str
    made_at: datetime
    what_if: str | None = None
    today: dict[str, float] | None = None
    # Per tier (transforms.planning.tiers.cost_by_tier): tier, component, planned_cost, today_cost,
    # requests, objective_risk; None: plan_summary has the fleet's rows only.
    tiers: pl.DataFrame | None = None


def _column_type(name: str) -> str:
    return _TYPES.get(name, "BIGINT" if name.startswith("binds_") else "DOUBLE")


def create_plan_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The four tables with their comments, if absent."""
    for table in PLAN_TABLES:
        columns = ", ".join(f"{c} {_column_type(c)}" for c in table.columns)
        run(con, f"CREATE TABLE IF NOT EXISTS {table.name} ({columns})")
        run(con, f"COMMENT ON TABLE {table.name} IS {sql_string(table.description)}")
        for col, text in table.columns.items():
            run(con, f"COMMENT ON COLUMN {table.name}.{col} IS {sql_string(text)}")


def plan_frames(plan: Plan, who: PlanRun) -> dict[str, pl.DataFrame]:
    """The rows of each table for one plan, in the tables' column order."""
    costs = plan.cost_by_component()
    binds = dict(plan.binds.group_by("kind").len().iter_rows())
    hours = plan.nodes["hour"]
    runs = pl.DataFrame([{
        "run_id": who.run_id, "horizon": plan.horizon, "made_at": who.made_at, "window_start": hours.min(),
        "window_end": hours.max(), "what_if": who.what_if, "objective": plan.objective, "mip_gap": plan.mip_gap,
        "solve_time_s": plan.solve_time_s, "status": plan.status,
        **{c: costs[c] for c in COMPONENTS if c != "total_cost"},
        **{f"binds_{k}": binds.get(k, 0) for k in ("capacity", "availability", "redundancy", "power_cap")}}],
        schema_overrides={"what_if": pl.String, "made_at": pl.Datetime("us", "UTC")})
    today = who.today or {}
    schema = {"tier": pl.String, "component": pl.String, "planned_cost": pl.Float64, "today_cost": pl.Float64,
              "requests": pl.Int64, "objective_risk": pl.Float64}
    tiers = who.tiers.select(list(schema)).cast(schema) if who.tiers is not None else pl.DataFrame(schema=schema)
    per_tier = tiers.group_by("tier").agg(pl.col("requests").first())
    fleet = pl.DataFrame({"tier": "ALL", "component": list(COMPONENTS), "planned_cost": [costs[c] for c in COMPONENTS],
                          "today_cost": [today.get(c) for c in COMPONENTS],
                          "requests": per_tier["requests"].sum() if per_tier.height else None,
                          "objective_risk": None}, schema=schema)
    summary = (pl.concat([fleet, tiers])
               .with_columns(planned_cost_per_query=pl.col("planned_cost") / pl.col("requests"),
                             today_cost_per_query=pl.col("today_cost") / pl.col("requests")))
    frames = {"plan_runs": runs, "plan_routing": plan.routing, "plan_nodes_by_pool_hour": plan.costs,
              "plan_summary": summary.with_columns(savings=pl.col("today_cost") - pl.col("planned_cost"))}
    by_name = {t.name: t for t in PLAN_TABLES}
    return {name: frame.with_columns(run_id=pl.lit(who.run_id)).select(list(by_name[name].columns))
                      .sort(list(by_name[name].order_by)) for name, frame in frames.items()}


def write_plan(con: duckdb.DuckDBPyConnection, plan: Plan, who: PlanRun) -> None:
    """Write one plan's rows into the four tables (replacing the run's rows if written before), in
    one transaction."""
    create_plan_tables(con)
    frames = plan_frames(plan, who)
    run(con, "BEGIN TRANSACTION")
    try:
        for name, frame in frames.items():
            run(con, f"DELETE FROM {name} WHERE run_id = ?", [who.run_id])
            con.register("plan_rows", frame.to_arrow())
            run(con, f"INSERT INTO {name} BY NAME SELECT * FROM plan_rows")
            con.unregister("plan_rows")
        run(con, "COMMIT")
    except BaseException:
        run(con, "ROLLBACK")
        raise


def markdown() -> str:
    """The tables' dictionary as docs/planning.md carries it (tests/test_planning_warehouse.py holds them equal)."""
    out = []
    for table in PLAN_TABLES:
        out += [f"### `{table.name}`", "", table.description, "", "| column | meaning |", "|---|---|"]
        out += [f"| `{c}` | {text} |" for c, text in table.columns.items()] + [""]
    return "\n".join(out)
