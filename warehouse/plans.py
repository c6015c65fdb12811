"""A plan's rows in the four plan tables (`warehouse.plan_tables`), kept in the lake and built
into every published version (docs/planning.md, "Warehouse tables").

`keep_plan(lake, plan, who)` writes one run (a plan, a what-if or a backtest) under
`<lake>/plans/` (`lake.plans`: a run written again replaces its rows); `published_frames(lake)`
is what a publish builds the four tables from: the committed runs' rows, or no row at all (the
tables are always there, empty when no plan was made).
"""

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from lake.plans import plan_files, write_plan_run
from warehouse.plan_tables import column_type
from warehouse.tables import TABLES

if TYPE_CHECKING:  # a publish reads plans, never makes one: HiGHS is not loaded for it
    from transforms.planning import Plan

COMPONENTS = ("energy_cost", "rent_cost", "egress_cost", "amortization_cost", "total_cost")
PLAN_TABLES = [t for t in TABLES if t.group == "planning"]
_POLARS = {"VARCHAR": pl.String, "TIMESTAMPTZ": pl.Datetime("us", "UTC"), "BIGINT": pl.Int64, "DOUBLE": pl.Float64,
           "BOOLEAN": pl.Boolean}
SCHEMAS = {t.name: pl.Schema({c: _POLARS[column_type(c)] for c in t.columns}) for t in PLAN_TABLES}


@dataclass(frozen=True)
class PlanRun:
    """Who the plan is and what it is compared with: `run_id` (the caller's; names files), when it
    was made, its `kind` (plan, what_if, backtest), the what-if imposed (or None), today's cost by
    component (`COMPONENTS`, from `transforms.planning.calibrate`; or None), per tier
    (`transforms.planning.tiers.cost_by_tier`: tier, component, planned_cost, today_cost, requests,
    objective_risk; None: plan_summary has the fleet's rows only), the calibration verdict, the
    ledger's cost of the window, and a backtest's training window (first and last hour)."""

    run_id: str
    made_at: datetime
    what_if: str | None = None
    today: dict[str, float] | None = None
    tiers: pl.DataFrame | None = None
    kind: str = "plan"
    calibrated: bool | None = None
    calibration: str | None = None
    ledger_cost: float | None = None
    trained: tuple[datetime, datetime] | None = None


def _runs(plan: "Plan", who: PlanRun) -> pl.DataFrame:
    costs = plan.cost_by_component()
    binds = dict(plan.binds.group_by("kind").len().iter_rows())
    hours = plan.nodes["hour"]
    today = (who.today or {}).get("total_cost")
    return pl.DataFrame([{
        "run_id": who.run_id, "kind": who.kind, "horizon": plan.horizon, "made_at": who.made_at,
        "window_start": hours.min(), "window_end": hours.max(),
        "trained_start": (who.trained or (None, None))[0], "trained_end": (who.trained or (None, None))[1],
        "what_if": who.what_if, "objective": plan.objective, "mip_gap": plan.mip_gap,
        "solve_time_s": plan.solve_time_s, "status": plan.status,
        **{c: costs[c] for c in COMPONENTS if c != "total_cost"},
        **{f"binds_{k}": binds.get(k, 0) for k in ("capacity", "availability", "redundancy", "power_cap")},
        "calibrated": who.calibrated, "calibration": who.calibration, "ledger_cost": who.ledger_cost,
        "today_cost": today, "savings": None if today is None else today - plan.objective,
        "objective_misses": int(plan.costs["over_capacity"].sum())}], schema=SCHEMAS["plan_runs"])


def _summary(plan: "Plan", who: PlanRun) -> pl.DataFrame:
    costs, today = plan.cost_by_component(), who.today or {}
    schema = {"tier": pl.String, "component": pl.String, "planned_cost": pl.Float64, "today_cost": pl.Float64,
              "requests": pl.Int64, "objective_risk": pl.Float64}
    tiers = who.tiers.select(list(schema)).cast(schema) if who.tiers is not None else pl.DataFrame(schema=schema)
    per_tier = tiers.group_by("tier").agg(pl.col("requests").first())
    fleet = pl.DataFrame({"tier": "ALL", "component": list(COMPONENTS), "planned_cost": [costs[c] for c in COMPONENTS],
                          "today_cost": [today.get(c) for c in COMPONENTS],
                          "requests": per_tier["requests"].sum() if per_tier.height else None,
                          "objective_risk": None}, schema=schema)
    return (pl.concat([fleet, tiers])
            .with_columns(planned_cost_per_query=pl.col("planned_cost") / pl.col("requests"),
                          today_cost_per_query=pl.col("today_cost") / pl.col("requests"),
                          savings=pl.col("today_cost") - pl.col("planned_cost")))


def plan_frames(plan: "Plan", who: PlanRun) -> dict[str, pl.DataFrame]:
    """The rows of each plan table for one plan, in the tables' column types and order, sorted by
    their keys (a backtest: the training plan with the test window's routing, nodes and costs)."""
    frames = {"plan_runs": _runs(plan, who), "plan_routing": plan.routing, "plan_nodes_by_pool_hour": plan.costs,
              "plan_summary": _summary(plan, who)}
    return {t.name: frames[t.name].with_columns(run_id=pl.lit(who.run_id)).select(list(t.columns))
            .cast(dict(SCHEMAS[t.name])).sort(list(t.order_by)) for t in PLAN_TABLES}


def keep_plan(lake_root: Path | str, plan: "Plan", who: PlanRun) -> list[Path]:
    """Write the plan's rows under `<lake>/plans/` (replacing the run's rows if written before):
    the next publish builds them into the warehouse. Returns the files written."""
    return write_plan_run(lake_root, who.run_id, plan_frames(plan, who))


def published_frames(lake_root: Path | str) -> dict[str, pl.DataFrame]:
    """The four plan tables as a publish builds them: every committed run's rows (`lake.plans`),
    each table empty (with its columns) when no plan was kept."""
    out = {}
    for t in PLAN_TABLES:
        found = plan_files(lake_root, t.name)
        rows = pl.read_parquet(found).cast(dict(SCHEMAS[t.name])) if found else pl.DataFrame(schema=SCHEMAS[t.name])
        out[t.name] = rows.sort(list(t.order_by))
    return out


def markdown() -> str:
    """The tables' dictionary as docs/planning.md carries it (tests/test_planning_warehouse.py holds them equal)."""
    out = []
    for table in PLAN_TABLES:
        out += [f"### `{table.name}`", "", table.description, "", "| column | meaning |", "|---|---|"]
        out += [f"| `{c}` | {text} |" for c, text in table.columns.items()] + [""]
    return "\n".join(out)
