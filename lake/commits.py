"""Several files of the lake made visible together, by one commit: a day's eight attribution
outputs, an ingest partition's canonical file with its quarantine and its audit.

    lake.batch("attribution/date=D") as batch:   batch.write(frame, dataset, day, site, name)
                                                 batch.adopt(scratch_file, dataset, day, site, name)
                                                 batch.commit() -> the files, in the order written

Nothing a batch writes is visible before `commit()`, and after it all of it is: a process killed
at any point leaves a reader the whole previous version of the group's files (or none, the first
time) or the whole new one, never a mix.

**Local disk** (`LocalBatch`): a redo journal. Each file is written to a temporary name beside
its target (`lake.files.temp_beside`) and flushed; the commit point is the journal
`<lake>/_commits/<group, '/' as '+'>+<time>-<uuid>.json`, written atomically, naming every (temporary, target)
pair; then each temporary file is renamed over its target and the journal removed. A process
killed before the journal leaves temporary files only (removed by the next write beside them);
killed after it, the journal is rolled forward (`settle`) by the next process that reads or writes
the lake's partitions (`Lake._glob`, `partition_file`, `write`, `adopt`, `batch`), before it
looks at any of them. The files keep their names and bytes: the layout of `lake.store` unchanged.

**Object store** (`ObjectBatch`): each file a new uniquely named object; then each file's
manifest (`<partition>/<name>.manifest.json`) becomes a pointer to the group's commit record,
`{"commit": "_commits/<group>.json", "file": <the object it named before, if any>}` (unchanged
once written: a rerun writes no pointer again); then, last, in one PUT, the commit record
`<prefix>/_commits/<group>.json`, `{"files": {<logical path>: <object>, ...}}`. A reader of a
pointer takes the object the commit record names (`resolve`), else the pointer's `file` (the
version before the first grouped commit), else nothing.
"""

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from lake import files

COMMITS = "_commits"


def _sink(frame, path, options: dict) -> None:
    if hasattr(frame, "sink_parquet"):  # a LazyFrame
        frame.sink_parquet(path, **options)
    else:
        frame.write_parquet(path, **options)


# --- local disk: a redo journal --------------------------------------------------------------------


def journal_path(root: Path, group: str) -> Path:
    """A new journal of `group`: `<root>/_commits/<group, '/' as '+'>+<time ns>-<uuid>.json`
    (one per commit, so two commits of a group at once never remove each other's; `settle`
    applies them oldest first)."""
    return Path(root) / COMMITS / f"{group.replace('/', '+')}+{time.time_ns():020d}-{uuid.uuid4().hex}.json"


def pending(root: Path, group: str | None = None) -> list[Path]:
    """The journals (of `group`, or all) not yet applied, oldest first."""
    d, prefix = Path(root) / COMMITS, "" if group is None else f"{group.replace('/', '+')}+"
    try:
        names = [e.name for e in os.scandir(d) if e.name.endswith(".json") and e.name.startswith(prefix)]
    except FileNotFoundError:
        return []
    return [d / n for n in sorted(names, key=lambda n: n.rsplit("+", 1)[1])]


def _apply(root: Path, journal: Path) -> None:
    """Roll a journal forward: every temporary file still there renamed over its target, the
    directories flushed, the journal removed. Idempotent, safe beside another process doing it."""
    try:
        moves = json.loads(journal.read_text())["moves"]
    except FileNotFoundError:  # applied meanwhile by another process
        return
    for tmp, target in moves:
        try:
            os.replace(root / tmp, root / target)
        except FileNotFoundError:  # moved already
            pass
    for d in sorted({(root / target).parent for _, target in moves}):
        files.fsync_dir(d)
    journal.unlink(missing_ok=True)


def settle(root: Path) -> None:
    """Roll forward every journal of `root` left by a process killed after its commit point (or
    being applied by its writer now: applying twice is harmless), oldest first."""
    for journal in pending(root):
        _apply(Path(root), journal)


class LocalBatch:
    def __init__(self, lake, group: str, options: dict):
        self.lake, self.group, self.options = lake, group, options
        self._staged: list[tuple[Path, Path]] = []

    def _stage(self, target: Path, write: Callable[[Path], object]) -> Path:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = files.temp_beside(target)
        self._staged.append((tmp, target))
        with files.writing(target):
            write(tmp)
        return target

    def write(self, frame, dataset, day, site=None, name="part-0") -> Path:
        return self._stage(self.lake.partition_file(dataset, day, site, name),
                           lambda tmp: _sink(frame, tmp, self.options))

    def adopt(self, path: Path, dataset, day, site=None, name="part-0") -> Path:
        """A finished scratch file (same file system) moved beside its target now, into place
        at the commit."""
        return self._stage(self.lake.partition_file(dataset, day, site, name), lambda tmp: os.replace(path, tmp))

    def commit(self) -> list[Path]:
        for tmp, target in self._staged:
            with files.writing(target):
                files.fsync_file(tmp)
        root = Path(self.lake.root)
        journal = journal_path(root, self.group)
        files.write_text(journal, json.dumps({"moves": [[tmp.relative_to(root).as_posix(),
                                                         target.relative_to(root).as_posix()]
                                                        for tmp, target in self._staged]}))
        _apply(root, journal)  # the commit point is passed: from here a kill is rolled forward
        done, self._staged = [target for _, target in self._staged], []
        return done

    def discard(self) -> None:
        for tmp, _ in self._staged:
            tmp.unlink(missing_ok=True)
        self._staged = []


# --- object store: pointers, then the commit record ---------------------------------------------------


def record_key(group: str) -> str:
    return f"{COMMITS}/{group}.json"


def resolve(lake, manifest: str, content: dict) -> str | None:
    """The data object (URI) a manifest names: a file manifest its `file`; a pointer the object
    its commit record names for this file, else its `file` (before the first grouped commit)."""
    d = manifest.rpartition("/")[0]
    if "commit" in content:
        logical = lake.relative(lake.target_of(manifest))
        try:
            record = json.loads(lake.read_text(f"{lake.root}/{content['commit']}"))
        except FileNotFoundError:
            record = {"files": {}}
        if logical in record["files"]:
            return f"{lake.root}/{record['files'][logical]}"
    return f"{d}/{content['file']}" if content.get("file") else None


class ObjectBatch:
    def __init__(self, lake, group: str, options: dict):
        self.lake, self.group, self.options = lake, group, options
        self._staged: list[tuple[str, str]] = []  # (logical target, data object)

    def write(self, frame, dataset, day, site=None, name="part-0") -> str:
        target = f"{self.lake.partition_dir(dataset, day, site)}/{name}.parquet"
        data = self.lake.new_object(target)
        with files.writing(data, self.lake.fix):
            _sink(frame, data, self.options)
        self._staged.append((target, data))
        return target

    def adopt(self, path: Path, dataset, day, site=None, name="part-0") -> str:
        target = f"{self.lake.partition_dir(dataset, day, site)}/{name}.parquet"
        self._staged.append((target, self.lake.put_object(Path(path), target)))
        Path(path).unlink(missing_ok=True)
        return target

    def commit(self) -> list[str]:
        lake, key = self.lake, record_key(self.group)
        for target, _ in self._staged:
            manifest = lake.manifest_of(target)
            content = lake.read_manifest(manifest)
            if content is not None and content.get("commit") == key:
                continue  # already a pointer to this group's record
            before = resolve(lake, manifest, content) if content is not None else None
            pointer = {"commit": key} | ({"file": before.rpartition("/")[2]} if before else {})
            lake.write_text(manifest, json.dumps(pointer))
        lake.write_text(f"{lake.root}/{key}", json.dumps({  # the commit point: one PUT
            "files": {lake.relative(t): data.removeprefix(f"{lake.root}/") for t, data in self._staged},
            "committed_at": datetime.now(UTC).isoformat()}, indent=1))
        for target, data in self._staged:
            lake.collect_beside(target, data)
        done, self._staged = [data for _, data in self._staged], []
        return done

    def discard(self) -> None:
        self._staged = []  # uncommitted objects: orphans, collected after the retention


@contextmanager
def batch(make: Callable[[], "LocalBatch | ObjectBatch"]) -> Iterator["LocalBatch | ObjectBatch"]:
    """A batch that drops what it staged unless it was committed."""
    b = make()
    try:
        yield b
    finally:
        b.discard()
