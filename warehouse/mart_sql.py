"""The SQL of each daily mart: one attributed day of the lake, read through views, to a small table.

Every statement reads the views `build_day_marts` registers (`warehouse.marts`): the day's
attribution outputs by the names of `ATTRIBUTED`, `quarantine` and `audit` (the ingest's), `pw` (the
day's node-scope power readings: `meter_id, power_w`), and the inventory's `tiers`, `pools` and
`node_meters`; `$day` and `$currency` are bound as parameters. What each column means is
`warehouse.tables`.
"""

from transforms.attribution.prices import J_PER_KWH
from transforms.bounds import IDLE_FLOOR
from transforms.attribution.reconcile import ENERGY_RELATIVE_TOLERANCE, MONEY_TOLERANCE
from warehouse.capacity import CAPACITY_SQL
from warehouse.tables import DAILY

# Attribution outputs a day's marts read, by the view name the SQL uses.
ATTRIBUTED = {"rc": "request_costs", "ns": "node_slots", "pi": "pool_idle", "sh": "site_hours", "tu": "true_up",
              "un": "unattributed", "rec": "reconciliation", "tot": "totals"}


def _ok_share(cond: str) -> str:
    return f"count(*) FILTER (WHERE status = 'ok' AND {cond}) / nullif(count(*) FILTER (WHERE status = 'ok'), 0)"


def _energy_shares(total: str, estimated: str, interpolated: str) -> str:
    """The three energy_<method>_share columns of a row whose energy is `total` (J), of which
    `estimated` and `interpolated` came from node-slots with that energy method: null without
    energy; measured is the rest (counter or gauge), so the three sum to 1."""
    e, i = f"{estimated} / nullif({total}, 0)", f"{interpolated} / nullif({total}, 0)"
    return (f"greatest(1 - {e} - {i}, 0) AS energy_measured_share, {i} AS energy_interpolated_share, "
            f"{e} AS energy_estimated_share")


# Of request rows (`rc`) and of node-slots (`ns`): their energy and its estimated and interpolated parts.
_RC_SHARES = _energy_shares("(xsum(it_energy_j) + xsum(overhead_energy_j))", "xsum(estimated_energy_j)",
                            "xsum(interpolated_energy_j)")
_NS_SHARES = _energy_shares("xsum(it_energy_j + overhead_j)", "xsum(estimated_energy_j)", "xsum(interpolated_energy_j)")


# A fact's end-to-end latency in seconds: `epoch(completed_at - arrived_at)` to the last bit, from the
# microseconds between them (`d`) as DuckDB's interval keeps them (whole days, and the microseconds
# left: C++ division and remainder) and as its `epoch` adds them up: 6x cheaper than building an
# INTERVAL per request (0.08 against 0.50 CPU-s over 2 M facts). tests/test_warehouse_marts.py
# holds the two equal on timestamps a day and more apart, forward and backward.
_E2E_US = "(epoch_us(completed_at) - epoch_us(arrived_at))"
E2E_S = (f"(CAST(({_E2E_US} // 86400000000) * 86400 AS DOUBLE) "
         f"+ CAST({_E2E_US} % 86400000000 AS DOUBLE) / 1e6)")


# The 95th percentiles of each tier's ok requests. DuckDB's `quantile_cont` holds every value of
# its group in memory and cannot spill: the two latencies of a 100 M-request day needed more than
# the marts' memory limit, and the build failed. A day larger than `quantiles_fit`
# (`warehouse.marts`) allows takes them from a histogram of the distinct latencies instead
# (TIER_P95_SQL): the same values, to the last bit of the interpolation at most. The histogram is
# a GROUP BY (spilled when it must), one scan for both latencies; its rows are the distinct
# latencies (~0.5 M at 10 M requests), not the requests. Rank rn = (n - 1) * 0.95 in doubles, as
# DuckDB computes it; the values at ranks floor(rn) and ceil(rn) (0-based) are the first whose
# running count exceeds the rank, interpolated as DuckDB's source writes it, lo * (1 - d) + hi * d
# with d = rn - floor(rn). Its binary here computes that with a fused multiply-add, which SQL
# cannot: one value in several differs in its last bit. It is not the path of every day because
# its scan costs more than `quantile_cont`'s: at 10 M requests the tier table took 3.2 s instead of
# 2.2 s (when `quantile_cont` rode on the tier aggregate's scan). tests/test_warehouse_marts.py
# holds the two equal (to the last bit) on generated latencies.
TIER_P95_SQL = f"""
    WITH h AS (
        SELECT tier, ttft_s AS t, {E2E_S} AS e, count(*) AS c
        FROM rc WHERE status = 'ok' GROUP BY GROUPING SETS ((tier, t), (tier, e))),
    v AS (SELECT tier, t IS NULL AS is_e, coalesce(t, e) AS x, c FROM h WHERE coalesce(t, e) IS NOT NULL),
    cum AS (
        SELECT tier, is_e, x, sum(c) OVER (PARTITION BY tier, is_e ORDER BY x ROWS UNBOUNDED PRECEDING) AS upto,
            (CAST(sum(c) OVER (PARTITION BY tier, is_e) AS DOUBLE) - 1) * CAST(0.95 AS DOUBLE) AS rn
        FROM v),
    r AS (
        SELECT tier, is_e, any_value(rn) AS rn, min(x) FILTER (WHERE upto > floor(rn)) AS lo,
            min(x) FILTER (WHERE upto > ceil(rn)) AS hi
        FROM cum GROUP BY tier, is_e),
    q AS (SELECT tier, is_e, CASE WHEN floor(rn) = ceil(rn) THEN lo
                                  ELSE lo * (1 - (rn - floor(rn))) + hi * (rn - floor(rn)) END AS p95 FROM r)
    SELECT tier, any_value(p95) FILTER (WHERE NOT is_e) AS ttft_p95_s, any_value(p95) FILTER (WHERE is_e) AS e2e_p95_s
    FROM q GROUP BY tier"""


# `tier_p95`: each tier's 95th-percentile latencies and its ok requests within the tier's objectives
# (`tiers`), from one narrow scan of the ok requests: by `quantile_cont` on a day small enough for it
# (`quantiles_fit`), else from TIER_P95_SQL's histogram (the attainment counted by a scan of its own).
# A tier without an ok request has no row: null percentiles and attainment in the tier table.
_OK_REQUESTS = (f"(SELECT tier, ttft_s, {E2E_S} AS e2e_s FROM rc WHERE status = 'ok') r "
                "LEFT JOIN tiers t ON t.tier = r.tier")
_MET = ("count(*) FILTER (WHERE ttft_s <= t.ttft_p95_s) AS n_ttft_met, "
        "count(*) FILTER (WHERE e2e_s <= t.e2e_p95_s) AS n_e2e_met")
TIER_P95_IN_MEMORY_SQL = f"""
    SELECT r.tier, quantile_cont(ttft_s, 0.95) AS ttft_p95_s, quantile_cont(e2e_s, 0.95) AS e2e_p95_s, {_MET}
    FROM {_OK_REQUESTS} GROUP BY r.tier"""
TIER_P95_BOUNDED_SQL = f"""
    SELECT a.tier, p.ttft_p95_s, p.e2e_p95_s, a.n_ttft_met, a.n_e2e_met
    FROM (SELECT r.tier, {_MET} FROM {_OK_REQUESTS} GROUP BY r.tier) a
    LEFT JOIN ({TIER_P95_SQL}) p ON p.tier IS NOT DISTINCT FROM a.tier"""

# Columns of the request facts the marts sum exactly (`xsum`).
_EXACT = ("it_energy_j", "overhead_energy_j", "estimated_energy_j", "interpolated_energy_j", "energy_kwh",
          "energy_cost", "demand_cost", "amortization_cost", "cloud_cost", "fixed_cost", "egress_cost",
          "direct_cost", "idle_share", "fully_loaded_cost")
# One scan of the day's facts into `rcp`, the partial sums at the finest grain the tables over the
# facts group by (tier, tenant, model, pool, site, energy method, weight, idle policy: ~560 rows at
# 10 M requests): the money and energy as exact DECIMAL(38, 18) sums, which `xsum` adds up again
# exactly (decimal addition is associative: the same value, so the same bytes, as `xsum` over the
# facts), the tokens as integer sums, the counts.
# Instead of each table scanning the facts and casting every value to a decimal on its own.
RC_PARTIALS_SQL = f"""
    SELECT tier, tenant_id, model, pool_id, site_id, energy_method, weight, idle_policy,
        count(*) AS n_rows, count(*) FILTER (WHERE done) AS n_done, count(*) FILTER (WHERE status = 'ok') AS n_ok,
        sum(input_tokens) AS input_tokens, sum(cached_input_tokens) AS cached_input_tokens,
        sum(output_tokens) AS output_tokens, sum(input_tokens) FILTER (WHERE status = 'ok') AS ok_input_tokens,
        sum(output_tokens) FILTER (WHERE status = 'ok') AS ok_output_tokens,
        {", ".join(f"sum(CAST({c} AS DECIMAL(38, 18))) AS {c}" for c in _EXACT)}
    FROM rc GROUP BY tier, tenant_id, model, pool_id, site_id, energy_method, weight, idle_policy"""


def _n(count: str) -> str:
    """A count of `rcp`'s summed back to BIGINT (a sum of BIGINT is a HUGEINT), as `count(*)` is."""
    return f"CAST(sum({count}) AS BIGINT)"


# The SQL of each daily table, over the views of `ATTRIBUTED`, `quarantine`, `audit`, and the
# inventory's `tiers` and `pools`, and the temp tables `build_day_marts` fills first: `rcp` (RC_PARTIALS_SQL)
# and `tier_p95` (TIER_P95_IN_MEMORY_SQL or TIER_P95_BOUNDED_SQL); `$day` and `$currency` are bound as parameters.
DAY_SQL = {
    "cost_by_tier_day": f"""
        SELECT $day AS date, r.tier,
            {_n('n_done')} AS requests,
            {_n('n_ok')} AS ok_requests,
            CAST(sum(input_tokens) AS BIGINT) AS input_tokens,
            CAST(sum(cached_input_tokens) AS BIGINT) AS cached_input_tokens,
            CAST(sum(output_tokens) AS BIGINT) AS output_tokens,
            xsum(it_energy_j) / {J_PER_KWH} AS it_energy_kwh,
            xsum(overhead_energy_j) / {J_PER_KWH} AS overhead_energy_kwh,
            (xsum(it_energy_j) + xsum(overhead_energy_j)) / {J_PER_KWH} AS energy_kwh,
            {_RC_SHARES},
            xsum(energy_cost) AS energy_cost, xsum(demand_cost) AS demand_cost,
            xsum(amortization_cost) AS amortization_cost, xsum(cloud_cost) AS cloud_cost,
            xsum(fixed_cost) AS fixed_cost, xsum(egress_cost) AS egress_cost,
            xsum(direct_cost) AS direct_cost, xsum(idle_share) AS idle_cost,
            xsum(fully_loaded_cost) AS fully_loaded_cost,
            xsum(direct_cost) / nullif({_n('n_done')}, 0) AS direct_cost_per_query,
            xsum(fully_loaded_cost) / nullif({_n('n_done')}, 0) AS fully_loaded_cost_per_query,
            xsum(fully_loaded_cost) * 1e6 / nullif(sum(input_tokens) + sum(output_tokens), 0)
                AS fully_loaded_cost_per_m_tokens,
            xsum(fully_loaded_cost) * 1e6 / nullif(sum(output_tokens), 0) AS fully_loaded_cost_per_m_output_tokens,
            any_value(p.ttft_p95_s) AS ttft_p95_s,
            any_value(t.ttft_p95_s) AS ttft_objective_s,
            any_value(p.n_ttft_met) / nullif({_n('n_ok')}, 0) AS ttft_attainment,
            any_value(p.e2e_p95_s) AS e2e_p95_s,
            any_value(t.e2e_p95_s) AS e2e_objective_s,
            any_value(p.n_e2e_met) / nullif({_n('n_ok')}, 0) AS e2e_attainment,
            any_value(p.ttft_p95_s) <= any_value(t.ttft_p95_s) AND any_value(p.e2e_p95_s) <= any_value(t.e2e_p95_s)
                AS objectives_met,
            (sum(ok_input_tokens) * any_value(t.price_per_m_input_tokens)
             + sum(ok_output_tokens) * any_value(t.price_per_m_output_tokens)) / 1e6
                AS revenue,
            revenue - xsum(fully_loaded_cost) AS gross_margin,
            (revenue - xsum(fully_loaded_cost)) / nullif(revenue, 0) AS gross_margin_pct,
            $currency AS currency
        FROM rcp r LEFT JOIN tiers t ON t.tier = r.tier LEFT JOIN tier_p95 p ON p.tier IS NOT DISTINCT FROM r.tier
        GROUP BY r.tier""",
    "cost_by_tenant_day": f"""
        SELECT $day AS date, rc.tenant_id, rc.tier,
            {_n('n_done')} AS requests,
            CAST(sum(input_tokens) AS BIGINT) AS input_tokens,
            CAST(sum(output_tokens) AS BIGINT) AS output_tokens,
            (xsum(it_energy_j) + xsum(overhead_energy_j)) / {J_PER_KWH} AS energy_kwh,
            {_RC_SHARES},
            xsum(direct_cost) AS direct_cost, xsum(idle_share) AS idle_cost,
            xsum(fully_loaded_cost) AS fully_loaded_cost,
            coalesce((sum(ok_input_tokens) * any_value(t.price_per_m_input_tokens)
             + sum(ok_output_tokens) * any_value(t.price_per_m_output_tokens)) / 1e6, 0)
                AS revenue,
            $currency AS currency
        FROM rcp rc LEFT JOIN tiers t ON t.tier = rc.tier
        GROUP BY rc.tenant_id, rc.tier""",
    "cost_by_model_pool_day": f"""
        WITH util AS (
            SELECT pool_id, count(*) FILTER (WHERE occupied) / count(*) AS pool_utilization FROM ns GROUP BY pool_id)
        SELECT $day AS date, rc.model, rc.pool_id, any_value(rc.site_id) AS site_id,
            any_value(p.gpu_model) AS gpu_model,
            {_n('n_done')} AS requests,
            CAST(sum(input_tokens) AS BIGINT) AS input_tokens,
            CAST(sum(output_tokens) AS BIGINT) AS output_tokens,
            xsum(it_energy_j) / {J_PER_KWH} AS it_energy_kwh,
            (xsum(it_energy_j) + xsum(overhead_energy_j)) / {J_PER_KWH} AS energy_kwh,
            xsum(it_energy_j) / nullif(sum(output_tokens), 0) AS it_j_per_output_token,
            (xsum(it_energy_j) + xsum(overhead_energy_j)) / nullif(sum(output_tokens), 0) AS j_per_output_token,
            {_RC_SHARES},
            xsum(direct_cost) AS direct_cost, xsum(fully_loaded_cost) AS fully_loaded_cost,
            xsum(direct_cost) * 1e6 / nullif(sum(output_tokens), 0) AS direct_cost_per_m_output_tokens,
            xsum(fully_loaded_cost) * 1e6 / nullif(sum(input_tokens) + sum(output_tokens), 0)
                AS fully_loaded_cost_per_m_tokens,
            any_value(util.pool_utilization) AS pool_utilization,
            $currency AS currency
        FROM rcp rc LEFT JOIN pools p ON p.pool_id = rc.pool_id LEFT JOIN util ON util.pool_id = rc.pool_id
        GROUP BY rc.model, rc.pool_id""",
    "idle_by_pool_hour": f"""
        SELECT $day AS date, date_trunc('hour', slot_start) AS hour, pool_id, any_value(site_id) AS site_id,
            count(*) AS node_slots,
            count(*) FILTER (WHERE NOT occupied) AS idle_slots,
            count(*) FILTER (WHERE NOT occupied) / count(*) AS idle_slot_share,
            xsum(it_energy_j + overhead_j) / {J_PER_KWH} AS energy_kwh,
            {_NS_SHARES},
            xsum(idle_it_energy_j + idle_overhead_j) / {J_PER_KWH} AS idle_energy_kwh,
            xsum(energy_cost + demand_cost + amortization_cost + cloud_cost + fixed_cost) AS slot_cost,
            xsum(idle_energy_cost + idle_demand_cost + idle_amortization_cost + idle_cloud_cost + idle_fixed_cost)
                AS idle_cost,
            idle_cost / nullif(slot_cost, 0) AS idle_cost_share,
            $currency AS currency
        FROM ns GROUP BY ALL""",
    "idle_by_pool_day": f"""
        WITH m AS (
            SELECT pool_id, xsum(idle_it_energy_j + idle_overhead_j) AS e, xsum(idle_estimated_energy_j) AS est,
                   xsum(idle_interpolated_energy_j) AS interp
            FROM ns GROUP BY pool_id)
        SELECT $day AS date, pi.pool_id, site_id, idle_slots,
            (idle_it_energy_j + idle_overhead_j) / {J_PER_KWH} AS idle_energy_kwh,
            {_energy_shares("m.e", "m.est", "m.interp")},
            idle_energy_cost, idle_demand_cost, idle_amortization_cost, idle_cloud_cost, idle_fixed_cost,
            idle_cost, absorbed, unabsorbed, policy, reserved_by, $currency AS currency
        FROM pi LEFT JOIN m ON m.pool_id = pi.pool_id""",
    "site_energy_hour": f"""
        WITH cost AS (
            SELECT site_id, date_trunc('hour', slot_start) AS hour, xsum(energy_cost) AS energy_cost,
                   xsum(demand_cost) AS demand_cost, xsum(it_energy_j + overhead_j) AS e,
                   xsum(estimated_energy_j) AS est, xsum(interpolated_energy_j) AS interp
            FROM ns GROUP BY ALL)
        SELECT $day AS date, sh.site_id, sh.hour,
            sh.it_energy_j / {J_PER_KWH} AS it_energy_kwh,
            sh.overhead_j / {J_PER_KWH} AS overhead_energy_kwh,
            (sh.it_energy_j + sh.overhead_j) / {J_PER_KWH} AS facility_energy_kwh,
            {_energy_shares("cost.e", "cost.est", "cost.interp")},
            sh.pue, sh.pue_method, sh.overhead_clamped,
            coalesce(cost.energy_cost, 0) AS energy_cost, coalesce(cost.demand_cost, 0) AS demand_cost,
            coalesce(cost.energy_cost, 0) / nullif((sh.it_energy_j + sh.overhead_j) / {J_PER_KWH}, 0) AS price_per_kwh,
            $currency AS currency
        FROM sh LEFT JOIN cost ON cost.site_id = sh.site_id AND cost.hour = sh.hour""",
    "energy_true_up": """
        SELECT $day AS date, site_id, tou_period, invoice_line_id, day_kwh, tariff_cost, invoiced_rate, energy_cost,
               true_up_factor
        FROM tu""",
    "reconciliation": f"""
        SELECT $day AS date, source, line_id, component,
            CASE WHEN unit = 'J' THEN 'kWh' ELSE unit END AS unit,
            CASE WHEN unit = 'J' THEN source_amount / {J_PER_KWH} ELSE source_amount END AS source_amount,
            CASE WHEN unit = 'J' THEN to_requests / {J_PER_KWH} ELSE to_requests END AS to_requests,
            CASE WHEN unit = 'J' THEN to_idle / {J_PER_KWH} ELSE to_idle END AS to_idle,
            CASE WHEN unit = 'J' THEN rec.unattributed / {J_PER_KWH} ELSE rec.unattributed END AS unattributed,
            CASE WHEN unit = 'J' THEN difference / {J_PER_KWH} ELSE difference END AS difference,
            CASE WHEN unit = 'J' THEN abs(difference) <= {ENERGY_RELATIVE_TOLERANCE} * greatest(abs(source_amount), 1.0)
                 ELSE abs(difference) <= {MONEY_TOLERANCE} END AS within_tolerance,
            source_currency, source_currency_amount, fx_rate
        FROM rec""",
    "conservation_by_component": f"""
        SELECT $day AS date, component,
            CASE WHEN unit = 'J' THEN 'kWh' ELSE $currency END AS unit,
            CASE WHEN unit = 'J' THEN source_amount / {J_PER_KWH} ELSE source_amount END AS source_amount,
            CASE WHEN unit = 'J' THEN to_requests / {J_PER_KWH} ELSE to_requests END AS to_requests,
            CASE WHEN unit = 'J' THEN to_idle / {J_PER_KWH} ELSE to_idle END AS to_idle,
            CASE WHEN unit = 'J' THEN tot.unattributed / {J_PER_KWH} ELSE tot.unattributed END AS unattributed,
            CASE WHEN unit = 'J' THEN in_requests / {J_PER_KWH} ELSE in_requests END AS in_request_facts,
            CASE WHEN unit = 'J' THEN in_idle / {J_PER_KWH} ELSE in_idle END AS in_idle_slots
        FROM tot""",
    "unattributed_costs": """
        SELECT $day AS date, source, line_id, component, amount, currency, reason, service_name FROM un""",
    "quarantine_summary": """
        SELECT $day AS date, site AS site_id, dataset, reason, count(*) AS rows,
            arg_min(source_file, (source_file, source_row)) AS example_file,
            arg_min(source_row, (source_file, source_row)) AS example_row
        FROM quarantine GROUP BY ALL""",
    "ingest_audit": """
        SELECT $day AS date, site AS site_id, dataset, source_file,
            -- DuckDB sums BIGINT to HUGEINT, which Parquet stores as DOUBLE: counts stay BIGINT.
            sum(rows_read)::BIGINT AS rows_read, sum(rows_accepted)::BIGINT AS rows_accepted,
            sum(rows_quarantined)::BIGINT AS rows_quarantined,
            coalesce(any_value(status), 'read') AS status, any_value(status_detail) AS status_detail
        FROM audit GROUP BY site, dataset, source_file""",
}
# power_readings.power_w.not_below_node_idle (transforms/quality/suites.py), per node meter, for the report.
_BELOW = f"p.power_w < m.idle_w * {IDLE_FLOOR}"
DAY_SQL["node_power_below_idle"] = f"""
    SELECT $day AS date, m.site_id, m.node_id, p.meter_id, m.source AS meter_source, m.sensor, m.idle_w,
           m.idle_w * {IDLE_FLOOR} AS floor_w, count(*) AS samples, count(*) FILTER (WHERE {_BELOW}) AS samples_below,
           median(p.power_w) AS median_power_w, min(p.power_w) AS min_power_w
    FROM pw p JOIN node_meters m ON m.meter_id = p.meter_id
    WHERE p.power_w IS NOT NULL
    GROUP BY ALL HAVING count(*) FILTER (WHERE {_BELOW}) > 0"""
# The report's methods tables (warehouse.report.figures.METHODS), from the day's partial sums (`rcp`).
DAY_SQL["requests_by_method_day"] = f"""
    SELECT $day AS date, energy_method, weight, idle_policy, {_n('n_done')} AS requests,
           xsum(energy_kwh) AS energy_kwh, xsum(fully_loaded_cost) AS fully_loaded_cost, $currency AS currency
    FROM rcp GROUP BY ALL"""
DAY_SQL.update(CAPACITY_SQL)  # capacity_by_pool_hour, overprovisioning_by_pool_day, efficiency_by_model_pool_day
assert set(DAY_SQL) == {t.name for t in DAILY}, "every daily table has its SQL"
