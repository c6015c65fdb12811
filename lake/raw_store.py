"""The raw drop on an object store (`INFERLEDGER_RAW=s3://bucket/prefix`, docs/deploy.md).

The readers (`lake.readers`, `lake.json_lines`) and the listing (`lake.raw`) work on a local
directory: a worker mirrors what an ingest reads into its scratch directory, then parses the
mirror exactly as it parses a local raw drop:

    <scratch>/raw/<hash of the URI>/<YYYY-MM-DD>/<site>/<folder>/<file>    a copy of the object

The listing goes through PyArrow's filesystem (credentials and endpoint from the standard AWS
variables, as for the lake); each object is streamed to the mirror compressed as it is
(`.jsonl.zst`, `.jsonl.gz`), under its key relative to the prefix, with the store's modification
time, so relative names (the quarantine's and the audit's `_source_file`), verdicts and facts are
those of the same files on local disk, and `raw_fingerprint` changes when an object is replaced.

`sync(*parts)` makes the mirror of those parts (folders or files of the drop) the store's: an
object whose size or time differ is downloaded again (to a temporary name, then renamed), a local
file whose object is gone is removed. A site's ingest mirrors `<day>/<site>/`; a fleet-wide ingest
mirrors `<day>/` without the contents of the inventory's sites' data folders (which it only lists
as folders, `lake.raw`), `profiles/` and the market price files. Processes of one worker share the
mirror, one sync at a time (a lock file).
"""

import fcntl
import hashlib
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path, PurePosixPath

import pyarrow.fs as pafs

from lake import object_stores
from lake.inventory import NAME
from lake.raw import PROFILES_SOURCE, SOURCES
from lake.store import object_store_scheme
from transforms.contracts import CANONICAL

PROFILES = PROFILES_SOURCE.folder

STORE_FIX = "check the raw drop's URI (INFERLEDGER_RAW, --raw) and the store's variables (AWS_*, AZURE_STORAGE_*)"


class RawMirror:
    """This worker's local mirror of the raw drop at `uri` (`s3://bucket/prefix`)."""

    def __init__(self, uri: str, scratch: Path | None = None):
        self.uri = str(uri).rstrip("/")
        self.fs = object_stores.filesystem(self.uri)  # the scheme's client, as the lake's (s3://, az://)
        self.base = self.uri.split("://", 1)[1].rstrip("/")
        scratch = scratch or Path(tempfile.gettempdir()) / "inferledger-scratch"
        self.root = scratch / "raw" / hashlib.sha256(self.uri.encode()).hexdigest()[:16]

    def _infos(self, part: str) -> list[pafs.FileInfo]:
        """The objects (and folder markers) at or under `<prefix>/<part>`."""
        key = f"{self.base}/{part}".rstrip("/")
        try:
            one = self.fs.get_file_info(key)
            if one.type == pafs.FileType.File:
                return [one]
            return self.fs.get_file_info(pafs.FileSelector(key, recursive=True, allow_not_found=True))
        except OSError as e:
            raise OSError(f"raw drop {self.uri}/{part}: cannot list it ({e}); {STORE_FIX}") from e

    def days(self) -> list[date]:
        """Days with a folder in the drop (`<prefix>/YYYY-MM-DD/`)."""
        infos = self.fs.get_file_info(pafs.FileSelector(self.base, allow_not_found=True))
        out = []
        for i in infos:
            try:
                out.append(date.fromisoformat(i.base_name))
            except ValueError:
                continue
        return sorted(out)

    def has_day(self, day: date) -> bool:
        return day in self.days()

    def sync(self, *parts: str, skip: Callable[[str], bool] = lambda _rel: False) -> Path:
        """The mirror of `parts` (folders or files relative to the prefix) made the store's, but
        for the objects whose relative key `skip` refuses (their folders are made); returns the
        mirror's root."""
        self.root.mkdir(parents=True, exist_ok=True)
        with self._locked():
            for part in parts:
                self._sync(part.strip("/"), skip)
        return self.root

    def _sync(self, part: str, skip: Callable[[str], bool]) -> None:
        wanted: set[Path] = set()
        for info in self._infos(part):
            rel = info.path[len(self.base) + 1:]
            local = self.root / rel
            if info.type == pafs.FileType.Directory:
                local.mkdir(parents=True, exist_ok=True)
                continue
            if info.type != pafs.FileType.File:
                continue
            if skip(rel):
                local.parent.mkdir(parents=True, exist_ok=True)
                continue
            wanted.add(local)
            st = local.stat() if local.is_file() and not local.is_symlink() else None
            if st is None or st.st_size != info.size or st.st_mtime_ns != info.mtime_ns:
                self._download(info, local)
        for local in self._local_files(self.root / part):  # withdrawn from the drop
            rel = local.relative_to(self.root).as_posix()
            if local not in wanted and not skip(rel):
                local.unlink(missing_ok=True)

    def _download(self, info: pafs.FileInfo, local: Path) -> None:
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.parent / f".{local.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.part"
        try:
            pafs.copy_files(info.path, str(tmp), source_filesystem=self.fs,
                            destination_filesystem=pafs.LocalFileSystem())
            os.utime(tmp, ns=(info.mtime_ns, info.mtime_ns))
            os.replace(tmp, local)
        except OSError as e:
            raise OSError(f"raw drop {self.uri}/{info.path[len(self.base) + 1:]}: cannot download it to "
                          f"{local} ({e}); {STORE_FIX}, and the space left in the scratch directory") from e
        finally:
            tmp.unlink(missing_ok=True)

    @staticmethod
    def _local_files(under: Path) -> Iterator[Path]:
        if under.is_file():
            yield under
            return
        for dirpath, _dirs, names in os.walk(under):
            for name in names:
                if not name.startswith("."):
                    yield Path(dirpath, name)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def site_folders() -> set[str]:
    """The folders of a site's raw folder that feed a per-site dataset (`requests`, `dcgm`...)."""
    return {s.folder for s in SOURCES if "site" in CANONICAL[s.dataset].partition_by}


def site_data(rel: str, sites: set[str], folders: set[str]) -> bool:
    """Whether `rel` (`<day>/<site>/<folder>/...`) is a file in a data folder of a site of the
    inventory: the fleet-wide ingest lists that folder, never its files."""
    parts = PurePosixPath(rel).parts
    return len(parts) >= 4 and parts[1] in sites and parts[2] in folders


def is_uri(root: "Path | str") -> bool:
    return object_store_scheme(root) is not None


def mirrored(root: "Path | str", day: date | None = None, site: str | None = None, *,
             sites: list[str] | tuple[str, ...] = (), price_files: list[str] | tuple[str, ...] = (),
             mirror: RawMirror | None = None) -> Path:
    """The raw drop `root` as a local directory: itself when local; else (`s3://...`) this
    worker's mirror holding the inventory and what the ingest of `day` (and `site`: a fleet-wide
    ingest when None) reads. `sites` are the inventory's sites, `price_files` the market price
    files it names."""
    if not is_uri(root):
        return Path(root)
    mirror = mirror or RawMirror(str(root))
    if day is None:
        return mirror.sync(NAME)
    if site is not None:
        return mirror.sync(NAME, f"{day.isoformat()}/{site}")
    folders, known = site_folders(), set(sites)
    return mirror.sync(NAME, day.isoformat(), PROFILES, *price_files,
                       skip=lambda rel: site_data(rel, known, folders))


def delivered(root: "Path | str", day: date) -> bool:
    """Whether the raw drop has a folder for `day`."""
    return RawMirror(str(root)).has_day(day) if is_uri(root) else (Path(root) / day.isoformat()).is_dir()
