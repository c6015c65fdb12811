"""The Parquet lake: where every dataset, mart, manifest and scratch file lives.

    <lake>/<dataset>/date=YYYY-MM-DD[/site=SITE]/<name>.parquet   canonical inputs, quarantine,
                                                                   ingest audit, attribution outputs
    <lake>/marts/<table>/date=YYYY-MM-DD/part-0.parquet            a day's marts (warehouse.marts)
    <lake>/marts/_manifest/date=YYYY-MM-DD.json                    what they were built from
    <lake>/_scratch/<pid>-<uuid>.parquet                           a run's spill files
    <lake>/_backfills/<first>_<last>.json                          a backfill's days done
    <lake>/_commits/<group>.json                                   a grouped commit being applied
                                                                   (a day's attribution: lake.commits)
    <lake>/plans/<table>/run=<run_id>.parquet                      the planner's kept runs (lake.plans)

Every file is written atomically (`lake.files`): a reader sees the previous file or the new
one, never half of one; a rerun of a partition replaces it. Nothing else spells these paths.

`Lake("s3://bucket/prefix")` is the same lake on an object store (`lake.objects.ObjectLake`:
uniquely named files made visible by a manifest, docs/deploy.md); its paths are URIs (`str`),
so callers go through the methods below (`exists`, `stamp`, `relative`, ...), never through
`pathlib` on a lake path.
"""

import importlib
import os
import re
import uuid
from contextlib import AbstractContextManager
from datetime import date
from pathlib import Path, PurePosixPath

import polars as pl

from lake import commits, files
from lake.files import process_alive

FLEET = "_fleet"  # site value of fleet-wide partitions (the asset register's quarantine and audit)
MARTS = "marts"
# zstd level 1: a fifth faster to write than the default level 3, files ~5 % larger.
PARQUET_OPTIONS = {"compression": "zstd", "compression_level": 1, "statistics": True}


# URI scheme -> the module and class of its lake, imported on first use (the CLI starts without
# PyArrow's S3 client).
OBJECT_STORES = {"s3": ("lake.objects", "ObjectLake"), "az": ("lake.objects", "ObjectLake")}
# Schemes a library speaks but the lake refuses, and why (lake/object_stores.py, REFUSED).
REFUSED_HINT = {"gs": "gs:// is not supported (untested here): reach GCS by its S3 API with s3:// (docs/deploy.md)"}
URI = re.compile(r"^([a-z][a-z0-9+.-]*)://")


def object_store_scheme(root: "Path | str") -> str | None:
    """`s3` for `s3://bucket/prefix` (`az` for `az://container/prefix`); None for a local path."""
    m = URI.match(str(root)) if isinstance(root, str) else None
    return m.group(1) if m else None


def _day(partition: "Path | str") -> date:
    return date.fromisoformat(PurePosixPath(str(partition)).name.removeprefix("date="))


class Lake:
    """The lake at a local directory, or (`OBJECT_STORES`) at an object store's URI."""

    def __new__(cls, root: "Path | str" = "", **_options):
        scheme = object_store_scheme(root)
        if cls is Lake and scheme is not None:
            if scheme not in OBJECT_STORES:
                raise ValueError(f"lake {root}: no object store speaks {scheme}:// here; use one of "
                                 f"{', '.join(f'{s}://' for s in sorted(OBJECT_STORES))} or a local directory"
                                 + (f"; {REFUSED_HINT[scheme]}" if scheme in REFUSED_HINT else ""))
            module, name = OBJECT_STORES[scheme]
            cls = getattr(importlib.import_module(module), name)
        return super().__new__(cls)

    def __init__(self, root: Path | str):
        self.root = Path(root)

    def __getnewargs__(self):
        return (str(self.root),)

    # --- where things are -----------------------------------------------------------------------

    def _path(self, *parts: str) -> Path:
        """`<root>/<parts...>`."""
        return self.root.joinpath(*parts)

    def path(self, *parts: str) -> Path:
        """`<root>/<parts...>`: a file outside the dated layout (the planner's runs, `lake.plans`)."""
        return self._path(*parts)

    def files_under(self, *parts: str, pattern: str = "*.parquet") -> list[Path]:
        """The files directly under `<root>/<parts...>` matching `pattern`, sorted."""
        return self._glob(self._path(*parts), pattern)

    def remove(self, path: "Path | str") -> None:
        """The file is gone for readers (no error when it was not there)."""
        Path(path).unlink(missing_ok=True)

    def _glob(self, under: "Path | str", pattern: str) -> list[Path]:
        """The files (or directories) under `under` whose relative path matches `pattern`, sorted
        (a grouped commit a killed process left half applied is finished first: `lake.commits`)."""
        commits.settle(self.root)
        return sorted(Path(under).glob(pattern))

    def partition_dir(self, dataset: str, day: date, site: str | None = None) -> Path:
        parts = (dataset, f"date={day.isoformat()}") + ((f"site={site}",) if site is not None else ())
        return self._path(*parts)

    def partition_file(self, dataset: str, day: date, site: str | None = None, name: str = "part-0") -> Path:
        """`<partition>/<name>.parquet`: the file `write` writes."""
        commits.settle(self.root)
        return self.partition_dir(dataset, day, site) / f"{name}.parquet"

    def partition_files(self, dataset: str, day: date, site: str | None = None) -> list[Path]:
        """The Parquet files of one partition (directly in its directory)."""
        return self._glob(self.partition_dir(dataset, day, site), "*.parquet")

    def day_files(self, dataset: str, day: date) -> list[Path]:
        """Every Parquet file of `dataset` on `day`, whatever its sites."""
        return self._glob(self.partition_dir(dataset, day), "**/*.parquet")

    def all_files(self, dataset: str) -> list[Path]:
        """Every Parquet file of a per-site dataset, every day (`date=`/`site=` in their paths)."""
        return self._glob(self._path(dataset), "date=*/site=*/*.parquet")

    def sites(self, dataset: str, day: date) -> list[str]:
        """The sites with a partition of `dataset` on `day`."""
        return [PurePosixPath(str(p)).name.removeprefix("site=")
                for p in self._glob(self.partition_dir(dataset, day), "site=*")]

    def days(self, dataset: str) -> list[date]:
        """Days with a partition of `dataset` (an empty one included), oldest first."""
        return sorted(_day(p) for p in self._glob(self._path(dataset), "date=*"))

    def delivered_days(self, dataset: str) -> list[date]:
        """Days on which a file of fleet-wide `dataset` (the asset register) was delivered: its
        ingest audit lists a file of the dataset that was read (an unreadable one counts: a
        delivery that failed its checks). A day whose ingest found no file still has a partition,
        written empty, and is not one of them. Oldest first."""
        found = []
        for audit in self._glob(self._path("ingest_audit"), f"date=*/site={FLEET}/{dataset}.parquet"):
            rows = pl.scan_parquet(audit).filter(pl.col("dataset") == dataset)
            if "status" in rows.collect_schema():  # audits written before `status` listed read files only
                rows = rows.filter(pl.col("status") != "ignored")
            if rows.select(pl.len()).collect().item():
                found.append(self.day_site(audit)[0])
        return found

    def days_with(self, dataset: str, name: str = "part-0") -> list[date]:
        """Days whose partition of `dataset` holds `<name>.parquet` (e.g. attributed days)."""
        return sorted(self.day_site(p)[0] for p in self._glob(self._path(dataset), f"date=*/{name}.parquet"))

    def audited(self, name: str, day: date) -> list[str]:
        """The sites with an ingest audit of dataset `name` on `day`."""
        return sorted(self.day_site(p)[1]
                      for p in self._glob(self.partition_dir("ingest_audit", day), f"site=*/{name}.parquet"))

    def mart_path(self, table: str, day: date) -> Path:
        """The file of `table`'s marts on `day` (`mart_target`: where a build writes it)."""
        return self.mart_target(table, day)

    def mart_target(self, table: str, day: date) -> Path:
        return self._path(MARTS, table, f"date={day.isoformat()}", "part-0.parquet")

    def marts_dir(self) -> Path:
        return self._path(MARTS)

    def marts_manifest(self, day: date) -> Path:
        return self._path(MARTS, "_manifest", f"date={day.isoformat()}.json")

    def backfill_state(self, first: date, last: date) -> Path:
        return self._path("_backfills", f"{first.isoformat()}_{last.isoformat()}.json")

    @staticmethod
    def day_site(path: "Path | str") -> tuple[date, str | None]:
        """The day and site (None for a fleet-wide partition) of a file in a partition."""
        parts = PurePosixPath(str(path)).parts
        day = next(p for p in parts if p.startswith("date="))
        site = next((p.removeprefix("site=") for p in parts if p.startswith("site=")), None)
        return _day(day), site

    # --- what callers ask of a lake file (lake.objects answers the same for an object store) ------

    def exists(self, path: "Path | str") -> bool:
        return Path(path).exists()

    def has_partition(self, dataset: str, day: date) -> bool:
        """Whether `dataset` has a partition on `day` (an empty one included)."""
        return self.partition_dir(dataset, day).is_dir()

    def mtime_ns(self, path: "Path | str") -> int:
        """When the file was written (ns since the epoch)."""
        return Path(path).stat().st_mtime_ns

    def stamp(self, path: "Path | str") -> list:
        """What identifies this version of a file in a manifest: its size and modification time
        (a lake copied with its times, cp -p or rsync -t, stays current)."""
        st = Path(path).stat()
        return [st.st_size, st.st_mtime_ns]

    def relative(self, path: "Path | str") -> str:
        """The file's path under the lake root, as the layout above spells it."""
        return Path(path).relative_to(self.root).as_posix()

    def open_read(self, path: "Path | str"):
        """A binary stream of the file's bytes."""
        return open(path, "rb")

    def read_text(self, path: "Path | str") -> str:
        return Path(path).read_text()

    def write_text(self, path: "Path | str", text: str) -> None:
        files.write_text(path, text)

    def staging(self) -> AbstractContextManager[files.Staging]:
        """Several files written (`write(target, fn)`, `target` a `mart_target`) then made
        visible together (`commit()`): `lake.files.staging`."""
        return files.staging()

    def batch(self, group: str) -> AbstractContextManager["commits.LocalBatch"]:
        """Files of several partitions (`write`, `adopt`, as the lake's) made visible together by
        `commit()`, one commit of `group` (e.g. `attribution/date=D`): `lake.commits`."""
        commits.settle(self.root)
        return commits.batch(lambda: commits.LocalBatch(self, group, PARQUET_OPTIONS))

    def local_copies(self, paths: "list[Path | str]", into: Path) -> list[Path]:
        """Local files with the bytes and lake-relative paths of `paths` (DuckDB reads local files
        only): the files themselves here; downloaded under `into` from an object store."""
        return [Path(p) for p in paths]

    def collect_garbage(self) -> list:
        """Files superseded by a rewrite, past their retention, deleted: none here (a local file is
        replaced by a rename); an object store keeps them a while (`lake.objects`)."""
        return []

    def copy_out(self, path: "Path | str", target: Path) -> None:
        """`target` (a local path) with the file's bytes: a hard link where it can be."""
        files.link_or_copy(path, target)

    # --- reading and writing --------------------------------------------------------------------

    def write(self, lf: pl.LazyFrame | pl.DataFrame, dataset: str, day: date, site: str | None = None,
              name: str = "part-0") -> Path:
        """Stream `lf` into `<partition>/<name>.parquet` atomically; returns the path."""
        commits.settle(self.root)
        return files.write_parquet(self.partition_file(dataset, day, site, name), lf, **PARQUET_OPTIONS)

    def adopt(self, path: Path, dataset: str, day: date, site: str | None = None, name: str = "part-0") -> Path:
        """Move a finished Parquet file (written under `scratch()`, same file system) into its
        partition atomically; returns the new path."""
        commits.settle(self.root)
        return files.move_into_place(path, self.partition_file(dataset, day, site, name))

    def scratch(self) -> Path:
        """A private scratch file path under the lake (same file system, removed by the caller).
        Files left by processes that no longer run (a run killed by a signal) are removed here."""
        d = self._scratch_dir()
        d.mkdir(parents=True, exist_ok=True)
        for old in d.glob("*.parquet"):
            pid = old.name.split("-", 1)[0]
            if pid.isdigit() and not process_alive(int(pid)):
                old.unlink(missing_ok=True)
        return d / f"{os.getpid()}-{uuid.uuid4().hex}.parquet"

    def scratch_folder(self) -> Path:
        """The lake's scratch folder (created), for a step's own temporary folders (removed by it)."""
        d = self._scratch_dir()
        d.mkdir(parents=True, exist_ok=True)
        return d

    def _scratch_dir(self) -> Path:
        return self.root / "_scratch"
