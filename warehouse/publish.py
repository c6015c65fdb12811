"""Publishing the warehouse: a new DuckDB file per night, swapped in atomically.

Layout beside the published file `P` (default `data/warehouse/inferledger.duckdb`):

    P                                   hard link to the current version's file
    versions/<version>/inferledger.duckdb
    versions/<version>/request_costs/date=D.parquet   hard links to the lake's files
    versions/<version>/COMPLETE         written last: the version is whole, with the size and
                                        SHA-256 of each of its files (checked before a rollback)

A publish builds `versions/<version>/` completely (every daily mart of every attributed day,
history-wide tables, dimensions, comments), then links `P` to it with `os.replace`. A reader
holding `P` open keeps the inode it opened, so it sees the previous night until it reconnects;
a publish killed at any point leaves `P` as it was (the half-built version, without COMPLETE,
is removed by the next publish). The last `keep` versions stay for rollback
(`inferledger publish --rollback VERSION`). Publishers are serialized by a lock file.

Files are written in DuckDB storage version v1.5.0 so DuckDB 1.x tools (DBeaver, BI drivers)
open them; `request_costs` is a view over the version's Parquet files (absolute paths: keep the
warehouse folder where it was published).
"""

import fcntl
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from importlib.metadata import PackageNotFoundError, version as package_version
from pathlib import Path

import duckdb
import polars as pl

from lake.files import fsync_dir, fsync_file, link_into_place, write_text
from lake.store import Lake
from transforms.inventory import Inventory
from warehouse.checks import (CheckOutcome, WarehouseCheck, checks, describe, failures, remember_published,
                              run_checks)
from warehouse.marts import DAILY, MartError, attributed_days, build_day_marts, connect, marts_status, run
from warehouse.tables import BY_NAME, TABLES, Table

STORAGE_VERSION = "v1.5.0"
DB_NAME = "inferledger.duckdb"
COMPLETE = "COMPLETE"
DEFAULT_KEEP = 7
WAREHOUSE_FIX = "point the warehouse (--warehouse, $INFERLEDGER_WAREHOUSE) at a disk with room"


class PublishError(RuntimeError):
    """Nothing to publish, or a version cannot be published or rolled back to."""


class WarehouseCheckError(PublishError):
    """The new version fails an error-severity warehouse check: it is not published."""

    def __init__(self, message: str, outcomes: list[CheckOutcome]):
        super().__init__(message)
        self.outcomes = outcomes


@dataclass
class PublishOutcome:
    version: str
    path: Path
    version_dir: Path
    days: list[date] = field(default_factory=list)
    rebuilt_days: list[date] = field(default_factory=list)
    requests: int = 0
    tables: dict[str, int] = field(default_factory=dict)
    pruned: list[str] = field(default_factory=list)
    checks: list[CheckOutcome] = field(default_factory=list)
    seconds: float = 0.0


def versions_dir(path: Path) -> Path:
    return Path(path).parent / "versions"


def complete_versions(path: Path) -> list[str]:
    """Whole published versions, oldest first."""
    d = versions_dir(path)
    return sorted(p.name for p in d.iterdir() if (p / COMPLETE).exists()) if d.exists() else []


def current_version(path: Path) -> str | None:
    """The version the published file is, or None when nothing is published."""
    path = Path(path)
    if not path.exists():
        return None
    ino = path.stat().st_ino
    for v in complete_versions(path):
        f = versions_dir(path) / v / DB_NAME
        if f.exists() and f.stat().st_ino == ino:
            return v
    return None


@contextmanager
def _publish_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / ".publish.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PublishError(f"{path}: another publish is running (lock {lock.name}); wait for it to finish") from None
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not allowed: copy
        shutil.copy2(src, dst)


def _sql_str(s: str | Path) -> str:
    return "'" + str(s).replace("'", "''") + "'"


def _files_sql(files: list[Path]) -> str:
    return "[" + ", ".join(_sql_str(f) for f in files) + "]"


def _dimension_frames(inventory: Inventory) -> dict[str, pl.DataFrame]:
    nodes = inventory.nodes_frame().collect()
    pool_nodes = nodes.group_by("pool_id").agg(pl.len().cast(pl.Int64).alias("nodes"), pl.col("gpus").cast(pl.Int64).sum())
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


def _history_sql(day_files: dict[str, list[Path]], version: str, published_at: datetime, days: list[date],
                 inventory_version: str) -> dict[str, str]:
    """SQL of the tables built from the published days (not per day)."""
    tenant_days = _files_sql(day_files["cost_by_tenant_day"])
    return {
        "cost_by_tenant_month": f"""
            SELECT CAST(date_trunc('month', date) AS DATE) AS month, tenant_id, tier,
                count(DISTINCT date) AS days, CAST(sum(requests) AS BIGINT) AS requests,
                CAST(sum(input_tokens) AS BIGINT) AS input_tokens, CAST(sum(output_tokens) AS BIGINT) AS output_tokens,
                xsum(energy_kwh) AS energy_kwh, xsum(direct_cost) AS direct_cost, xsum(idle_cost) AS idle_cost,
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
            SELECT {_sql_str(version)} AS version, CAST($published_at AS TIMESTAMPTZ) AS published_at,
                CAST($first AS DATE) AS first_day, CAST($last AS DATE) AS last_day, {len(days)} AS days,
                (SELECT CAST(sum(requests) AS BIGINT) FROM read_parquet({_files_sql(day_files['cost_by_tier_day'])})) AS requests,
                {_sql_str(STORAGE_VERSION)} AS storage_version, {_sql_str(inventory_version)} AS inferledger_version""",
    }


def _code_version() -> str:
    try:
        return package_version("inferledger")
    except PackageNotFoundError:
        return "unknown"


def _comment(con, table: Table) -> None:
    kind = "VIEW" if table.kind == "view" else "TABLE"
    run(con, f"COMMENT ON {kind} {table.name} IS {_sql_str(table.description)}")
    for col, text in table.columns.items():
        run(con, f"COMMENT ON COLUMN {table.name}.{col} IS {_sql_str(text)}")


def _check_columns(con, table: Table) -> None:
    cols = [r[0] for r in run(con, f"SELECT column_name FROM duckdb_columns() WHERE database_name = 'w' "
                                   f"AND table_name = {_sql_str(table.name)} ORDER BY column_index")]
    if cols != list(table.columns):
        raise AssertionError(f"{table.name}: built with columns {cols}, declared {list(table.columns)} (warehouse/tables.py)")


def _build_file(db: Path, vdir: Path, day_files: dict[str, list[Path]], days: list[date],
                inventory: Inventory, version: str, published_at: datetime, report: Callable[[str], None],
                which: list[WarehouseCheck]) -> tuple[dict[str, int], list[CheckOutcome]]:
    con = connect()
    rows: dict[str, int] = {}
    try:
        run(con, f"ATTACH {_sql_str(db)} AS w (STORAGE_VERSION {_sql_str(STORAGE_VERSION)})")
        run(con, "USE w")
        params = {"first": days[0], "last": days[-1], "days": days, "published_at": published_at}
        for table in DAILY:
            report(f"table {table.name}")
            run(con, f"CREATE TABLE {table.name} AS SELECT * FROM read_parquet({_files_sql(day_files[table.name])}) "
                     f"ORDER BY {', '.join(table.order_by)}")
        history = _history_sql(day_files, version, published_at, days, _code_version())
        for name, sql in history.items():
            report(f"table {name}")
            t = BY_NAME[name]
            used = {k: v for k, v in params.items() if f"${k}" in sql}
            order = f" ORDER BY {', '.join(t.order_by)}" if t.order_by else ""
            run(con, f"CREATE TABLE {name} AS SELECT * FROM ({sql}){order}", used)
        for name, frame in _dimension_frames(inventory).items():
            con.register(f"_{name}", frame.to_arrow())
            run(con, f"CREATE TABLE {name} AS SELECT * FROM _{name} ORDER BY {', '.join(BY_NAME[name].order_by)}")
            con.unregister(f"_{name}")
        report("view request_costs")
        facts = vdir / "request_costs" / "*.parquet"
        cols = ", ".join(BY_NAME["request_costs"].columns)
        run(con, f"CREATE VIEW request_costs AS SELECT {cols} FROM read_parquet({_sql_str(facts)})")
        report("comments")
        for table in TABLES:
            _check_columns(con, table)
            _comment(con, table)
            if table.kind == "table":
                rows[table.name] = run(con, f"SELECT count(*) FROM {table.name}")[0][0]
        rows["request_costs"] = run(con, "SELECT count(*) FROM request_costs")[0][0]
        report("checks")
        outcomes = run_checks(con, which) if which else []
        run(con, "USE memory")
        run(con, "DETACH w")
    finally:
        con.close()
    return rows, outcomes


def publish(lake_root: Path | str, inventory: Inventory, path: Path | str, *, keep: int = DEFAULT_KEEP,
            max_age_days: int = 2, checks_to_run: list[WarehouseCheck] | None = None,
            progress: Callable[[str], None] | None = None) -> PublishOutcome:
    """Publish every attributed day of the lake as a new version of the warehouse at `path`.

    Publishes only days whose marts were built from their current facts (`marts_status`;
    rebuilt here when only the inventory changed), writes the new version completely, runs
    the warehouse checks on it (`warehouse.checks`), swaps it in, and keeps the last `keep`
    versions. Raises WarehouseCheckError (nothing published) when an error-severity check
    fails (`checks_to_run`: all of `warehouse.checks.checks()` by default), PublishError when
    the lake has no attributed day or a day's marts are stale or missing."""
    started = time.perf_counter()
    report = progress or (lambda _msg: None)
    lake, path = Lake(Path(lake_root).absolute()), Path(path).absolute()
    if keep < 1:
        raise PublishError(f"keep={keep}: at least the published version is kept; use 1 or more")
    days = attributed_days(lake)
    if not days:
        raise PublishError(f"{lake.root}: no attributed day to publish (lake/request_costs/date=*/part-0.parquet); "
                           "run `inferledger attribute --date D` first")
    with _publish_lock(path):
        vroot = versions_dir(path)
        vroot.mkdir(parents=True, exist_ok=True)
        for stale in vroot.iterdir():  # versions a killed publish left half built
            if stale.is_dir() and not (stale / COMPLETE).exists():
                shutil.rmtree(stale, ignore_errors=True)
        published_at = datetime.now(UTC).replace(microsecond=0)
        version = published_at.strftime("%Y%m%dT%H%M%SZ")
        while (vroot / version).exists():
            version = f"{version.split('.')[0]}.{uuid.uuid4().hex[:6]}"
        out = PublishOutcome(version, path, vroot / version, days=days)
        status = {day: marts_status(lake, day, inventory) for day in days}
        unusable = [d for d, st in status.items() if st in ("stale", "missing")]
        if unusable:
            raise PublishError(
                f"{path}: not published; the marts of {', '.join(f'{d} ({status[d]})' for d in unusable)} are not those of "
                "the day's attributed facts: the attribution's checks failed, or it was interrupted. Fix the inputs and "
                f"attribute the day again (`inferledger run --date {unusable[0]}`). The published warehouse is unchanged.")
        rebuilt = {"inventory_changed": "inventory changed", "columns_changed": "the marts' columns changed in this release"}
        for day in [d for d, st in status.items() if st in rebuilt]:
            report(f"marts {day}: {rebuilt[status[day]]}, rebuilt from the same facts")
            build_day_marts(lake, day, inventory)
            out.rebuilt_days.append(day)
        vdir = out.version_dir
        (vdir / "request_costs").mkdir(parents=True)
        for day in days:
            _link_or_copy(lake.partition_file("request_costs", day),
                          vdir / "request_costs" / f"date={day.isoformat()}.parquet")
        day_files = {t.name: [lake.mart_path(t.name, d) for d in days] for t in DAILY}
        db = vdir / DB_NAME
        which = checks(max_age_days) if checks_to_run is None else checks_to_run
        out.tables, out.checks = _build_file(db, vdir, day_files, days, inventory, version, published_at, report, which)
        out.requests = out.tables["request_costs"]
        failed = failures(out.checks)
        if failed:
            shutil.rmtree(vdir, ignore_errors=True)
            raise WarehouseCheckError(
                f"{path}: the new version fails {len(failed)} warehouse check(s); the published warehouse is unchanged "
                f"({current_version(path) or 'nothing published yet'}):\n{describe(failed)}", out.checks)
        fsync_file(db)
        _write_complete(path, vdir, version)
        fsync_dir(vdir)
        report(f"swap {path}")
        link_into_place(db, path)
        remember_published(path, version, which, out.checks)
        out.pruned = _prune(path, keep)
    out.seconds = time.perf_counter() - started
    return out


def _prune(path: Path, keep: int) -> list[str]:
    current = current_version(path)
    versions = complete_versions(path)
    old = [v for v in versions[:-keep] if v != current] if len(versions) > keep else []
    for v in old:
        shutil.rmtree(versions_dir(path) / v, ignore_errors=True)
    return old


def _version_files(vdir: Path) -> list[Path]:
    """What the view and the published file read: the DuckDB file and the request_costs Parquet."""
    return [vdir / DB_NAME, *sorted((vdir / "request_costs").glob("*.parquet"))]


def _sha256(f: Path) -> str:
    with open(f, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _recorded(vdir: Path) -> dict[str, dict] | None:
    """The files COMPLETE records ({relative path: {bytes, sha256, mtime_ns}}), None when it
    records none (a version published before digests were)."""
    try:
        return json.loads((vdir / COMPLETE).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_complete(path: Path, vdir: Path, version: str) -> None:
    """COMPLETE, the version's last file: its name and each file's size and SHA-256. A Parquet
    file is the lake's (hard link): its digest is taken from an earlier version that recorded
    the same inode with the same size and modification time, not read again every night."""
    known: dict[tuple, str] = {}
    for v in complete_versions(path):
        for rel, d in (_recorded(versions_dir(path) / v) or {}).items():
            f = versions_dir(path) / v / rel
            if rel != DB_NAME and f.exists():
                known[(f.stat().st_ino, d["bytes"], d["mtime_ns"])] = d["sha256"]
    files = {}
    for f in _version_files(vdir):
        st = f.stat()
        digest = known.get((st.st_ino, st.st_size, st.st_mtime_ns)) if f.name != DB_NAME else None
        files[f.relative_to(vdir).as_posix()] = {"bytes": st.st_size, "sha256": digest or _sha256(f),
                                                 "mtime_ns": st.st_mtime_ns}
    write_text(vdir / COMPLETE, json.dumps({"version": version, "files": files}, indent=1) + "\n", fix=WAREHOUSE_FIX)


def verify_version(path: Path | str, version: str) -> str | None:
    """Check a kept version before it is published again: every file COMPLETE records has the
    recorded size and SHA-256 and no other Parquet file was added; the file opens read-only as
    this version of the warehouse, with every table. Returns a warning for a version published
    before digests were recorded (only the open is checked); raises PublishError naming the
    file that fails."""
    path = Path(path)
    vdir = versions_dir(path) / version
    fix = ("not rolled back; the published warehouse is unchanged. Roll back to another kept version "
           "(`inferledger publish --list`) or publish again")
    recorded = _recorded(vdir)
    if recorded is not None:
        present = {f.relative_to(vdir).as_posix() for f in _version_files(vdir) if f.exists() or f.is_symlink()}
        for rel in sorted(present - set(recorded)):
            raise PublishError(f"{vdir / rel}: not a file of version {version} as published (it was added later); {fix}")
        for rel, want in sorted(recorded.items()):
            f = vdir / rel
            if f.is_symlink() or not f.is_file():
                raise PublishError(f"{f}: {'missing' if not f.exists() else 'not a plain file'}, unlike when version "
                                   f"{version} was published; {fix}")
            size = f.stat().st_size
            got = _sha256(f) if size == want["bytes"] else None
            if got != want["sha256"]:
                raise PublishError(f"{f}: changed since version {version} was published ({size:,} bytes"
                                   f"{f', sha256 {got[:12]}' if got else ''}; published {want['bytes']:,} bytes, "
                                   f"sha256 {want['sha256'][:12]}); {fix}")
    db = vdir / DB_NAME
    try:
        con = duckdb.connect(str(db), read_only=True)
        try:
            names = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() UNION ALL "
                                               "SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
            missing = [t.name for t in TABLES if t.name not in names]
            published = con.execute("SELECT version FROM publication").fetchall() if "publication" in names else []
        finally:
            con.close()
    except duckdb.Error as e:
        raise PublishError(f"{db}: does not open as a DuckDB file ({str(e).splitlines()[0]}); {fix}") from None
    if missing or published != [(version,)]:
        raise PublishError(f"{db}: not version {version} of the warehouse ("
                           f"{'missing ' + ', '.join(missing) if missing else f'its publication table says {published}'}); {fix}")
    if recorded is None:
        return (f"version {version} was published before digests were recorded: only checked that {db} opens "
                "as that version with every table")
    return None


@dataclass
class RollbackOutcome:
    path: Path
    version: str
    warning: str | None  # the version could only be partly checked


def rollback(path: Path | str, version: str) -> RollbackOutcome:
    """Publish an earlier complete version again (atomically, like a publish), after
    `verify_version`: a version whose files changed since it was published is refused."""
    path = Path(path).absolute()
    with _publish_lock(path):
        versions = complete_versions(path)
        if version not in versions:
            raise PublishError(f"{path}: no complete version {version!r} to roll back to; "
                               f"kept: {', '.join(versions) or 'none'}")
        warning = verify_version(path, version)
        link_into_place(versions_dir(path) / version / DB_NAME, path)
    return RollbackOutcome(path, version, warning)


__all__ = ["DEFAULT_KEEP", "MartError", "PublishError", "WarehouseCheckError", "PublishOutcome", "RollbackOutcome",
           "STORAGE_VERSION", "complete_versions", "current_version", "publish", "rollback", "verify_version"]
