"""The report's planning section (docs/report.md, "Plan"): the latest plan kept in the warehouse
(plan_runs, kind plan; the latest by made_at) and the latest backtest, read from the plan tables
as they are published. Calibration first: when the plan's cost model did not reproduce the
ledger, the section says so and shows no saving (DOMAIN.md 9, "Honesty")."""

import html

import duckdb
import polars as pl

LATEST = "(SELECT run_id FROM plan_runs WHERE kind = $kind ORDER BY made_at DESC, run_id DESC LIMIT 1)"
QUERIES = {
    "plan_run": f"""SELECT run_id, horizon, window_start, window_end, objective, mip_gap, solve_time_s, status,
        today_cost, ledger_cost, savings, objective_misses, calibrated, calibration, binds_capacity,
        binds_availability, binds_redundancy, binds_power_cap, made_at
        FROM plan_runs WHERE run_id = {LATEST}""",
    "plan_tiers": f"""SELECT tier, requests, today_cost_per_query AS now_per_query,
        planned_cost_per_query AS planned_per_query, today_cost AS now, planned_cost AS planned, savings,
        objective_risk AS objective_risk_share
        FROM plan_summary WHERE run_id = {LATEST} AND component = 'total_cost'
        ORDER BY tier = 'ALL' DESC, tier""",
    "plan_components": f"""SELECT component, today_cost AS now, planned_cost AS planned, savings
        FROM plan_summary WHERE run_id = {LATEST} AND tier = 'ALL' ORDER BY component = 'total_cost', component""",
    "plan_misses": f"""SELECT pool, count(*) FILTER (over_capacity) AS objective_misses,
        count(*) AS pool_hours, max(nodes_on) AS nodes_on_max, max(busy_nodes) AS busy_nodes_max
        FROM plan_nodes_by_pool_hour WHERE run_id = {LATEST} GROUP BY pool ORDER BY pool""",
}
BINDS = ("capacity", "availability", "redundancy", "power_cap")


def read_plan_frames(con: duckdb.DuckDBPyConnection) -> dict[str, pl.DataFrame]:
    """The latest plan's frames (`plan_*`) and the latest backtest's (`backtest_*`); empty when none."""
    out = {}
    for prefix, kind in (("plan", "plan"), ("backtest", "backtest")):
        for name, sql in QUERIES.items():
            out[name.replace("plan", prefix, 1)] = con.sql(sql, params={"kind": kind}).pl()
    return out


def _binds(run: dict) -> str:
    said = [f"{k.replace('_', ' ')} {run[f'binds_{k}']:,}" for k in BINDS if run[f"binds_{k}"]]
    return ", ".join(said) or "none"


def _run_html(f: dict[str, pl.DataFrame], prefix: str, cur: str, table) -> str:
    """One run: the calibration verdict, then (calibrated only) now vs planned per tier and by
    component with the savings, then the objective misses and the binding constraints."""
    runs = f[f"{prefix}_run"]
    if runs.is_empty():
        return (f'<p class="empty" id="{prefix}-none">No {prefix} kept in this warehouse '
                "(<code>inferledger plan</code>).</p>")
    run = runs.row(0, named=True)
    ok = run["calibrated"] is True  # no calibration recorded: no saving either
    verdict = (f'<p class="{"ok" if ok else "fail"}" id="{prefix}-calibration" data-calibrated="{str(ok).lower()}">'
               f"{html.escape(run['calibration'] or 'no calibration recorded')}"
               + ("" if ok else " No saving is shown: the plan's cost model does not reproduce the ledger.") + "</p>")
    head = (f'<p class="note">Run <code>{html.escape(run["run_id"])}</code> ({run["horizon"]} horizon), hours '
            f'{run["window_start"]:%Y-%m-%d %H:%M} .. {run["window_end"]:%Y-%m-%d %H:%M} UTC; HiGHS {run["status"]}, '
            f'gap {run["mip_gap"]:.1e}, {run["solve_time_s"]:.2f} s; binding constraints: {_binds(run)}.</p>')
    n = run["objective_misses"]
    misses = (f'<p class="{"fail" if n else "ok"}" id="{prefix}-misses" data-misses="{n}">{n:,} pool-hour(s) whose '
              "load exceeds the nodes planned (objective misses).</p>"
              + table(f[f"{prefix}_misses"], cur, table_id=f"{prefix}-misses-by-pool"))
    if not ok:
        return verdict + head + misses
    if run["savings"] is None or run["ledger_cost"] is None:  # a run kept without today's cost (not the CLI's)
        return verdict + head + '<p class="empty">No cost of today recorded with this run: no saving.</p>' + misses
    saving = (f'<p id="{prefix}-savings" data-savings="{run["savings"]!r}" data-today="{run["today_cost"]!r}" '
              f'data-planned="{run["objective"]!r}">Planned {run["objective"]:,.2f} against today\'s '
              f'{run["today_cost"]:,.2f} (the cost model on the actual fleet; ledger {run["ledger_cost"]:,.2f}): '
              f'<b>savings {run["savings"]:,.2f} {html.escape(cur)}</b>'
              + ("; not to be claimed before the misses are gone" if run["objective_misses"] else "") + ".</p>")
    tiers = f[f"{prefix}_tiers"].with_columns(pl.col("now_per_query", "planned_per_query") * 1000).rename(
        {"now_per_query": "now_per_1k_queries", "planned_per_query": "planned_per_1k_queries"})
    return (verdict + head + saving + "<h3>Cost per 1,000 queries by tier, now vs planned (ALL: the fleet)</h3>"
            + table(tiers, cur, table_id=f"{prefix}-tiers") + "<h3>Savings by component</h3>"
            + table(f[f"{prefix}_components"], cur, table_id=f"{prefix}-components") + misses)


def plan_section(frames: dict[str, pl.DataFrame], cur: str, table) -> str:
    """The section's HTML (`table`: page.table, passed in to keep one way of drawing a table)."""
    return ('<section id="plan"><h2>Plan: least-cost routing and nodes (docs/planning.md)</h2>'
            '<p class="note">The latest plan made by <code>inferledger plan</code> and kept in this warehouse '
            "(plan_runs, plan_summary, plan_nodes_by_pool_hour): now is the same cost model on the actual nodes and "
            "routing; objective risk is the share of a tier's tokens served on pool-hours at capacity.</p>"
            + _run_html(frames, "plan", cur, table)
            + "<h3>Latest backtest: the plan of a training window applied to a later window's actual demand</h3>"
            + _run_html(frames, "backtest", cur, table) + "</section>")
