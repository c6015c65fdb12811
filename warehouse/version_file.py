"""Building one version's DuckDB file: every daily mart of the published days, the history-wide
tables and the dimensions, the `request_costs` view over the version's Parquet files, every
table's comments (`warehouse.tables`), then the warehouse checks on it.

Files are written in DuckDB storage version v1.5.0 so DuckDB 1.x tools (DBeaver, BI drivers)
open them; `request_costs` is a view over the version's Parquet files (absolute paths: keep the
warehouse folder where it was published).
"""

from collections.abc import Callable
from datetime import date, datetime
from importlib.metadata import PackageNotFoundError, version as package_version
from pathlib import Path

import polars as pl

from transforms.inventory import Inventory
from warehouse.checks import CheckOutcome, WarehouseCheck, run_checks
from warehouse.connection import DuckDBLimits, connect, run, sql_list, sql_string
from warehouse.tables import BY_NAME, DAILY, TABLES, Table

STORAGE_VERSION = "v1.5.0"
# A month's energy method shares: the days' shares weighted by their energy (mart_sql._energy_shares).
_MONTH_SHARES = ", ".join(
    f"xsum(energy_{m}_share * energy_kwh) / nullif(xsum(CASE WHEN energy_{m}_share IS NOT NULL THEN energy_kwh END), 0)"
    f" AS energy_{m}_share" for m in ("measured", "interpolated", "estimated"))


def _dimension_frames(inventory: Inventory) -> dict[str, pl.DataFrame]:
    nodes = inventory.nodes_frame().collect()
    pool_nodes = nodes.group_by("pool_id").agg(pl.len().cast(pl.Int64).alias("nodes"),
                                                pl.col("gpus").cast(pl.Int64).sum())
    pools = (pl.DataFrame([{"pool_id": p.id, "site_id": p.site, "gpu_model": p.gpu_model, "tiers": ",".join(p.tiers)}
                           for p in inventory.pools])
             .join(pool_nodes, on="pool_id", how="left").with_columns(pl.col("nodes", "gpus").fill_null(0)))
    tiers = pl.DataFrame([{"tier": t.id, "ttft_objective_s": t.ttft_p95_s, "e2e_objective_s": t.e2e_p95_s,
                           "price_per_m_input_tokens": t.price_per_m_input_tokens,
                           "price_per_m_output_tokens": t.price_per_m_output_tokens, "idle_policy": t.idle_policy,
                           "reserved_pools": ",".join(t.reserved_pools) or None, "currency": inventory.currency}
                          for t in inventory.tiers], schema_overrides={"reserved_pools": pl.String})
    models = pl.DataFrame([{"model": m.id, "params_b": m.params_b} for m in inventory.models])
    return {
        "dim_sites": inventory.sites_frame().collect(),
        "dim_pools": pools,
        "dim_nodes": nodes.with_columns(pl.col("gpus").cast(pl.Int64)),
        "dim_tiers": tiers,
        "dim_models": models,
    }


def _history_sql(day_files: dict[str, list[Path]], version: str, days: list[date],
                 inventory_version: str) -> dict[str, str]:
    """SQL of the tables built from the published days (not per day)."""
    tenant_days = sql_list(day_files["cost_by_tenant_day"])
    return {
        "cost_by_tenant_month": f"""
            SELECT CAST(date_trunc('month', date) AS DATE) AS month, tenant_id, tier,
                count(DISTINCT date) AS days, CAST(sum(requests) AS BIGINT) AS requests,
                CAST(sum(input_tokens) AS BIGINT) AS input_tokens, CAST(sum(output_tokens) AS BIGINT) AS output_tokens,
                xsum(energy_kwh) AS energy_kwh,
                {_MONTH_SHARES},
                xsum(direct_cost) AS direct_cost, xsum(idle_cost) AS idle_cost,
                xsum(fully_loaded_cost) AS fully_loaded_cost, xsum(revenue) AS revenue,
                xsum(revenue) - xsum(fully_loaded_cost) AS gross_margin, any_value(currency) AS currency
            FROM read_parquet({tenant_days}) GROUP BY ALL""",
        "dim_tenants": f"""
            SELECT tenant_id, min(date) AS first_day, max(date) AS last_day, CAST(sum(requests) AS BIGINT) AS requests
            FROM read_parquet({tenant_days}) GROUP BY tenant_id""",
        "dim_calendar": """
            SELECT CAST(d AS DATE) AS date, CAST(date_trunc('month', d) AS DATE) AS month, year(d) AS year,
                weekofyear(d) AS iso_week, dayname(d) AS day_of_week, isodow(d) >= 6 AS is_weekend,
                day(last_day(d)) AS days_in_month, CAST(d AS DATE) IN (SELECT unnest($days)) AS published
            FROM generate_series(CAST($first AS TIMESTAMP), CAST($last AS TIMESTAMP), INTERVAL 1 DAY) AS s(d)""",
        "publication": f"""
            SELECT {sql_string(version)} AS version, CAST($published_at AS TIMESTAMPTZ) AS published_at,
                CAST($first AS DATE) AS first_day, CAST($last AS DATE) AS last_day, {len(days)} AS days,
                (SELECT CAST(sum(requests) AS BIGINT)
                 FROM read_parquet({sql_list(day_files['cost_by_tier_day'])})) AS requests,
                {sql_string(STORAGE_VERSION)} AS storage_version,
                {sql_string(inventory_version)} AS inferledger_version""",
    }


def _code_version() -> str:
    try:
        return package_version("inferledger")
    except PackageNotFoundError:
        return "unknown"


def _comment(con, table: Table) -> None:
    comment_table(con, table, kind="VIEW" if table.kind == "view" else "TABLE")


def comment_table(con, table: Table, *, kind: str) -> None:
    """`table`'s description and its columns' as DuckDB comments (`kind`: TABLE or VIEW)."""
    run(con, f"COMMENT ON {kind} {table.name} IS {sql_string(table.description)}")
    for col, text in table.columns.items():
        run(con, f"COMMENT ON COLUMN {table.name}.{col} IS {sql_string(text)}")


def _check_columns(con, table: Table) -> None:
    cols = [r[0] for r in run(con, f"SELECT column_name FROM duckdb_columns() WHERE database_name = 'w' "
                                   f"AND table_name = {sql_string(table.name)} ORDER BY column_index")]
    if cols != list(table.columns):
        raise AssertionError(f"{table.name}: built with columns {cols}, declared {list(table.columns)} "
                             "(warehouse/tables.py)")


def build_version_file(db: Path, vdir: Path, day_files: dict[str, list[Path]], days: list[date],
                       inventory: Inventory, version: str, published_at: datetime, report: Callable[[str], None],
                       which: list[WarehouseCheck], *, limits: DuckDBLimits | None = None,
                       frames: dict[str, pl.DataFrame] | None = None) -> tuple[dict[str, int], list[CheckOutcome]]:
    """Write the version's DuckDB file `db` (its `request_costs` Parquet files already linked under
    `vdir`) from the daily marts' files `day_files` (table -> one file per day of `days`) and the
    history-wide tables given as `frames` (`warehouse.restatements.history`), DuckDB within
    `limits`; run the checks `which` on it. Returns the rows of each table and view, and the
    checks' outcomes."""
    con = connect(limits=limits)
    rows: dict[str, int] = {}
    try:
        run(con, f"ATTACH {sql_string(db)} AS w (STORAGE_VERSION {sql_string(STORAGE_VERSION)})")
        run(con, "USE w")
        params = {"first": days[0], "last": days[-1], "days": days, "published_at": published_at}
        for table in DAILY:
            report(f"table {table.name}")
            run(con, f"CREATE TABLE {table.name} AS SELECT * FROM read_parquet({sql_list(day_files[table.name])}) "
                     f"ORDER BY {', '.join(table.order_by)}")
        for name, sql in _history_sql(day_files, version, days, _code_version()).items():
            report(f"table {name}")
            t = BY_NAME[name]
            used = {k: v for k, v in params.items() if f"${k}" in sql}
            order = f" ORDER BY {', '.join(t.order_by)}" if t.order_by else ""
            run(con, f"CREATE TABLE {name} AS SELECT * FROM ({sql}){order}", used)
        for name, frame in {**_dimension_frames(inventory), **(frames or {})}.items():
            con.register(f"_{name}", frame.to_arrow())
            run(con, f"CREATE TABLE {name} AS SELECT * FROM _{name} ORDER BY {', '.join(BY_NAME[name].order_by)}")
            con.unregister(f"_{name}")
        report("view request_costs")
        facts = vdir / "request_costs" / "*.parquet"
        cols = ", ".join(BY_NAME["request_costs"].columns)
        run(con, f"CREATE VIEW request_costs AS SELECT {cols} FROM read_parquet({sql_string(facts)})")
        report("comments")
        # One transaction for the ~560 comments: each statement alone is a commit of the file (its
        # write-ahead log), ~0.5 ms apiece; together, one.
        run(con, "BEGIN TRANSACTION")
        for table in TABLES:
            _check_columns(con, table)
            _comment(con, table)
            if table.kind == "table":
                rows[table.name] = run(con, f"SELECT count(*) FROM {table.name}")[0][0]
        run(con, "COMMIT")
        rows["request_costs"] = run(con, "SELECT count(*) FROM request_costs")[0][0]
        report("checks")
        outcomes = run_checks(con, which) if which else []
        run(con, "USE memory")
        run(con, "DETACH w")
    finally:
        con.close()
    return rows, outcomes
