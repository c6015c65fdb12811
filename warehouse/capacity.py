"""The capacity marts' inputs and SQL (docs/capacity.md, DOMAIN.md section 8).

`register_capacity` computes, with `transforms.capacity.day_capacity`, the day's per node-minute load, the
capacity of each (pool, model) at the strictest objective of the tiers it served, and the profile's
efficiency figures, and registers them for the SQL of `CAPACITY_SQL`: `cap_pm`, `load_hour`,
`capacity_pools`, `eff`, and the view `cph` (one row per powered pool-hour) the tables read.
Surplus is priced from the ledger's node-slots of the same pool-hour (never re-derived prices):
amortization, rent and fixed costs at the hour's cost per powered node, energy at the pool's idle
power (`idle_w` of its nodes, inventory) x the hour's energy cost per IT joule (overhead included).
"""

from datetime import date
from pathlib import Path

import duckdb
import polars as pl

from transforms.capacity.day import FACT_COLUMNS, day_capacity
from transforms.contracts import PERFORMANCE_PROFILES
from transforms.inventory import Inventory
from warehouse.connection import run


def profiles_frame(files: list[Path]) -> pl.LazyFrame:
    if not files:
        return pl.LazyFrame(schema=PERFORMANCE_PROFILES.schema)
    return pl.scan_parquet(files).select(PERFORMANCE_PROFILES.names)


def register_capacity(con: duckdb.DuckDBPyConnection, facts_files: list[Path], profile_files: list[Path],
                      inventory: Inventory, day: date) -> None:
    """Register the day's capacity frames (`transforms.capacity.day.day_capacity`) and the view
    `cph` on `con` (module docstring)."""
    facts = pl.scan_parquet(facts_files).select(FACT_COLUMNS)
    frames = day_capacity(facts, profiles_frame(profile_files), inventory, day)
    names = {"cap_pm": "pool_model", "load_hour": "load_hour", "capacity_pools": "pools", "eff": "efficiency"}
    for name, frame in zip(names, pl.collect_all([frames[key] for key in names.values()]), strict=True):
        con.register(name, frame.to_arrow())
    day0 = f"TIMESTAMPTZ '{day.isoformat()} 00:00:00+00'"
    run(con, "CREATE OR REPLACE TEMP VIEW cph AS " + CPH_SQL.replace("$day0", day0))


# One row per powered pool-hour (its node-slots in `ns`): demand, capacity, nodes needed, surplus and its cost.
CPH_SQL = """
    WITH slots AS (SELECT date_trunc('hour', slot_start) AS hour, count(DISTINCT slot_start) AS n FROM ns GROUP BY ALL),
    nsh AS (
        SELECT pool_id, date_trunc('hour', slot_start) AS hour, any_value(site_id) AS site_id, count(*) AS node_slots,
            xsum(energy_cost) AS energy_cost, xsum(demand_cost) AS demand_cost,
            xsum(amortization_cost) AS amortization_cost, xsum(cloud_cost) AS cloud_cost,
            xsum(fixed_cost) AS fixed_cost, xsum(it_energy_j) AS it_j
        FROM ns GROUP BY ALL),
    dm AS (
        SELECT l.pool_id, $day0 + to_hours(CAST(l.h AS BIGINT)) AS hour,
            l.output_tokens / 3600 AS d_tps, l.request_s / 3600 AS d_if, c.capacity_output_tokens_per_s AS cap,
            c.capacity_in_flight AS cap_if, c.capacity_source AS src, c.tier
        FROM load_hour l LEFT JOIN cap_pm c ON c.pool_id = l.pool_id AND c.model = l.model),
    d AS (
        SELECT pool_id, hour, xsum(d_tps) AS demand_tps, xsum(d_if) AS demand_if,
            xsum(CASE WHEN d_tps > 0 THEN d_tps / cap END) AS node_equiv,
            xsum(CASE WHEN d_tps > 0 THEN d_if / cap_if END) AS node_equiv_if,
            bool_or(cap IS NULL AND d_tps > 0) AS unknown,
            CASE WHEN count(DISTINCT src) FILTER (WHERE d_tps > 0) > 1 THEN 'mixed'
                 ELSE min(src) FILTER (WHERE d_tps > 0) END AS src,
            string_agg(DISTINCT tier, ',' ORDER BY tier) FILTER (WHERE d_tps > 0) AS tiers
        FROM dm GROUP BY ALL),
    pc AS (SELECT pool_id, min(capacity_output_tokens_per_s) AS cap, min(capacity_in_flight) AS cap_if,
                  CASE WHEN count(DISTINCT capacity_source) > 1 THEN 'mixed' ELSE min(capacity_source) END AS src
           FROM cap_pm GROUP BY ALL),
    j AS (
        SELECT nsh.*, s.n, p.safety_margin, p.redundancy_min_nodes, p.idle_w,
            coalesce(d.demand_tps, 0) AS demand_tps, coalesce(d.demand_if, 0) AS demand_if,
            nsh.node_slots / s.n AS nodes_powered,
            CASE WHEN coalesce(d.demand_tps, 0) = 0 THEN pc.cap WHEN NOT d.unknown THEN d.demand_tps / d.node_equiv
                 END AS cap,
            CASE WHEN coalesce(d.demand_tps, 0) = 0 THEN pc.cap_if WHEN NOT d.unknown THEN d.demand_if / d.node_equiv_if
                 END AS cap_if,
            CASE WHEN coalesce(d.demand_tps, 0) = 0 THEN coalesce(pc.src, 'unknown') WHEN d.unknown THEN 'unknown'
                 ELSE d.src END AS src,
            d.tiers,
            CASE WHEN coalesce(d.demand_tps, 0) = 0 THEN p.redundancy_min_nodes WHEN d.unknown THEN NULL
                 ELSE greatest(p.redundancy_min_nodes,
                               CAST(ceil(round(d.node_equiv / (1 - p.safety_margin), 9)) AS BIGINT)) END AS nodes_needed
        FROM nsh JOIN slots s ON s.hour = nsh.hour LEFT JOIN capacity_pools p ON p.pool_id = nsh.pool_id
        LEFT JOIN d ON d.pool_id = nsh.pool_id AND d.hour = nsh.hour LEFT JOIN pc ON pc.pool_id = nsh.pool_id)
    SELECT *, surplus_nodes * node_energy AS surplus_energy_cost,
        surplus_nodes * amortization_cost / nodes_powered AS surplus_amortization_cost,
        surplus_nodes * cloud_cost / nodes_powered AS surplus_cloud_cost,
        surplus_nodes * fixed_cost / nodes_powered AS surplus_fixed_cost,
        node_energy + (amortization_cost + cloud_cost + fixed_cost) / nodes_powered AS surplus_cost_per_node
    FROM (SELECT *, CASE WHEN nodes_needed IS NOT NULL THEN greatest(nodes_powered - nodes_needed, 0) END
                        AS surplus_nodes,
                 coalesce(idle_w * 3600 * energy_cost / nullif(it_j, 0), 0) AS node_energy FROM j)"""

_SURPLUS = ("surplus_energy_cost", "surplus_amortization_cost", "surplus_cloud_cost", "surplus_fixed_cost")
_POOL_COST = "energy_cost + demand_cost + amortization_cost + cloud_cost + fixed_cost"

CAPACITY_SQL = {
    "capacity_by_pool_hour": f"""
        SELECT $day AS date, hour, pool_id, site_id, demand_tps AS demand_output_tokens_per_s,
            demand_if AS demand_in_flight, cap AS capacity_output_tokens_per_s_per_node,
            cap_if AS capacity_in_flight_per_node, src AS capacity_source, tiers AS objective_tiers,
            nodes_powered, demand_tps / nullif(cap * nodes_powered, 0) AS utilization,
            safety_margin, redundancy_min_nodes, nodes_needed, surplus_nodes,
            {", ".join(_SURPLUS)}, {" + ".join(_SURPLUS)} AS surplus_cost,
            energy_cost AS pool_energy_cost, amortization_cost AS pool_amortization_cost,
            cloud_cost AS pool_cloud_cost, fixed_cost AS pool_fixed_cost,
            {_POOL_COST} AS pool_cost, $currency AS currency
        FROM cph""",
    "overprovisioning_by_pool_day": f"""
        WITH peak AS (SELECT pool_id, max(nodes_needed) AS peak_needed,
                             CASE WHEN count(nodes_needed) > 0
                                  THEN first(hour ORDER BY nodes_needed DESC NULLS LAST, hour) END AS peak_hour
                      FROM cph GROUP BY ALL)
        SELECT $day AS date, c.pool_id, any_value(site_id) AS site_id,
            CASE WHEN count(DISTINCT capacity_source) > 1 THEN 'mixed' ELSE min(capacity_source) END
                AS capacity_source,
            xsum(nodes_powered) AS node_hours_powered, xsum(nodes_needed) AS node_hours_needed,
            xsum(surplus_nodes) AS surplus_node_hours,
            {", ".join(f"xsum({c}) AS {c}" for c in _SURPLUS)}, xsum(surplus_cost) AS surplus_cost,
            xsum(pool_cost) AS pool_cost, xsum(surplus_cost) / nullif(xsum(pool_cost), 0) AS surplus_cost_share,
            any_value(peak.peak_hour) AS peak_hour, any_value(peak.peak_needed) AS peak_nodes_needed,
            max(nodes_powered) AS peak_nodes_powered,
            xsum(CASE WHEN peak.peak_needed IS NOT NULL THEN greatest(nodes_powered - peak.peak_needed, 0) END)
                AS surplus_node_hours_at_peak_sizing,
            xsum(CASE WHEN peak.peak_needed IS NOT NULL
                      THEN greatest(nodes_powered - peak.peak_needed, 0) * surplus_cost_per_node END)
                AS surplus_cost_at_peak_sizing,
            count(*) FILTER (WHERE nodes_needed IS NULL) AS capacity_unknown_hours,
            $currency AS currency
        FROM (SELECT *, {" + ".join(_SURPLUS)} AS surplus_cost, {_POOL_COST} AS pool_cost,
                     src AS capacity_source FROM cph) c
        LEFT JOIN peak ON peak.pool_id = c.pool_id
        GROUP BY c.pool_id""",
    "efficiency_by_model_pool_day": """
        WITH m AS (SELECT model, pool_id, any_value(site_id) AS site_id,
                          CAST(sum(output_tokens) AS BIGINT) AS output_tokens, xsum(it_energy_j) AS it_j
                   FROM rc GROUP BY model, pool_id)
        SELECT $day AS date, m.model, m.pool_id, m.site_id, p.gpu_model, m.output_tokens,
            e.gpus_per_replica, e.replicas_per_node, e.observed_batch,
            m.it_j / nullif(m.output_tokens, 0) AS measured_it_j_per_output_token,
            e.profile_j_per_output_token, e.profile_point, e.profile_source,
            m.it_j / nullif(m.output_tokens, 0) - e.profile_j_per_output_token AS gap_j_per_output_token,
            m.it_j / nullif(m.output_tokens, 0) / nullif(e.profile_j_per_output_token, 0) AS measured_to_profile
        FROM m LEFT JOIN eff e ON e.pool_id = m.pool_id AND e.model = m.model
        LEFT JOIN capacity_pools p ON p.pool_id = m.pool_id""",
}
