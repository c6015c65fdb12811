"""Publishing the warehouse: a new DuckDB file per night, swapped in atomically.

Layout beside the published file `P` (default `data/warehouse/inferledger.duckdb`): `P` is a hard
link to the current version's file under `versions/<version>/` (`warehouse.versions`).

A publish builds `versions/<version>/` completely (every daily mart of every attributed day,
history-wide tables, dimensions, the plans kept in the lake (`warehouse.plans`), comments:
`warehouse.version_file`), then links `P` to it with
`os.replace`. A reader holding `P` open keeps the inode it opened, so it sees the previous night
until it reconnects; a publish killed at any point leaves `P` as it was (the half-built version,
without COMPLETE, is removed by the next publish). The last `keep` versions stay for rollback
(`inferledger publish --rollback VERSION`). Publishers are serialized by a lock file. With
`publish_to` (an `s3://` URI) the new version is then uploaded there too, self-contained
(`warehouse.remote`).
"""

import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from lake.files import fsync_dir, fsync_file, link_into_place
from lake.store import Lake, object_store_scheme
from settings import default
from transforms.inventory import Inventory
from warehouse import restatements
from warehouse.checks import CheckOutcome, WarehouseCheck, checks, describe, failures, remember_published
from warehouse.connection import DuckDBLimits
from warehouse.marts import MartError, attributed_days, build_day_marts, marts_status
from warehouse.plans import published_frames
from warehouse.remote import upload_version
from warehouse.tables import DAILY
from warehouse.version_file import STORAGE_VERSION, build_version_file
from warehouse.versions import (DB_NAME, DEFAULT_KEEP, PublishError, RollbackOutcome, complete_versions,
                                current_version, prune, publish_lock, remove_half_built, rollback, verify_version,
                                versions_dir, write_complete)


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
    restated_days: list[date] = field(default_factory=list)  # published before, changed now (`restatements`)
    requests: int = 0
    tables: dict[str, int] = field(default_factory=dict)
    pruned: list[str] = field(default_factory=list)
    published_to: str | None = None  # the uploaded version's URI (`publish_to`)
    checks: list[CheckOutcome] = field(default_factory=list)
    seconds: float = 0.0


# Marts the publish rebuilds from the same facts, by `marts_status`, and why.
REBUILT = {"inventory_changed": "inventory changed", "columns_changed": "the marts' columns changed in this release"}


def _current_marts(lake: Lake, days: list[date], inventory: Inventory, path: Path,
                   report: Callable[[str], None], limits: DuckDBLimits | None) -> list[date]:
    """Make every day's marts those of its current facts: rebuilt (from the same facts) where
    only the inventory or the marts' columns changed; PublishError where they are stale or
    missing. Returns the days rebuilt."""
    status = {day: marts_status(lake, day, inventory) for day in days}
    unusable = [d for d, st in status.items() if st in ("stale", "missing")]
    if unusable:
        raise PublishError(
            f"{path}: not published; the marts of {', '.join(f'{d} ({status[d]})' for d in unusable)} are not those of "
            "the day's attributed facts: the attribution's checks failed, or it was interrupted. Fix the inputs and "
            f"attribute the day again (`inferledger run --date {unusable[0]}`). The published warehouse is unchanged.")
    rebuilt = [d for d, st in status.items() if st in REBUILT]
    for day in rebuilt:
        report(f"marts {day}: {REBUILT[status[day]]}, rebuilt from the same facts")
        build_day_marts(lake, day, inventory, limits=limits)
    return rebuilt


def _new_version(vroot: Path) -> tuple[str, datetime]:
    """A version name not yet under `vroot` (the publish time, UTC, to the second), and that time."""
    published_at = datetime.now(UTC).replace(microsecond=0)
    version = published_at.strftime("%Y%m%dT%H%M%SZ")
    while (vroot / version).exists():
        version = f"{version.split('.')[0]}.{uuid.uuid4().hex[:6]}"
    return version, published_at


def publish(lake_root: Path | str, inventory: Inventory, path: Path | str, *, keep: int = DEFAULT_KEEP,
            max_age_days: int = default("max_age_days"), checks_to_run: list[WarehouseCheck] | None = None,
            progress: Callable[[str], None] | None = None, limits: DuckDBLimits | None = None,
            publish_to: str | None = None) -> PublishOutcome:
    """Publish every attributed day of the lake as a new version of the warehouse at `path`.

    Publishes only days whose marts were built from their current facts (`marts_status`;
    rebuilt here when only the inventory changed), writes the new version completely, runs
    the warehouse checks on it (`warehouse.checks`), swaps it in, and keeps the last `keep`
    versions. Raises WarehouseCheckError (nothing published) when an error-severity check
    fails (`checks_to_run`: all of `warehouse.checks.checks()` by default), PublishError when
    the lake has no attributed day or a day's marts are stale or missing. DuckDB works within
    `limits` (default DuckDBLimits()). With `publish_to` (`s3://bucket/prefix`) the version, self-
    contained, is then uploaded there too (`warehouse.remote`)."""
    started = time.perf_counter()
    report = progress or (lambda _msg: None)
    lake = Lake(lake_root if object_store_scheme(lake_root) else Path(lake_root).absolute())
    path = Path(path).absolute()
    if keep < 1:
        raise PublishError(f"keep={keep}: at least the published version is kept; use 1 or more")
    days = attributed_days(lake)
    if not days:
        raise PublishError(f"{lake.root}: no attributed day to publish (lake/request_costs/date=*/part-0.parquet); "
                           "run `inferledger attribute --date D` first")
    with publish_lock(path):
        vroot = versions_dir(path)
        vroot.mkdir(parents=True, exist_ok=True)
        remove_half_built(path)
        version, published_at = _new_version(vroot)
        out = PublishOutcome(version, path, vroot / version, days=days)
        out.rebuilt_days = _current_marts(lake, days, inventory, path, report, limits)
        vdir = out.version_dir
        (vdir / "request_costs").mkdir(parents=True)
        for day in days:  # the request detail beside the file, so the version needs nothing of the lake
            lake.copy_out(lake.partition_file("request_costs", day),
                          vdir / "request_costs" / f"date={day.isoformat()}.parquet")
        db = vdir / DB_NAME
        which = checks(max_age_days) if checks_to_run is None else checks_to_run
        report("restatements")
        history = restatements.history_dir(path)
        restated = restatements.pending(lake, history, days, inventory.currency, version, published_at)
        with tempfile.TemporaryDirectory(prefix="inferledger-publish-") as copies:  # DuckDB reads local files
            day_files = {t.name: lake.local_copies([lake.mart_path(t.name, d) for d in days], Path(copies))
                         for t in DAILY}
            out.tables, out.checks = build_version_file(db, vdir, day_files, days, inventory, version, published_at,
                                                        report, which, limits=limits,
                                                        frames={**restatements.history_tables(history, restated),
                                                                **published_frames(lake.root)})
        out.requests = out.tables["request_costs"]
        failed = failures(out.checks)
        if failed:
            shutil.rmtree(vdir, ignore_errors=True)
            raise WarehouseCheckError(
                f"{path}: the new version fails {len(failed)} warehouse check(s); the published warehouse is unchanged "
                f"({current_version(path) or 'nothing published yet'}):\n{describe(failed)}", out.checks)
        fsync_file(db)
        write_complete(path, vdir, version)
        fsync_dir(vdir)
        report(f"swap {path}")
        link_into_place(db, path)
        restated.commit(history)  # once published: a version that failed its checks records nothing
        out.restated_days = sorted(set(restated.restatements["date"].to_list()))
        remember_published(path, version, which, out.checks)
        out.pruned = prune(path, keep)
        lake.collect_garbage()  # an object store's superseded objects, past their retention
        if publish_to:
            report(f"upload to {publish_to}")
            out.published_to = upload_version(out.version_dir / DB_NAME, version, publish_to)
    out.seconds = time.perf_counter() - started
    return out


__all__ = ["DEFAULT_KEEP", "MartError", "PublishError", "WarehouseCheckError", "PublishOutcome", "RollbackOutcome",
           "STORAGE_VERSION", "complete_versions", "current_version", "publish", "rollback", "verify_version"]
