"""The versions kept beside the published warehouse file: listing them, the COMPLETE record of a
whole version, verifying a version against it, rolling back to one, and pruning old ones.

    P                                   hard link to the current version's file
    versions/<version>/inferledger.duckdb
    versions/<version>/request_costs/date=D.parquet   hard links to the lake's files
    versions/<version>/COMPLETE         written last: the version is whole, with the size and
                                        SHA-256 of each of its files (checked before a rollback)

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


def write_complete(path: Path, vdir: Path, version: str) -> None:
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
        _check_recorded_files(vdir, version, recorded, fix)
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
        found = "missing " + ", ".join(missing) if missing else f"its publication table says {published}"
        raise PublishError(f"{db}: not version {version} of the warehouse ({found}); {fix}")
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
    with publish_lock(path):
        versions = complete_versions(path)
        if version not in versions:
            raise PublishError(f"{path}: no complete version {version!r} to roll back to; "
                               f"kept: {', '.join(versions) or 'none'}")
        warning = verify_version(path, version)
        link_into_place(versions_dir(path) / version / DB_NAME, path)
    return RollbackOutcome(path, version, warning)
