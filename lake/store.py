"""The Parquet lake: where every dataset, mart, manifest and scratch file lives.

    <lake>/<dataset>/date=YYYY-MM-DD[/site=SITE]/<name>.parquet   canonical inputs, quarantine,
                                                                   ingest audit, attribution outputs
    <lake>/marts/<table>/date=YYYY-MM-DD/part-0.parquet            a day's marts (warehouse.marts)
    <lake>/marts/_manifest/date=YYYY-MM-DD.json                    what they were built from
    <lake>/_scratch/<pid>-<uuid>.parquet                           a run's spill files
    <lake>/_backfills/<first>_<last>.json                          a backfill's days done
    <lake>/plans/<table>/run=<run_id>.parquet                      the planner's kept runs (lake.plans)

Every file is written atomically (`lake.files`): a reader sees the previous file or the new
one, never half of one; a rerun of a partition replaces it. Nothing else spells these paths.
"""

import os
import uuid
from datetime import date
from pathlib import Path

import polars as pl

from lake import files
from lake.files import process_alive

FLEET = "_fleet"  # site value of fleet-wide partitions (the asset register's quarantine and audit)
MARTS = "marts"
# zstd level 1: a fifth faster to write than the default level 3, files ~5 % larger.
PARQUET_OPTIONS = {"compression": "zstd", "compression_level": 1, "statistics": True}


def _day(partition: Path) -> date:
    return date.fromisoformat(partition.name.removeprefix("date="))


class Lake:
    def __init__(self, root: Path | str):
        self.root = Path(root)

    # --- where things are -----------------------------------------------------------------------

    def partition_dir(self, dataset: str, day: date, site: str | None = None) -> Path:
        d = self.root / dataset / f"date={day.isoformat()}"
        return d / f"site={site}" if site is not None else d

    def partition_file(self, dataset: str, day: date, site: str | None = None, name: str = "part-0") -> Path:
        """`<partition>/<name>.parquet`: the file `write` writes."""
        return self.partition_dir(dataset, day, site) / f"{name}.parquet"

    def partition_files(self, dataset: str, day: date, site: str | None = None) -> list[Path]:
        """The Parquet files of one partition (directly in its directory)."""
        return sorted(self.partition_dir(dataset, day, site).glob("*.parquet"))

    def day_files(self, dataset: str, day: date) -> list[Path]:
        """Every Parquet file of `dataset` on `day`, whatever its sites."""
        return sorted(self.partition_dir(dataset, day).glob("**/*.parquet"))

    def all_files(self, dataset: str) -> list[Path]:
        """Every Parquet file of a per-site dataset, every day (`date=`/`site=` in their paths)."""
        return sorted((self.root / dataset).glob("date=*/site=*/*.parquet"))

    def sites(self, dataset: str, day: date) -> list[str]:
        """The sites with a partition of `dataset` on `day`."""
        return [p.name.removeprefix("site=") for p in sorted(self.partition_dir(dataset, day).glob("site=*"))]

    def days(self, dataset: str) -> list[date]:
        """Days with a partition of `dataset` (an empty one included), oldest first."""
        return sorted(_day(p) for p in (self.root / dataset).glob("date=*"))

    def delivered_days(self, dataset: str) -> list[date]:
        """Days on which a file of fleet-wide `dataset` (the asset register) was delivered: its
        ingest audit lists a file of the dataset that was read (an unreadable one counts: a
        delivery that failed its checks). A day whose ingest found no file still has a partition,
        written empty, and is not one of them. Oldest first."""
        found = []
        for audit in sorted((self.root / "ingest_audit").glob(f"date=*/site={FLEET}/{dataset}.parquet")):
            rows = pl.scan_parquet(audit).filter(pl.col("dataset") == dataset)
            if "status" in rows.collect_schema():  # audits written before `status` listed read files only
                rows = rows.filter(pl.col("status") != "ignored")
            if rows.select(pl.len()).collect().item():
                found.append(_day(audit.parent.parent))
        return found

    def days_with(self, dataset: str, name: str = "part-0") -> list[date]:
        """Days whose partition of `dataset` holds `<name>.parquet` (e.g. attributed days)."""
        return sorted(_day(p.parent) for p in (self.root / dataset).glob(f"date=*/{name}.parquet"))

    def audited(self, name: str, day: date) -> list[str]:
        """The sites with an ingest audit of dataset `name` on `day`."""
        return sorted(p.parent.name.removeprefix("site=")
                      for p in self.partition_dir("ingest_audit", day).glob(f"site=*/{name}.parquet"))

    def mart_path(self, table: str, day: date) -> Path:
        return self.root / MARTS / table / f"date={day.isoformat()}" / "part-0.parquet"

    def marts_dir(self) -> Path:
        return self.root / MARTS

    def marts_manifest(self, day: date) -> Path:
        return self.root / MARTS / "_manifest" / f"date={day.isoformat()}.json"

    def backfill_state(self, first: date, last: date) -> Path:
        return self.root / "_backfills" / f"{first.isoformat()}_{last.isoformat()}.json"

    # --- reading and writing --------------------------------------------------------------------

    def write(self, lf: pl.LazyFrame | pl.DataFrame, dataset: str, day: date, site: str | None = None,
              name: str = "part-0") -> Path:
        """Stream `lf` into `<partition>/<name>.parquet` atomically; returns the path."""
        return files.write_parquet(self.partition_file(dataset, day, site, name), lf, **PARQUET_OPTIONS)

    def adopt(self, path: Path, dataset: str, day: date, site: str | None = None, name: str = "part-0") -> Path:
        """Move a finished Parquet file (written under `scratch()`, same file system) into its
        partition atomically; returns the new path."""
        return files.move_into_place(path, self.partition_file(dataset, day, site, name))

    def scratch(self) -> Path:
        """A private scratch file path under the lake (same file system, removed by the caller).
        Files left by processes that no longer run (a run killed by a signal) are removed here."""
        d = self.root / "_scratch"
        d.mkdir(parents=True, exist_ok=True)
        for old in d.glob("*.parquet"):
            pid = old.name.split("-", 1)[0]
            if pid.isdigit() and not process_alive(int(pid)):
                old.unlink(missing_ok=True)
        return d / f"{os.getpid()}-{uuid.uuid4().hex}.parquet"
