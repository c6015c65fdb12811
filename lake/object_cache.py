"""A worker's read-through cache of a lake's data objects on an object store (`lake.objects`).

A data object is written once under a new unique name (`<name>.<token>.parquet`) and never
modified, so a local copy of it is always right: the cache never asks the store whether a copy is
current. What is current is still decided by the manifests, read from the store each time: the
cache holds objects, never manifests, so a reader sees exactly the objects it would see without it.

    <scratch>/objects/<bucket>/<key>        a copy of s3://<bucket>/<key>

Objects get in when this worker writes them (the local file it uploaded is linked or moved in) or
downloads them for DuckDB (`ObjectLake.local_copies`, the publish's request detail); a reader given
a cached object's local path (`ObjectLake` resolves a manifest to it) reads it from local disk.
Each use touches the copy's modification time; past `max_bytes` (`ObjectLake(..., cache_bytes=)`,
default MAX_BYTES, 8 GB; 0 turns the cache off) the least recently used copies go, except those
used in the last `min_age_s` (a copy a reader was just given is not pulled from under it: the bound
is exceeded rather than that). Several processes of one worker share the cache safely: a copy
appears by an atomic rename, whole or not at all.
"""

import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from lake import files

MAX_BYTES = 8 * 10**9
MIN_AGE_S = 600.0


class ObjectCache:
    """Local copies of immutable objects, by key (`bucket/prefix/.../<name>.<token>.parquet`)."""

    def __init__(self, root: Path, max_bytes: int = MAX_BYTES, min_age_s: float = MIN_AGE_S):
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.min_age_s = min_age_s

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def path(self, key: str) -> Path:
        return self.root / key

    def key_of(self, path: "Path | str") -> str | None:
        """The key of a path under the cache; None for any other path."""
        text, root = str(path), f"{self.root}/"
        return text[len(root):] if text.startswith(root) else None

    def get(self, key: str) -> Path | None:
        """The local copy of `key` (its use recorded), or None."""
        if not self.enabled:
            return None
        path = self.path(key)
        try:
            os.utime(path)
        except FileNotFoundError:
            return None
        return path

    def put(self, key: str, local: Path) -> Path | None:
        """`local` (a finished file with the object's bytes) as the copy of `key`: hard-linked
        (copied across file systems); None when the cache is off."""
        if not self.enabled:
            return None
        return self._placed(key, lambda tmp: files.link_or_copy(local, tmp))

    def fetch(self, key: str, download: Callable[[Path], None]) -> Path:
        """The local copy of `key`, downloaded (`download(tmp)` writes the object's bytes) when not
        cached."""
        found = self.get(key)
        if found is not None:
            return found
        return self._placed(key, download)

    def _placed(self, key: str, write: Callable[[Path], None]) -> Path:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.part"
        try:
            write(tmp)
            os.utime(tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        self.evict()
        return path

    def evict(self) -> list[Path]:
        """The least recently used copies removed until the cache is within `max_bytes` (copies
        used in the last `min_age_s` stay). Returns the removed paths."""
        entries = []
        for dirpath, _dirs, names in os.walk(self.root):
            for name in names:
                if name.startswith("."):
                    continue
                try:
                    st = os.stat(os.path.join(dirpath, name))
                except FileNotFoundError:
                    continue
                entries.append((st.st_mtime, st.st_size, Path(dirpath, name)))
        total = sum(size for _t, size, _p in entries)
        removed, young = [], time.time() - self.min_age_s
        for mtime, size, path in sorted(entries):
            if total <= self.max_bytes or mtime > young:
                break
            path.unlink(missing_ok=True)
            total -= size
            removed.append(path)
        return removed
