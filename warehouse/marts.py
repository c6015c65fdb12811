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
The tables over the request facts add up exact partial sums of one scan (`_register_partials`).
"""

import hashlib
import json
import tempfile
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import polars as pl

from lake.store import Lake
from transforms.contracts import INGEST_AUDIT, QUARANTINE
from transforms.inventory import Inventory
from warehouse.capacity import register_capacity
from warehouse.checks import COMPLETED_ON_DAY
from warehouse.connection import DuckDBLimits, connect, memory_limit_bytes, run, sql_list, sql_string
from warehouse.mart_sql import ATTRIBUTED, DAY_SQL, RC_PARTIALS_SQL, TIER_P95_BOUNDED_SQL, TIER_P95_IN_MEMORY_SQL
from warehouse.tables import DAILY


class MartError(RuntimeError):
    """A day's marts cannot be built (the day is not attributed, or its files are unreadable)."""


# `quantile_cont` keeps each ok request's two latencies (8 bytes each) in vectors that may double
# as they grow; half the memory limit is left to the rest of the query. 30 M requests at the 2 GB
# default: six builds of six passed; 100 M failed.
QUANTILE_BYTES_PER_REQUEST = 64


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


def _day_sources(lake: Lake, day: date) -> dict[str, list[Path]]:
    files = {name: lake.partition_files(name, day) for name in ATTRIBUTED.values()}
    files["performance_profiles"] = lake.partition_files("performance_profiles", day)
    for name in ("quarantine", "ingest_audit"):
        files[name] = [f for site in lake.sites(name, day) for f in lake.partition_files(name, day, site)]
    return files


def _fingerprint(lake: Lake, day: date, inventory: Inventory) -> dict:
    sources = _day_sources(lake, day)
    return {
        "inventory": inventory_fingerprint(inventory),
        "sources": {lake.relative(p): lake.stamp(p) for files in sources.values() for p in files},
        "columns": {t.name: list(t.columns) for t in DAILY},
    }


def attributed_days(lake: Lake) -> list[date]:
    """Days with attributed request facts in the lake."""
    return lake.days_with("request_costs")


def marts_status(lake: Lake, day: date, inventory: Inventory) -> str:
    """`current`; `inventory_changed` (same facts, other inventory); `columns_changed` (same
    facts, but the marts' tables have other columns, or a table was added, in this release); both
    are rebuilt from the same facts by the publish; `stale` (the day's files changed since its marts
    were built); or `missing` (never built, or a build killed half way)."""
    m = lake.marts_manifest(day)
    if not lake.exists(m):
        return "missing"
    try:
        recorded = json.loads(lake.read_text(m))
        marts = {t.name: lake.mart_path(t.name, day) for t in DAILY if t.name in recorded["marts"]}
        if not marts or not all(lake.exists(p) and recorded["marts"][name] == lake.stamp(p)
                                for name, p in marts.items()):
            return "missing"
        now = _fingerprint(lake, day, inventory)
        if recorded["built_from"]["sources"] != now["sources"]:
            return "stale"
        built = recorded["built_from"]
        if built["inventory"] != now["inventory"]:
            return "inventory_changed"
        # A table this release added is not in the manifest of a day built before it: its columns differ.
        current = built.get("columns") == now["columns"] and len(marts) == len(DAILY)
        return "current" if current else "columns_changed"
    except (KeyError, ValueError, OSError):
        return "missing"


def marts_are_current(lake: Lake, day: date, inventory: Inventory) -> bool:
    return marts_status(lake, day, inventory) == "current"


def _empty(schema: pl.Schema) -> str:
    cols = ", ".join(f"CAST(NULL AS {_duck_type(t)}) AS {n}" for n, t in schema.items())
    return f"SELECT {cols}, CAST(NULL AS VARCHAR) AS site WHERE false"


def _duck_type(t: pl.DataType) -> str:
    return {pl.String: "VARCHAR", pl.Int64: "BIGINT", pl.Int32: "INTEGER", pl.Float64: "DOUBLE"}.get(t, "VARCHAR")


def _register_day(con: duckdb.DuckDBPyConnection, sources: dict[str, list[Path]], inventory: Inventory,
                  day: date) -> None:
    for view, name in ATTRIBUTED.items():
        run(con, f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM read_parquet({sql_list(sources[name])})")
    # A request in flight at midnight has a fact row in each day it touches: its money counts in
    # each, the request itself (count, tokens, status, latency, revenue) on the day it completed
    # (`done`); in its other day's row the marts see no status and no tokens.
    run(con, f"""CREATE OR REPLACE TEMP VIEW rc AS SELECT * REPLACE (
                     CASE WHEN done THEN status END AS status,
                     CASE WHEN done THEN input_tokens ELSE 0 END AS input_tokens,
                     CASE WHEN done THEN cached_input_tokens ELSE 0 END AS cached_input_tokens,
                     CASE WHEN done THEN output_tokens ELSE 0 END AS output_tokens)
                 FROM (SELECT *, {COMPLETED_ON_DAY} AS done
                       FROM read_parquet({sql_list(sources['request_costs'])}))""")
    for view, name, contract in (("quarantine", "quarantine", QUARANTINE), ("audit", "ingest_audit", INGEST_AUDIT)):
        files = sources[name]
        # By name, with every column of the contract: an audit written before `status` existed
        # reads it as null (the mart says `read`).
        body = (f"SELECT * EXCLUDE (date) FROM read_parquet({sql_list(files)}, hive_partitioning = true, "
                f"hive_types = {{'date': DATE, 'site': VARCHAR}}, union_by_name = true) "
                f"UNION ALL BY NAME {_empty(contract.schema)}" if files else _empty(contract.schema))
        run(con, f"CREATE OR REPLACE TEMP VIEW {view} AS {body}")
    tiers = pl.DataFrame([t.model_dump() for t in inventory.tiers]).rename({"id": "tier"}).drop("reserved_pools")
    pools = pl.DataFrame([{"pool_id": p.id, "site_id": p.site, "gpu_model": p.gpu_model} for p in inventory.pools])
    con.register("tiers", tiers.to_arrow())
    con.register("pools", pools.to_arrow())
    register_capacity(con, sources["request_costs"], sources["performance_profiles"], inventory, day)


def _register_power(con: duckdb.DuckDBPyConnection, files: list[Path], inventory: Inventory) -> None:
    """`pw`: the day's readings of node-scope meters (`meter_id, power_w`); `node_meters`: the
    inventory's node meters with their node's `idle_w`. The readings are not among the sources
    the marts' manifest records: a changed reading re-attributes the day, which changes them."""
    body = (f"SELECT meter_id, power_w FROM read_parquet({sql_list(files)}, union_by_name = true) "
            "WHERE scope = 'node'" if files else
            "SELECT CAST(NULL AS VARCHAR) AS meter_id, CAST(NULL AS DOUBLE) AS power_w WHERE false")
    run(con, f"CREATE OR REPLACE TEMP VIEW pw AS {body}")
    idle = {n.id: n.idle_w for n in inventory.nodes}
    meters = pl.DataFrame([(m.id, m.site, m.node, m.source, m.sensor, idle.get(m.node)) for m in inventory.meters
                           if m.scope == "node"], orient="row",
                          schema={"meter_id": pl.String, "site_id": pl.String, "node_id": pl.String,
                                  "source": pl.String, "sensor": pl.String, "idle_w": pl.Float64})
    con.register("node_meters", meters.to_arrow())


def _register_partials(con: duckdb.DuckDBPyConnection) -> None:
    """The temp tables the tables over the request facts read: `rcp`, the day's exact partial sums
    (one scan of the facts), and `tier_p95`, each tier's 95th-percentile latencies and objectives'
    attainment (a second, narrow scan), by `quantile_cont` or, on a day too large for it, from a histogram."""
    run(con, f"CREATE OR REPLACE TEMP TABLE rcp AS {RC_PARTIALS_SQL}")
    requests = run(con, "SELECT coalesce(sum(n_rows), 0) FROM rcp")[0][0]
    p95 = TIER_P95_IN_MEMORY_SQL if quantiles_fit(con, requests) else TIER_P95_BOUNDED_SQL
    run(con, f"CREATE OR REPLACE TEMP TABLE tier_p95 AS {p95}")


def _write_marts(con: duckdb.DuckDBPyConnection, lake: Lake, day: date, inventory: Inventory, out: DayMarts) -> None:
    """Every daily table of `day` from the registered views into the lake: each written first
    (beside its file, or as a new object), then they replace the day's marts together."""
    params = {"day": day, "currency": inventory.currency}
    _register_partials(con)
    with lake.staging() as stage:
        for table in DAILY:
            sql = DAY_SQL[table.name]
            used = {k: v for k, v in params.items() if f"${k}" in sql}
            rel = con.sql(f"SELECT * FROM ({sql}) ORDER BY {', '.join(table.order_by)}", params=used)
            if rel.columns != list(table.columns):
                raise AssertionError(f"{table.name}: SQL gives {rel.columns}, declared {list(table.columns)}")
            tmp = stage.write(lake.mart_target(table.name, day),
                              lambda path, rel=rel: rel.write_parquet(str(path), compression="zstd"))
            out.rows[table.name] = run(con, f"SELECT count(*) FROM read_parquet({sql_string(tmp)})")[0][0]
        stage.commit()
    out.paths = {t.name: lake.mart_path(t.name, day) for t in DAILY}


def build_day_marts(lake: Lake, day: date, inventory: Inventory, *, limits: DuckDBLimits | None = None) -> DayMarts:
    """Compute every daily table of `day` from the lake into `<lake>/marts/`, DuckDB within
    `limits`; the manifest is written last, so a build killed half way is seen as `missing`
    (`marts_status`). DuckDB reads local files: a lake on an object store has the day's
    sources downloaded to a temporary folder first (`Lake.local_copies`), the same bytes."""
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
    with tempfile.TemporaryDirectory(prefix="inferledger-marts-") as copies:
        local = {name: lake.local_copies(files, Path(copies)) for name, files in sources.items()}
        power = lake.local_copies(lake.day_files("power_readings", day), Path(copies))
        con = connect(limits=limits)
        try:
            _register_day(con, local, inventory, day)
            _register_power(con, power, inventory)
            _write_marts(con, lake, day, inventory, out)
        finally:
            con.close()
    # Written last: a build killed half way is `missing`.
    lake.write_text(lake.marts_manifest(day), json.dumps({"built_from": built_from, "marts": {
        t.name: lake.stamp(lake.mart_path(t.name, day)) for t in DAILY}}, indent=1))
    return out


__all__ = ["MartError", "attributed_days", "build_day_marts", "marts_are_current", "marts_status"]
