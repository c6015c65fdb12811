"""Per-day marts: one attributed day of the lake -> small Parquet tables, computed by DuckDB.

Each daily table of `warehouse.tables` is computed from the day's attribution outputs (and the
ingest's quarantine and audit) into `<lake>/marts/<table>/date=D/part-0.parquet`, so the
nightly publish only reads small per-day files, whatever the history. A manifest
(`<lake>/marts/_manifest/date=D.json`) records the source files and the inventory the marts
were built from; `marts_status` tells the publish whether a day's marts are those of its
current facts: the `cost_marts` asset builds them only after the facts' blocking checks
passed, so a day re-attributed with facts that failed them (or whose build was killed) has
stale marts and is not published until it is attributed again. A changed inventory (tier
prices, objectives) only needs the marts rebuilt from the same facts: the publish does that.

Sums of money and energy are exact (`xsum`: a DECIMAL(38,18) sum, cast back to DOUBLE), so
the marts do not depend on the order DuckDB's threads add rows in: a rerun writes the same bytes.
"""

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import polars as pl

from lake.files import staging, write_text
from lake.store import Lake
from transforms.attribution.prices import J_PER_KWH
from transforms.attribution.reconcile import ENERGY_RELATIVE_TOLERANCE, MONEY_TOLERANCE
from transforms.contracts import INGEST_AUDIT, QUARANTINE
from transforms.inventory import Inventory
from warehouse.tables import BY_NAME, DAILY

# Attribution outputs a day's marts read, by the view name the SQL uses.
ATTRIBUTED = {"rc": "request_costs", "ns": "node_slots", "pi": "pool_idle", "sh": "site_hours", "tu": "true_up",
              "un": "unattributed", "rec": "reconciliation", "tot": "totals"}


class MartError(RuntimeError):
    """A day's marts cannot be built (the day is not attributed, or its files are unreadable)."""


def run(con: duckdb.DuckDBPyConnection, sql: str, params=None) -> list[tuple]:
    """Execute one statement to completion and return its rows (DuckDB 2 keeps an `execute`
    result open on the connection until it is fetched)."""
    con.execute(sql, params)
    return con.fetchall()


# DuckDB takes up to 80 % of RAM by default; the marts, the publish checks and the report's
# reading of the warehouse (a GROUP BY over every request id of the day among them) are given
# this much and spill beyond it to `DUCKDB_TEMP`, so their peak stops growing with the day.
# Not less: at 1 GB the marts of a 30 M-request day failed one build in four (an allocation
# that cannot spill); at 2 GB six of six passed.
DUCKDB_MEMORY_LIMIT = os.environ.get("INFERLEDGER_DUCKDB_MEMORY_LIMIT") or "2GB"
DUCKDB_TEMP = Path(os.environ.get("INFERLEDGER_DUCKDB_TEMP") or Path(tempfile.gettempdir()) / "inferledger-duckdb")


def bound_memory(con: duckdb.DuckDBPyConnection) -> None:
    """Cap the connection's memory at DUCKDB_MEMORY_LIMIT, spilling beyond it to DUCKDB_TEMP."""
    run(con, "SET memory_limit = " + "'" + DUCKDB_MEMORY_LIMIT.replace("'", "''") + "'")
    run(con, "SET temp_directory = " + "'" + str(DUCKDB_TEMP).replace("'", "''") + "'")


def connect(database: str = ":memory:", **kwargs) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection in UTC with the `xsum` macro (exact sum of doubles), its memory
    bounded by DUCKDB_MEMORY_LIMIT (spilling to DUCKDB_TEMP)."""
    con = duckdb.connect(database, **kwargs)
    run(con, "SET TimeZone = 'UTC'")
    run(con, "SET enable_progress_bar = false")  # progress is the caller's to show
    bound_memory(con)
    run(con, "CREATE OR REPLACE TEMP MACRO xsum(x) AS CAST(sum(CAST(x AS DECIMAL(38, 18))) AS DOUBLE)")
    return con


def _ok_share(cond: str) -> str:
    return f"count(*) FILTER (WHERE status = 'ok' AND {cond}) / nullif(count(*) FILTER (WHERE status = 'ok'), 0)"


# The 95th percentiles of each tier's ok requests. DuckDB's `quantile_cont` holds every value of
# its group in memory and cannot spill: the two latencies of a 100 M-request day needed more than
# the marts' memory limit, and the build failed. A day larger than `quantiles_fit` allows takes
# them from a histogram of the distinct latencies instead (TIER_P95_SQL): the same values, to the
# last bit of the interpolation at most. The histogram is a GROUP BY (spilled when it must), one scan for both latencies; its
# rows are the distinct latencies (~0.5 M at 10 M requests), not the requests. Rank
# rn = (n - 1) * 0.95 in doubles, as DuckDB computes it; the values at ranks floor(rn) and
# ceil(rn) (0-based) are the first whose running count exceeds the rank, interpolated as DuckDB's
# source writes it, lo * (1 - d) + hi * d with d = rn - floor(rn). Its binary here computes that
# with a fused multiply-add, which SQL cannot: one value in several differs in its last bit. It is not the path of every day because its own scan costs
# more than `quantile_cont` inside the tier aggregate: at 10 M requests the table took 3.2 s
# instead of 2.2 s. tests/test_warehouse_marts.py holds the two equal (to the last bit) on
# generated latencies.
TIER_P95_SQL = """
    WITH h AS (
        SELECT tier, ttft_s AS t, epoch(completed_at - arrived_at) AS e, count(*) AS c
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


# The SQL of each daily table, over the views of `ATTRIBUTED`, `quarantine`, `audit`, and the
# inventory's `tiers` and `pools`; `$day` and `$currency` are bound as parameters.
DAY_SQL = {
    "cost_by_tier_day": f"""
        WITH r AS (
            SELECT *, epoch(completed_at - arrived_at) AS e2e_s FROM rc){{p95_cte}}
        SELECT $day AS date, r.tier,
            count(*) AS requests,
            count(*) FILTER (WHERE status = 'ok') AS ok_requests,
            CAST(sum(input_tokens) AS BIGINT) AS input_tokens,
            CAST(sum(cached_input_tokens) AS BIGINT) AS cached_input_tokens,
            CAST(sum(output_tokens) AS BIGINT) AS output_tokens,
            xsum(it_energy_j) / {J_PER_KWH} AS it_energy_kwh,
            xsum(overhead_energy_j) / {J_PER_KWH} AS overhead_energy_kwh,
            (xsum(it_energy_j) + xsum(overhead_energy_j)) / {J_PER_KWH} AS energy_kwh,
            xsum(energy_cost) AS energy_cost, xsum(demand_cost) AS demand_cost,
            xsum(amortization_cost) AS amortization_cost, xsum(cloud_cost) AS cloud_cost,
            xsum(fixed_cost) AS fixed_cost, xsum(egress_cost) AS egress_cost,
            xsum(direct_cost) AS direct_cost, xsum(idle_share) AS idle_cost,
            xsum(fully_loaded_cost) AS fully_loaded_cost,
            xsum(direct_cost) / count(*) AS direct_cost_per_query,
            xsum(fully_loaded_cost) / count(*) AS fully_loaded_cost_per_query,
            xsum(fully_loaded_cost) * 1e6 / nullif(sum(input_tokens) + sum(output_tokens), 0) AS fully_loaded_cost_per_m_tokens,
            xsum(fully_loaded_cost) * 1e6 / nullif(sum(output_tokens), 0) AS fully_loaded_cost_per_m_output_tokens,
            {{ttft_p95}} AS ttft_p95_s,
            any_value(t.ttft_p95_s) AS ttft_objective_s,
            {_ok_share('ttft_s <= t.ttft_p95_s')} AS ttft_attainment,
            {{e2e_p95}} AS e2e_p95_s,
            any_value(t.e2e_p95_s) AS e2e_objective_s,
            {_ok_share('e2e_s <= t.e2e_p95_s')} AS e2e_attainment,
            {{ttft_p95}} <= any_value(t.ttft_p95_s) AND {{e2e_p95}} <= any_value(t.e2e_p95_s) AS objectives_met,
            (sum(input_tokens) FILTER (WHERE status = 'ok') * any_value(t.price_per_m_input_tokens)
             + sum(output_tokens) FILTER (WHERE status = 'ok') * any_value(t.price_per_m_output_tokens)) / 1e6 AS revenue,
            revenue - xsum(fully_loaded_cost) AS gross_margin,
            (revenue - xsum(fully_loaded_cost)) / nullif(revenue, 0) AS gross_margin_pct,
            $currency AS currency
        FROM r LEFT JOIN tiers t ON t.tier = r.tier{{p95_join}}
        GROUP BY r.tier""",
    "cost_by_tenant_day": f"""
        SELECT $day AS date, rc.tenant_id, rc.tier,
            count(*) AS requests,
            CAST(sum(input_tokens) AS BIGINT) AS input_tokens,
            CAST(sum(output_tokens) AS BIGINT) AS output_tokens,
            (xsum(it_energy_j) + xsum(overhead_energy_j)) / {J_PER_KWH} AS energy_kwh,
            xsum(direct_cost) AS direct_cost, xsum(idle_share) AS idle_cost,
            xsum(fully_loaded_cost) AS fully_loaded_cost,
            coalesce((sum(input_tokens) FILTER (WHERE status = 'ok') * any_value(t.price_per_m_input_tokens)
             + sum(output_tokens) FILTER (WHERE status = 'ok') * any_value(t.price_per_m_output_tokens)) / 1e6, 0) AS revenue,
            $currency AS currency
        FROM rc LEFT JOIN tiers t ON t.tier = rc.tier
        GROUP BY rc.tenant_id, rc.tier""",
    "cost_by_model_pool_day": f"""
        WITH util AS (
            SELECT pool_id, count(*) FILTER (WHERE occupied) / count(*) AS pool_utilization FROM ns GROUP BY pool_id)
        SELECT $day AS date, rc.model, rc.pool_id, any_value(rc.site_id) AS site_id, any_value(p.gpu_model) AS gpu_model,
            count(*) AS requests,
            CAST(sum(input_tokens) AS BIGINT) AS input_tokens,
            CAST(sum(output_tokens) AS BIGINT) AS output_tokens,
            xsum(it_energy_j) / {J_PER_KWH} AS it_energy_kwh,
            (xsum(it_energy_j) + xsum(overhead_energy_j)) / {J_PER_KWH} AS energy_kwh,
            xsum(it_energy_j) / nullif(sum(output_tokens), 0) AS it_j_per_output_token,
            (xsum(it_energy_j) + xsum(overhead_energy_j)) / nullif(sum(output_tokens), 0) AS j_per_output_token,
            xsum(direct_cost) AS direct_cost, xsum(fully_loaded_cost) AS fully_loaded_cost,
            xsum(direct_cost) * 1e6 / nullif(sum(output_tokens), 0) AS direct_cost_per_m_output_tokens,
            xsum(fully_loaded_cost) * 1e6 / nullif(sum(input_tokens) + sum(output_tokens), 0) AS fully_loaded_cost_per_m_tokens,
            any_value(util.pool_utilization) AS pool_utilization,
            $currency AS currency
        FROM rc LEFT JOIN pools p ON p.pool_id = rc.pool_id LEFT JOIN util ON util.pool_id = rc.pool_id
        GROUP BY rc.model, rc.pool_id""",
    "idle_by_pool_hour": f"""
        SELECT $day AS date, date_trunc('hour', slot_start) AS hour, pool_id, any_value(site_id) AS site_id,
            count(*) AS node_slots,
            count(*) FILTER (WHERE NOT occupied) AS idle_slots,
            count(*) FILTER (WHERE NOT occupied) / count(*) AS idle_slot_share,
            xsum(it_energy_j + overhead_j) / {J_PER_KWH} AS energy_kwh,
            xsum(idle_it_energy_j + idle_overhead_j) / {J_PER_KWH} AS idle_energy_kwh,
            xsum(energy_cost + demand_cost + amortization_cost + cloud_cost + fixed_cost) AS slot_cost,
            xsum(idle_energy_cost + idle_demand_cost + idle_amortization_cost + idle_cloud_cost + idle_fixed_cost) AS idle_cost,
            idle_cost / nullif(slot_cost, 0) AS idle_cost_share,
            $currency AS currency
        FROM ns GROUP BY ALL""",
    "idle_by_pool_day": f"""
        SELECT $day AS date, pool_id, site_id, idle_slots,
            (idle_it_energy_j + idle_overhead_j) / {J_PER_KWH} AS idle_energy_kwh,
            idle_energy_cost, idle_demand_cost, idle_amortization_cost, idle_cloud_cost, idle_fixed_cost,
            idle_cost, absorbed, unabsorbed, policy, reserved_by, $currency AS currency
        FROM pi""",
    "site_energy_hour": f"""
        WITH cost AS (
            SELECT site_id, date_trunc('hour', slot_start) AS hour, xsum(energy_cost) AS energy_cost,
                   xsum(demand_cost) AS demand_cost
            FROM ns GROUP BY ALL)
        SELECT $day AS date, sh.site_id, sh.hour,
            sh.it_energy_j / {J_PER_KWH} AS it_energy_kwh,
            sh.overhead_j / {J_PER_KWH} AS overhead_energy_kwh,
            (sh.it_energy_j + sh.overhead_j) / {J_PER_KWH} AS facility_energy_kwh,
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
                 ELSE abs(difference) <= {MONEY_TOLERANCE} END AS within_tolerance
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
            sum(rows_read) AS rows_read, sum(rows_accepted) AS rows_accepted, sum(rows_quarantined) AS rows_quarantined,
            coalesce(any_value(status), 'read') AS status, any_value(status_detail) AS status_detail
        FROM audit GROUP BY site, dataset, source_file""",
}
_TIER_DAY = DAY_SQL["cost_by_tier_day"]
DAY_SQL["cost_by_tier_day"] = _TIER_DAY.format(
    p95_cte="", p95_join="", ttft_p95="quantile_cont(ttft_s, 0.95) FILTER (WHERE status = 'ok')",
    e2e_p95="quantile_cont(e2e_s, 0.95) FILTER (WHERE status = 'ok')")
# The tier table of a day too large for `quantile_cont` (see TIER_P95_SQL).
TIER_DAY_BOUNDED_SQL = _TIER_DAY.format(
    p95_cte=f", p AS ({TIER_P95_SQL})", p95_join=" LEFT JOIN p ON p.tier = r.tier",
    ttft_p95="any_value(p.ttft_p95_s)", e2e_p95="any_value(p.e2e_p95_s)")
assert set(DAY_SQL) == {t.name for t in DAILY}, "every daily table has its SQL"

# `quantile_cont` keeps each ok request's two latencies (8 bytes each) in vectors that may double
# as they grow; half the memory limit is left to the rest of the query. 30 M requests at the 2 GB
# default: six builds of six passed; 100 M failed.
QUANTILE_BYTES_PER_REQUEST = 64
_UNITS = {"bytes": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40, "PiB": 1 << 50}


def memory_limit_bytes(con: duckdb.DuckDBPyConnection) -> float:
    """The connection's memory limit (DuckDB shows it as `1.8 GiB`)."""
    value, unit = run(con, "SELECT current_setting('memory_limit')")[0][0].split()
    return float(value) * _UNITS[unit]


def quantiles_fit(con: duckdb.DuckDBPyConnection, requests: int) -> bool:
    """Whether `quantile_cont` over a day of `requests` fits the connection's memory limit."""
    return requests * QUANTILE_BYTES_PER_REQUEST <= memory_limit_bytes(con)


@dataclass
class DayMarts:
    day: date
    paths: dict[str, Path] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)


def inventory_fingerprint(inventory: Inventory) -> str:
    return hashlib.sha256(inventory.model_dump_json().encode()).hexdigest()[:16]


def _stat(path: Path) -> list[int]:
    st = path.stat()  # size and modification time: a lake copied with its times (cp -p, rsync -t) stays current
    return [st.st_size, st.st_mtime_ns]


def _day_sources(lake: Lake, day: date) -> dict[str, list[Path]]:
    files = {name: lake.partition_files(name, day) for name in ATTRIBUTED.values()}
    for name in ("quarantine", "ingest_audit"):
        files[name] = [f for site in lake.sites(name, day) for f in lake.partition_files(name, day, site)]
    return files


def _fingerprint(lake: Lake, day: date, inventory: Inventory) -> dict:
    sources = _day_sources(lake, day)
    return {
        "inventory": inventory_fingerprint(inventory),
        "sources": {str(p.relative_to(lake.root)): _stat(p) for files in sources.values() for p in files},
        "columns": {t.name: list(t.columns) for t in DAILY},
    }


def attributed_days(lake: Lake) -> list[date]:
    """Days with attributed request facts in the lake."""
    return lake.days_with("request_costs")


def marts_status(lake: Lake, day: date, inventory: Inventory) -> str:
    """`current`; `inventory_changed` (same facts, other inventory); `columns_changed` (same
    facts, but the marts' tables have other columns in this release); both are rebuilt from the
    same facts by the publish; `stale` (the day's files changed since its marts were built); or
    `missing` (never built, or a build killed half way)."""
    m = lake.marts_manifest(day)
    if not m.exists():
        return "missing"
    try:
        recorded = json.loads(m.read_text())
        marts = {t.name: lake.mart_path(t.name, day) for t in DAILY}
        if not all(p.exists() and recorded["marts"].get(name) == _stat(p) for name, p in marts.items()):
            return "missing"
        now = _fingerprint(lake, day, inventory)
        if recorded["built_from"]["sources"] != now["sources"]:
            return "stale"
        built = recorded["built_from"]
        if built["inventory"] != now["inventory"]:
            return "inventory_changed"
        return "current" if built.get("columns") == now["columns"] else "columns_changed"
    except (KeyError, ValueError, OSError):
        return "missing"


def marts_are_current(lake: Lake, day: date, inventory: Inventory) -> bool:
    return marts_status(lake, day, inventory) == "current"


def _empty(schema: pl.Schema) -> str:
    cols = ", ".join(f"CAST(NULL AS {_duck_type(t)}) AS {n}" for n, t in schema.items())
    return f"SELECT {cols}, CAST(NULL AS VARCHAR) AS site WHERE false"


def _duck_type(t: pl.DataType) -> str:
    return {pl.String: "VARCHAR", pl.Int64: "BIGINT", pl.Int32: "INTEGER", pl.Float64: "DOUBLE"}.get(t, "VARCHAR")


def _sql_list(paths: list[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


def _register_day(con: duckdb.DuckDBPyConnection, sources: dict[str, list[Path]], inventory: Inventory) -> None:
    for view, name in ATTRIBUTED.items():
        run(con, f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM read_parquet({_sql_list(sources[name])})")
    for view, name, contract in (("quarantine", "quarantine", QUARANTINE), ("audit", "ingest_audit", INGEST_AUDIT)):
        files = sources[name]
        # By name, with every column of the contract: an audit written before `status` existed
        # reads it as null (the mart says `read`).
        body = (f"SELECT * EXCLUDE (date) FROM read_parquet({_sql_list(files)}, hive_partitioning = true, "
                f"hive_types = {{'date': DATE, 'site': VARCHAR}}, union_by_name = true) "
                f"UNION ALL BY NAME {_empty(contract.schema)}" if files else _empty(contract.schema))
        run(con, f"CREATE OR REPLACE TEMP VIEW {view} AS {body}")
    tiers = pl.DataFrame([t.model_dump() for t in inventory.tiers]).rename({"id": "tier"}).drop("reserved_pools")
    pools = pl.DataFrame([{"pool_id": p.id, "site_id": p.site, "gpu_model": p.gpu_model} for p in inventory.pools])
    con.register("tiers", tiers.to_arrow())
    con.register("pools", pools.to_arrow())


def build_day_marts(lake: Lake, day: date, inventory: Inventory) -> DayMarts:
    """Compute every daily table of `day` from the lake into `<lake>/marts/`; the manifest is
    written last, so a build killed half way is seen as `missing` (`marts_status`)."""
    sources = _day_sources(lake, day)
    if not sources["request_costs"]:
        raise MartError(f"{lake.partition_dir('request_costs', day)}: {day} is not attributed; "
                        f"run `inferledger attribute --date {day}` first")
    missing = [n for n in ATTRIBUTED.values() if not sources[n]]
    if missing:
        raise MartError(f"{day}: attribution outputs missing in {lake.root}: {', '.join(missing)}; "
                        f"attribute the day again (`inferledger attribute --date {day}`)")
    built_from = _fingerprint(lake, day, inventory)
    out = DayMarts(day)
    con = connect()
    try:
        _register_day(con, sources, inventory)
        params = {"day": day, "currency": inventory.currency}
        # Every table is written beside its file first; they replace the day's marts together,
        # then the manifest (written last: a build killed half way is `missing`).
        with staging() as stage:
            for table in DAILY:
                sql = DAY_SQL[table.name]
                if table.name == "cost_by_tier_day" and not quantiles_fit(con, run(con, "SELECT count(*) FROM rc")[0][0]):
                    sql = TIER_DAY_BOUNDED_SQL
                used = {k: v for k, v in params.items() if f"${k}" in sql}
                rel = con.sql(f"SELECT * FROM ({sql}) ORDER BY {', '.join(table.order_by)}", params=used)
                if rel.columns != list(table.columns):
                    raise AssertionError(f"{table.name}: SQL gives {rel.columns}, declared {list(table.columns)}")
                tmp = stage.write(lake.mart_path(table.name, day),
                                  lambda path, rel=rel: rel.write_parquet(str(path), compression="zstd"))
                out.rows[table.name] = run(con, f"SELECT count(*) FROM read_parquet('{tmp}')")[0][0]
            for target in stage.commit():
                out.paths[target.parent.parent.name] = target
        write_text(lake.marts_manifest(day), json.dumps({"built_from": built_from, "marts": {
            t.name: _stat(lake.mart_path(t.name, day)) for t in DAILY}}, indent=1))
    finally:
        con.close()
    return out


__all__ = ["BY_NAME", "DAILY", "MartError", "attributed_days", "build_day_marts", "connect", "marts_are_current",
           "marts_status"]
