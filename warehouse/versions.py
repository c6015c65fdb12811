"""The versions kept beside the published warehouse file: listing them, the COMPLETE record of a
whole version, verifying a version against it, rolling back to one, and pruning old ones.

    P                                   hard link to the current version's file
    versions/<version>/inferledger.duckdb
    versions/<version>/request_costs/date=D.parquet   hard links to the lake's files
    versions/<version>/COMPLETE         written last: the version is whole, with the size and
                                        SHA-256 of each of its files and the tables (and their
                                        columns) its file was published with (checked before a
                                        rollback)

Publishers (and rollbacks) are serialized by a lock file beside `P` (`publish_lock`).
"""

import fcntl
import hashlib
import json
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from lake.files import link_into_place, write_text
from settings import default
from warehouse.tables import TABLES

DB_NAME = "inferledger.duckdb"
COMPLETE = "COMPLETE"
DEFAULT_KEEP = default("keep_versions")
WAREHOUSE_FIX = "point the warehouse (--warehouse, $INFERLEDGER_WAREHOUSE) at a disk with room"

# The tables of versions published before COMPLETE recorded them (`_required_tables`), frozen: the
# 22 of the first warehouse (2026-11-29), then four additions, each made whole by one change and
# merged in any order (parallel branches published 24, 25, 27 and 28 tables). A table added after
# these is judged by the tables its own version records.
FIRST_LAYOUT = frozenset({
    "conservation_by_component", "cost_by_model_pool_day", "cost_by_tenant_day", "cost_by_tenant_month",
    "cost_by_tier_day", "dim_calendar", "dim_models", "dim_nodes", "dim_pools", "dim_sites", "dim_tenants",
    "dim_tiers", "energy_true_up", "idle_by_pool_day", "idle_by_pool_hour", "ingest_audit", "publication",
    "quarantine_summary", "reconciliation", "request_costs", "site_energy_hour", "unattributed_costs"})
LATER_ADDITIONS = (
    frozenset({"restatements", "cost_by_tier_day_first_published"}),  # late bills, issue 16 (73b2120)
    frozenset({"capacity_by_pool_hour", "overprovisioning_by_pool_day", "efficiency_by_model_pool_day"}),  # 5871a56
    frozenset({"node_power_below_idle"}),  # node meters below idle (08b6d9c)
    frozenset({"plan_runs", "plan_routing", "plan_nodes_by_pool_hour", "plan_summary"}),  # plans, issue 18 (8a8367a)
)


class PublishError(RuntimeError):
    """Nothing to publish, or a version cannot be published or rolled back to."""


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
def publish_lock(path: Path):
    """Held while a version is published or rolled back to; PublishError when another holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / ".publish.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PublishError(f"{path}: another publish is running (lock {lock.name}); "
                               "wait for it to finish") from None
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def remove_half_built(path: Path) -> None:
    """Remove the versions a killed publish left half built (no COMPLETE)."""
    for stale in versions_dir(path).iterdir():
        if stale.is_dir() and not (stale / COMPLETE).exists():
            shutil.rmtree(stale, ignore_errors=True)


def prune(path: Path, keep: int) -> list[str]:
    """Remove the complete versions older than the last `keep` (never the published one)."""
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


def _tables_in(db: Path) -> dict[str, list[str]]:
    """The tables and views of the DuckDB file `db`, with their columns in order (opened read-only)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute("SELECT table_name, list(column_name ORDER BY column_index) FROM duckdb_columns() "
                           "WHERE NOT internal AND database_name = current_database() GROUP BY table_name").fetchall()
    finally:
        con.close()
    return {name: list(cols) for name, cols in sorted(rows)}


def _recorded_tables(vdir: Path) -> dict[str, list[str]] | None:
    """The tables (and their columns) COMPLETE records the version was published with; None for a
    version published before they were recorded."""
    try:
        tables = json.loads((vdir / COMPLETE).read_text())["tables"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return tables if isinstance(tables, dict) else None


def write_complete(path: Path, vdir: Path, version: str) -> None:
    """COMPLETE, the version's last file: its name, each file's size and SHA-256, and the tables
    (with their columns) its DuckDB file holds, what a rollback judges it by. A Parquet
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
    record = {"version": version, "files": files, "tables": _tables_in(vdir / DB_NAME)}
    write_text(vdir / COMPLETE, json.dumps(record, indent=1) + "\n", fix=WAREHOUSE_FIX)


def _check_recorded_files(vdir: Path, version: str, recorded: dict[str, dict], fix: str) -> None:
    """Every file COMPLETE records has its recorded size and SHA-256, and no Parquet file was added."""
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


def _required_tables(version: str, recorded: dict[str, list[str]] | None, found: dict[str, list[str]]) -> list[str]:
    """What the version's file lacks of what it was published with: a table of its COMPLETE's
    record missing or with other columns; without a record (published before tables were
    recorded), a table of the first layout, or of a later addition the file holds part of."""
    if recorded is not None:
        return [f"{t} (columns {found[t]}, published with {cols})" if t in found else t
                for t, cols in sorted(recorded.items()) if found.get(t) != cols]
    required = FIRST_LAYOUT.union(*(step for step in LATER_ADDITIONS if step & found.keys()))
    return sorted(required - found.keys())


def _open_check(db: Path, version: str, fix: str) -> tuple[dict[str, list[str]], list]:
    """The file's tables and columns, and its publication table's version(s); PublishError when it
    does not open as DuckDB."""
    try:
        found = _tables_in(db)
        con = duckdb.connect(str(db), read_only=True)
        try:
            published = con.execute("SELECT version FROM publication").fetchall() if "publication" in found else []
        finally:
            con.close()
    except duckdb.Error as e:
        raise PublishError(f"{db}: does not open as a DuckDB file ({str(e).splitlines()[0]}); {fix}") from None
    return found, published


def verify_version(path: Path | str, version: str) -> str | None:
    """Check a kept version before it is published again, against what it was published with:
    every file COMPLETE records has the recorded size and SHA-256 and no other Parquet file was
    added; the file opens read-only as this version of the warehouse, with every table (and its
    columns) COMPLETE records, or, for a version published before tables were recorded, every
    table that existed then (`FIRST_LAYOUT`, and each later addition whole once it has part of
    it). Raises PublishError naming the file that fails. Returns a warning for a version
    published before digests were recorded (only the open is checked), or without tables of this
    release (added after it was published)."""
    path = Path(path)
    vdir = versions_dir(path) / version
    fix = ("not rolled back; the published warehouse is unchanged. Roll back to another kept version "
           "(`inferledger publish --list`) or publish again")
    recorded = _recorded(vdir)
    if recorded is not None:
        _check_recorded_files(vdir, version, recorded, fix)
    db = vdir / DB_NAME
    found, published = _open_check(db, version, fix)
    missing = _required_tables(version, _recorded_tables(vdir), found)
    if missing or published != [(version,)]:
        what = "missing " + ", ".join(missing) if missing else f"its publication table says {published}"
        raise PublishError(f"{db}: not version {version} of the warehouse as published ({what}); {fix}")
    warnings = []
    if recorded is None:
        warnings.append(f"version {version} was published before digests were recorded: only checked that {db} "
                        "opens as that version with every table")
    later = [t.name for t in TABLES if t.name not in found]
    if later:
        warnings.append(f"version {version} was published before the tables {', '.join(later)} existed: it is "
                        "published without them (queries and report sections reading them fail on it until the "
                        "next publish)")
    return "; ".join(warnings) or None


@dataclass
class RollbackOutcome:
    path: Path
    version: str
    warning: str | None  # the version could only be partly checked


def rollback(path: Path | str, version: str) -> RollbackOutcome:
    """Publish an earlier complete version again (atomically, like a publish), after
    `verify_version`: a version whose files changed since it was published is refused."""
    path = Path(path).absolute()
    with publish_lock(path):
        versions = complete_versions(path)
        if version not in versions:
            raise PublishError(f"{path}: no complete version {version!r} to roll back to; "
                               f"kept: {', '.join(versions) or 'none'}")
        warning = verify_version(path, version)
        link_into_place(versions_dir(path) / version / DB_NAME, path)
    return RollbackOutcome(path, version, warning)
