"""The declarations of the planner's tables (docs/planning.md, "Warehouse tables"; filled by
`warehouse.plans` from the plans kept in the lake), kept beside `warehouse.tables`, which places
them among its `TABLES` before the `about` group (`with_plan_tables`, through `warehouse.table`;
made with the class of the tables given, so this module imports neither). Every publish builds
them, empty when no plan was made."""

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
# DuckDB type of each column (any other: DOUBLE; binds_*: BIGINT).
TYPES = {"run_id": "VARCHAR", "kind": "VARCHAR", "horizon": "VARCHAR", "made_at": "TIMESTAMPTZ",
         "window_start": "TIMESTAMPTZ", "window_end": "TIMESTAMPTZ", "trained_start": "TIMESTAMPTZ",
         "trained_end": "TIMESTAMPTZ", "what_if": "VARCHAR", "status": "VARCHAR", "calibrated": "BOOLEAN",
         "calibration": "VARCHAR", "objective_misses": "BIGINT", "hour": "TIMESTAMPTZ", "tier": "VARCHAR",
         "model": "VARCHAR", "bucket": "VARCHAR", "pool": "VARCHAR", "site": "VARCHAR", "component": "VARCHAR",
         "nodes_on": "BIGINT", "requests": "BIGINT", "over_capacity": "BOOLEAN"}


def column_type(name: str) -> str:
    return TYPES.get(name, "BIGINT" if name.startswith("binds_") else "DOUBLE")


def with_plan_tables(tables: list) -> list:
    """`tables` with the four plan tables before the first table of the `about` group."""
    new = plan_tables(type(tables[0]))
    at = next((i for i, t in enumerate(tables) if t.group == "about"), len(tables))
    return [*tables[:at], *new, *tables[at:]]


def plan_tables(Table) -> list:  # noqa: N803 (warehouse.table.Table)
    return [_runs(Table), *_detail(Table), _summary(Table)]


def _runs(Table):  # noqa: N803 (warehouse.table.Table)
    return Table("plan_runs", "One row per plan kept in the lake (`inferledger plan`): its kind (plan, what_if, "
                 "backtest), horizon, window, objective, optimality gap, solve time, cost by component, how many "
                 "constraints bind, the calibration verdict, and today's and the ledger's cost of the same window "
                 "(docs/planning.md).", {
                     **_RUN,
                     "kind": "plan (the optimum), what_if (a user's alternative, solved by the same program) or "
                             "backtest (the plan of the training window applied to the test window's actual demand).",
                     "horizon": "day (operational) or fleet (strategic).",
                     "made_at": "When the plan was made, UTC.",
                     "window_start": "First hour planned (backtest: of the test window), UTC.",
                     "window_end": "Last hour planned (backtest: of the test window), UTC.",
                     "trained_start": "Backtest: first hour of the training window, UTC (null otherwise).",
                     "trained_end": "Backtest: last hour of the training window, UTC (null otherwise).",
                     "what_if": "The one-line what-if imposed (docs/planning.md), or null for the optimum.",
                     "objective": f"The window's planned cost (backtest: the training plan applied to the test "
                                  f"window, projected), {MONEY}.",
                     "mip_gap": "Relative optimality gap HiGHS reached, (objective - dual bound) / objective "
                                "(backtest: of the training plan).",
                     "solve_time_s": "Seconds HiGHS ran.",
                     "status": "HiGHS's model status (Optimal, Time limit reached).",
                     **_COSTS,
                     "binds_capacity": "Pool-hours whose nodes on are all busy.",
                     "binds_availability": "Pool-hours with every available node on.",
                     "binds_redundancy": "Pool-hours held at their redundancy minimum above what the load needs.",
                     "binds_power_cap": "Site-hours at their power cap.",
                     "calibrated": "True when the cost model on the actual fleet and routing reproduced the "
                                   "ledger's energy + rent + egress within 5% per pool and in total (backtest: on "
                                   "both windows); when false, the savings are not to be trusted (DOMAIN.md 9).",
                     "calibration": "The calibration verdict in words: which pool is off, by how much, and why "
                                    "(backtest: both windows', and the test demand rows routed as actually, the "
                                    "training plan having no share for them).",
                     "ledger_cost": f"The ledger's energy + rent + egress of the window's pools (backtest: of the "
                                    f"test window), {MONEY}.",
                     "today_cost": f"The cost model on the actual nodes and routing of the window, all components "
                                   f"of the horizon, {MONEY}.",
                     "savings": f"today_cost - objective, {MONEY}.",
                     "objective_misses": "Pool-hours whose routed load exceeds the nodes planned "
                                         "(plan_nodes_by_pool_hour.over_capacity): 0 for a plan; in a backtest, the "
                                         "test hours the planned capacity would not have served within the objectives.",
                 }, ("run_id",), group="planning")


def _detail(Table) -> list:  # noqa: N803 (warehouse.table.Table)
    return [
        Table("plan_routing", "The share of each hour's demand (tier, model, request-size bucket) each pool serves "
              "in a plan (backtest: the training plan's shares applied to the test window's demand).", {
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
            "over_capacity": "True when busy_nodes exceeds nodes_on: an objective miss (the routed load the nodes "
                             "on cannot serve within the objectives; only a backtest has them).",
        }, ("run_id", "pool", "hour"), group="planning"),
    ]


def _summary(Table):  # noqa: N803 (warehouse.table.Table)
    return Table("plan_summary", "Per plan, tier (ALL: the fleet) and cost component: the planned cost and, when "
                 "the caller gave today's (the cost model on the actual fleet and routing), today's cost and the "
                 "saving; per query, and the tier's objective risk. A tier's cost is each pool's cost split by the "
                 "tier's share of the pool's busy node-hours (docs/planning.md).", {
                     **_RUN, "tier": "Service tier, ALL for the fleet, (unused) for pools no tier used.",
                     "component": "energy_cost, rent_cost, egress_cost, amortization_cost or total_cost.",
                     "planned_cost": f"The plan's cost of the component over the window, {MONEY}.",
                     "today_cost": f"The cost model on the actual nodes and routing, {MONEY} (null when not given).",
                     "savings": f"today_cost - planned_cost, {MONEY} (null when today is not given).",
                     "requests": "Requests of the tier in the window (null when not given).",
                     "planned_cost_per_query": f"planned_cost / requests, {MONEY}.",
                     "today_cost_per_query": f"today_cost / requests, {MONEY}.",
                     "objective_risk": "Share of the tier's output tokens the plan serves on pool-hours at capacity "
                                       "(no headroom within the hour), 0-1.",
                 }, ("run_id", "tier", "component"), group="planning")

