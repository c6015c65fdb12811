"""What `inferledger plan` prints (docs/planning.md, "CLI"): the plan's rows as the warehouse keeps
them (`warehouse.plans.plan_frames`), read back into three tables: per tier now vs planned per
query, the cost by component, the objective misses; then the solve and the calibration verdict.
When calibration failed no saving is printed (DOMAIN.md 9, "Honesty")."""

import polars as pl
from rich.console import Console

from pipelines.cli.output import print_frame


def print_plan(frames: dict[str, pl.DataFrame], per_pool: pl.DataFrame, out: Console, *, title: str) -> None:
    """The tables of one run (`frames`: the four plan tables' rows; `per_pool`: pool, ledger, cost_now,
    cost_planned, savings, node-hours now and planned)."""
    run = frames["plan_runs"].row(0, named=True)
    trusted = run["calibrated"] is True
    hide = [] if trusted else ["savings"]
    print_frame(per_pool.drop(hide), out, title=f"{title}: per pool, now (ledger; cost model on the actual fleet) "
                                                 "vs planned")
    summary = frames["plan_summary"]
    per_tier = (summary.filter(pl.col("component") == "total_cost")
                .select("tier", "requests", now_per_1k_queries=pl.col("today_cost_per_query") * 1000,
                        planned_per_1k_queries=pl.col("planned_cost_per_query") * 1000, now="today_cost",
                        planned="planned_cost",
                        savings="savings", objective_risk="objective_risk"))
    print_frame(per_tier.drop(hide), out, title="per tier: cost per 1,000 queries now vs planned (ALL: the fleet)")
    by_component = (summary.filter(pl.col("tier") == "ALL")
                    .select("component", now="today_cost", planned="planned_cost", savings="savings"))
    print_frame(by_component.drop(hide), out, title="the fleet's cost by component: now vs planned")
    misses = (frames["plan_nodes_by_pool_hour"].group_by("pool")
              .agg(pool_hours=pl.len(), objective_misses=pl.col("over_capacity").sum(),
                   nodes_on_max=pl.col("nodes_on").max(), busy_nodes_max=pl.col("busy_nodes").max()).sort("pool"))
    print_frame(misses, out, title=f"objective misses (pool-hours whose load exceeds the nodes on): "
                                   f"{run['objective_misses']}")
    if trusted and run["today_cost"]:
        share = run["savings"] / run["today_cost"]
        out.print(f"savings {run['savings']:,.2f} of {run['today_cost']:,.2f} ({share:.1%})"
                  + (f"; {run['objective_misses']} objective miss(es): not to be claimed before they are gone"
                     if run["objective_misses"] else ""), markup=False)
    elif not trusted:
        out.print("savings: not shown, the cost model does not reproduce the ledger (below)", markup=False)
    binds = {k.removeprefix("binds_"): run[k] for k in run if k.startswith("binds_") and run[k]}
    out.print(f"objective {run['objective']:,.4f}, gap {run['mip_gap']:.2e}, HiGHS {run['solve_time_s']:.2f} s, "
              f"{run['status']}; binding: " + (", ".join(f"{k} {v}" for k, v in sorted(binds.items())) or "none"),
              markup=False)
    if run["calibration"]:
        out.print(run["calibration"], markup=False)
