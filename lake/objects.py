"""The lake on an object store (`s3://bucket/prefix`: AWS S3, or MinIO, Ceph, moto... at
`AWS_ENDPOINT_URL`; `az://container/prefix`: Azure Blob Storage, Azurite): commits without rename.

An object store has no atomic rename, so a partition's file is never written where readers look:

    <prefix>/<dataset>/date=D[/site=S]/<name>.<token>.parquet    the data, under a new name each write
    <prefix>/<dataset>/date=D[/site=S]/<name>.manifest.json      {"file": "<name>.<token>.parquet", ...}

The manifest is written last, in one PUT (an object appears whole or not at all), and readers
follow manifests only: `<partition>/<name>.parquet` exists for them when its manifest does, and is
the data object it names (a manifest may instead point at a group's commit record, written after
every object of the group: a day's eight attribution outputs change together, `lake.commits`).
A writer killed before its manifest leaves an object no reader sees; a
rerun writes a new object and its manifest replaces the old one, so nothing doubles. Superseded and
orphaned data objects are deleted once older than `retention_s` (default a day), when their
partition is written again and by `collect_garbage` (run at the end of each publish): a reader
that resolved a manifest just before a rewrite keeps reading the object it was given.

Reads and writes of Parquet go through Polars' native object-store support (credentials,
region and endpoint from the store's standard variables); listings, small JSON objects, uploads and
downloads through PyArrow's file system of the scheme (`lake.object_stores`, the same variables).
DuckDB reads local files only (its httpfs is not installable with DuckDB 2 here): `local_copies`
downloads what it reads.

Data objects are immutable, so a worker keeps local copies of those it wrote or downloaded
(`lake.object_cache`, under its scratch directory): a manifest (always read from the store)
resolved to a cached object gives its local path, which every method here accepts as the object.
"""

import json
import re
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from pathlib import Path

import polars as pl
import pyarrow.fs as pafs

from lake import commits, files, object_stores
from lake.object_cache import MAX_BYTES, ObjectCache
from lake.store import PARQUET_OPTIONS, Lake

MANIFEST = ".manifest.json"
TOKEN = re.compile(r"\.[0-9a-f]{32}\.parquet$")
RETENTION_S = 24 * 3600
# Asked of the store once per process: the buckets found, and each data object's size and time (an
# object is never modified: its `FileInfo` stays true until it is collected, a retention later).
_BUCKETS: set[tuple[str, str]] = set()
_OBJECT_INFO: dict[str, pafs.FileInfo] = {}
STORE_FIX = object_stores.FIX["s3"]  # the default; each lake says its own (`ObjectLake.fix`)


def _matches(segments: list[str], patterns: list[str]) -> bool:
    """Whether a relative path's segments match a glob's (`**` is any number of segments)."""
    if not patterns:
        return not segments
    if patterns[0] == "**":
        return any(_matches(segments[i:], patterns[1:]) for i in range(len(segments) + 1))
    return bool(segments) and fnmatchcase(segments[0], patterns[0]) and _matches(segments[1:], patterns[1:])


def logical_name(path: str) -> str:
    """`.../part-0.<token>.parquet` -> `.../part-0.parquet` (the name readers know)."""
    return TOKEN.sub(".parquet", path)


class ObjectLake(Lake):
    """The lake under `root` (`s3://bucket/prefix`); paths are URIs (`str`)."""

    def __init__(self, root: str, *, retention_s: float = RETENTION_S, scratch: Path | None = None,
                 cache_bytes: int = MAX_BYTES):
        self.root = str(root).rstrip("/")
        self.scheme, self.base = self.root.split("://", 1)
        self.fs = object_stores.filesystem(self.root)  # the scheme's client, from its store's variables
        self.fix = object_stores.FIX[self.scheme]
        bucket = self.base.split("/", 1)[0]
        if (self.scheme, bucket) not in _BUCKETS and self.fs.get_file_info(bucket).type == pafs.FileType.NotFound:
            # else a lake that reads as empty
            raise FileNotFoundError(f"lake {self.root}: the object store has no bucket (container) {bucket}; create "
                                    f"it, or point INFERLEDGER_LAKE (--lake) at the right one ({self.fix})")
        _BUCKETS.add((self.scheme, bucket))
        self.retention_s = retention_s
        self.scratch_root = scratch or Path(tempfile.gettempdir()) / "inferledger-scratch"
        self.cache = ObjectCache(self.scratch_root / "objects", cache_bytes)

    def __getnewargs__(self):
        return (self.root,)

    # --- keys ----------------------------------------------------------------------------------

    def _key(self, uri: "str | Path") -> str:
        """The object's key, of its URI or of its cached copy's path."""
        cached = self.cache.key_of(uri)
        if cached is not None:
            return cached
        return str(uri).split("://", 1)[1] if "://" in str(uri) else str(uri)

    def _as_uri(self, path: "str | Path") -> str:
        return self._uri(self._key(path)) if "://" not in str(path) else str(path)

    def _readable(self, uris: list[str]) -> list[str]:
        """The objects as readers get them: all their cached copies' local paths when every one is
        cached (a reader such as Polars takes local files or URIs, not both at once), else the URIs."""
        local = [self.cache.get(self._key(u)) for u in uris]
        return uris if None in local else [str(p) for p in local]

    def _uri(self, key: str) -> str:
        return f"{self.scheme}://{key}"

    def _path(self, *parts: str) -> str:
        return "/".join((self.root, *parts))

    def _split(self, target: str) -> tuple[str, str]:
        """`<dir>/<name>.parquet` -> (`<dir>`, `<name>`)."""
        d, _, file = str(target).rpartition("/")
        return d, file.removesuffix(".parquet")

    def _listing(self, under: str) -> list[pafs.FileInfo]:
        return self.fs.get_file_info(pafs.FileSelector(self._key(under), recursive=True, allow_not_found=True))

    def _info(self, path: "str | Path") -> pafs.FileInfo:
        """The store's `FileInfo` of a file; of a data object, asked once per process."""
        key = self._key(path)
        info = _OBJECT_INFO.get(key)
        if info is None:
            info = self.fs.get_file_info(key)
            if info.type == pafs.FileType.File and TOKEN.search(key):
                _OBJECT_INFO[key] = info
        return info

    def _resolve(self, manifest: str) -> str | None:
        """The data object a manifest (URI) names (through its group's commit record when it is a
        pointer, `lake.commits`); None when there is no manifest."""
        content = self.read_manifest(manifest)
        return None if content is None else commits.resolve(self, manifest, content)

    def read_manifest(self, manifest: str) -> dict | None:
        try:
            with self.fs.open_input_stream(self._key(manifest)) as f:
                return json.loads(f.read())
        except FileNotFoundError:
            return None

    def manifest_of(self, target: str) -> str:
        """`<dir>/<name>.parquet` -> `<dir>/<name>.manifest.json`."""
        d, name = self._split(target)
        return f"{d}/{name}{MANIFEST}"

    def target_of(self, manifest: str) -> str:
        return manifest.removesuffix(MANIFEST) + ".parquet"

    # --- where things are (the layout of lake.store, through manifests) --------------------------

    def _glob(self, under: "Path | str", pattern: str) -> list[str]:
        """Committed files (their data objects) or the directories holding them, under `under`,
        whose logical relative path matches `pattern`; sorted by logical path."""
        under, pats = str(under), pattern.split("/")
        want_dirs = not pats[-1].endswith(".parquet")
        found: set[str] = set()
        for info in self._listing(under):
            if info.type != pafs.FileType.File or not info.path.endswith(MANIFEST):
                continue
            segs = (info.path[len(self._key(under)) + 1:].removesuffix(MANIFEST) + ".parquet").split("/")
            if want_dirs:
                found.update(f"{under}/{'/'.join(segs[:k])}" for k in range(1, len(segs)) if _matches(segs[:k], pats))
            elif _matches(segs, pats):
                found.add(f"{under}/{'/'.join(segs)}")
        if want_dirs:
            return sorted(found)
        manifests = (logical.removesuffix(".parquet") + MANIFEST for logical in sorted(found))
        return self._readable([data for m in manifests if (data := self._resolve(m))])

    def partition_file(self, dataset, day, site=None, name="part-0") -> str:
        """The data object of `<partition>/<name>.parquet`; that logical URI when not committed."""
        return self._committed(f"{self.partition_dir(dataset, day, site)}/{name}.parquet")

    def mart_path(self, table, day) -> str:
        return self._committed(self.mart_target(table, day))

    def _committed(self, target: str) -> str:
        d, name = self._split(target)
        data = self._resolve(f"{d}/{name}{MANIFEST}")
        return self._readable([data])[0] if data else target

    def day_site(self, path):
        return Lake.day_site(logical_name(str(path)))

    def remove(self, path) -> None:
        """Its manifest deleted: gone for readers; its object is collected after the retention."""
        d, name = self._split(logical_name(self._as_uri(path)))
        if self.exists(f"{d}/{name}{MANIFEST}"):
            self.fs.delete_file(self._key(f"{d}/{name}{MANIFEST}"))

    def exists(self, path) -> bool:
        return self._info(path).type == pafs.FileType.File

    def has_partition(self, dataset, day) -> bool:
        """A committed file in it (a pointer whose group never committed names nothing)."""
        return any(i.path.endswith(MANIFEST) and self._resolve(self._uri(i.path))
                   for i in self._listing(self.partition_dir(dataset, day)))

    def mtime_ns(self, path) -> int:
        return self._info(path).mtime_ns

    def stamp(self, path) -> list:
        """Size, modification time (the store's, to the second) and the object's unique name."""
        info = self._info(path)
        return [info.size, info.mtime_ns, info.base_name]

    def relative(self, path) -> str:
        return logical_name(self._as_uri(path)).removeprefix(self.root + "/")

    def open_read(self, path):
        return self.fs.open_input_stream(self._key(path))

    def read_text(self, path) -> str:
        with self.open_read(path) as f:
            return f.read().decode()

    def write_text(self, path, text: str) -> None:
        with files.writing(path, self.fix), self.fs.open_output_stream(self._key(path)) as f:
            f.write(text.encode())

    # --- writing: data first, manifest last ---------------------------------------------------------

    def _new_object(self, target: str) -> str:
        d, name = self._split(target)
        return f"{d}/{name}.{uuid.uuid4().hex}.parquet"

    def commit(self, target: str, data: str) -> str:
        """Make `data` (a written object) the file `target` (`<dir>/<name>.parquet`): its manifest,
        then the partition's superseded objects of that name older than the retention go."""
        d, name = self._split(target)
        size = self._info(data).size
        self.write_text(f"{d}/{name}{MANIFEST}", json.dumps(
            {"file": data.rpartition("/")[2], "bytes": size, "committed_at": datetime.now(UTC).isoformat()}))
        self._collect(d, name, keep=data)
        return data

    def _collect(self, d: str, name: str | None, keep: str | None = None) -> list[str]:
        """Delete the data objects directly under `d` (of `name`, or all) that no manifest names and
        that are older than the retention. Returns their URIs."""
        infos = self.fs.get_file_info(pafs.FileSelector(self._key(d), allow_not_found=True))
        named = {self._resolve(self._uri(i.path)) for i in infos if i.path.endswith(MANIFEST)} | {keep}
        cutoff = time.time_ns() - int(self.retention_s * 1e9)
        gone = [self._uri(i.path) for i in infos if TOKEN.search(i.path) and self._uri(i.path) not in named
                and (name is None or i.base_name.startswith(f"{name}.")) and i.mtime_ns <= cutoff]
        for uri in gone:
            self.fs.delete_file(self._key(uri))
        return gone

    def collect_garbage(self) -> list[str]:
        """Every superseded or orphaned data object of the lake older than the retention, deleted."""
        dirs = sorted({i.path.rpartition("/")[0] for i in self._listing(self.root) if TOKEN.search(i.path)})
        return [uri for d in dirs for uri in self._collect(self._uri(d), None)]

    def write(self, lf, dataset, day, site=None, name="part-0") -> str:
        """Stream `lf` into a scratch file, then upload and commit it as a new object of the
        partition (`adopt`, kept in the cache); returns its URI."""
        tmp = self.scratch()
        try:
            with files.writing(tmp, self.fix):
                if isinstance(lf, pl.LazyFrame):
                    lf.sink_parquet(tmp, **PARQUET_OPTIONS)
                else:
                    lf.write_parquet(tmp, **PARQUET_OPTIONS)
            return self.adopt(tmp, dataset, day, site, name)
        finally:
            tmp.unlink(missing_ok=True)

    def upload(self, local: Path, target: str) -> str:
        """A finished local file as the file `target` (new object, kept in the cache, then
        manifest); returns its URI."""
        return self.commit(target, self.put_object(local, target))

    def put_object(self, local: Path, target: str) -> str:
        """A finished local file uploaded as a new object of the file `target` (kept in this
        worker's cache), not committed."""
        data = self._new_object(target)
        with files.writing(data, self.fix):
            pafs.copy_files(str(local), self._key(data), source_filesystem=pafs.LocalFileSystem(),
                            destination_filesystem=self.fs)
        self.cache.put(self._key(data), Path(local))
        return data

    def adopt(self, path, dataset, day, site=None, name="part-0") -> str:
        """Upload a finished scratch file into its partition (then remove it); returns its URI."""
        uri = self.upload(Path(path), f"{self.partition_dir(dataset, day, site)}/{name}.parquet")
        Path(path).unlink(missing_ok=True)
        return uri

    def _scratch_dir(self) -> Path:
        return self.scratch_root

    # --- grouped commits (lake.commits: the pointers, then the group's record) -------------------

    new_object = _new_object

    def batch(self, group: str):
        return commits.batch(lambda: commits.ObjectBatch(self, group, PARQUET_OPTIONS))

    def collect_beside(self, target: str, keep: str) -> None:
        d, name = self._split(target)
        self._collect(d, name, keep=keep)

    def staging(self):
        return _staging(self)

    # --- reading for DuckDB -------------------------------------------------------------------------

    def local_copies(self, paths, into: Path) -> list[Path]:
        out = []
        for uri in paths:
            local = into / self.relative(uri)
            self.copy_out(uri, local)
            out.append(local)
        return out

    def copy_out(self, path, target: Path) -> None:
        """`target` with the object's bytes: linked to its cached copy (downloaded into the cache
        first when not there); downloaded straight to `target` with the cache off."""
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        if self.cache.enabled:
            files.link_or_copy(self.cache.fetch(self._key(path), lambda tmp: self._download(path, tmp)), target)
        else:
            self._download(path, Path(target))

    def _download(self, path, target: Path) -> None:
        pafs.copy_files(self._key(path), str(target), source_filesystem=self.fs,
                        destination_filesystem=pafs.LocalFileSystem())


class ObjectStaging:
    """`lake.files.Staging` for an object store: each file written locally (`write`), then
    uploaded and committed one by one (`commit`; a day's marts are then made current together by
    their day manifest, written after)."""

    def __init__(self, lake: ObjectLake):
        self.lake = lake
        self._staged: list[tuple[Path, str]] = []

    def write(self, target: str, write: Callable[[Path], object]) -> Path:
        tmp = self.lake.scratch()
        self._staged.append((tmp, target))
        with files.writing(tmp):
            write(tmp)
        return tmp

    def commit(self) -> list[str]:
        return [self.lake.upload(tmp, target) for tmp, target in self._staged]

    def discard(self) -> None:
        for tmp, _ in self._staged:
            tmp.unlink(missing_ok=True)
        self._staged = []


@contextmanager
def _staging(lake: ObjectLake) -> Iterator[ObjectStaging]:
    stage = ObjectStaging(lake)
    try:
        yield stage
    finally:
        stage.discard()

