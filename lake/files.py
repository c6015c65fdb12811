"""Writing a file so that a reader sees the old one or the new one, never half of one.

`write_atomically` is the one way files are written here (the lake's partitions, scratch files
moved into place, the marts and their manifest, the warehouse's COMPLETE, a finance export, the
morning report, a backfill's state): the content goes to a temporary name beside the target
(`.<name>.<pid>-<uuid>.tmp`, same directory, same file system), is flushed to disk (`fsync`), then
renamed over the target (`os.replace`). A temporary file left by a writer that was killed is
removed by the next write beside it (its process id no longer runs). A full disk raises
`NoSpaceLeft` naming the file being written. `staging` writes several files that way and moves
them into place together, after every one of them was written.
"""

import errno
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # Polars is not imported for the CLI's start-up: frames come from callers that did
    import polars as pl

LAKE_FIX = "point the lake (--lake, $INFERLEDGER_LAKE) at a disk with room"


class NoSpaceLeft(OSError):
    """The disk filled up while a file was written: one line naming the file and what to do
    (`fix`: where to write instead; by default, the lake's own setting)."""

    def __init__(self, path: Path | str, fix: str = LAKE_FIX):
        super().__init__(errno.ENOSPC, f"no space left on device writing {path}: free space on that disk, or {fix}, "
                                       "then run the same command again", str(path))
        self.fix = fix

    def __str__(self) -> str:
        return self.strerror

    def __reduce__(self):  # crosses process boundaries (parallel runs) as itself
        return (NoSpaceLeft, (self.filename, self.fix))


def is_no_space(error: BaseException) -> bool:
    """Whether `error` (an OSError, or a Polars or DuckDB error that wraps one) is a full disk."""
    return getattr(error, "errno", None) == errno.ENOSPC or "No space left on device" in str(error)


@contextmanager
def writing(path: Path | str, fix: str = LAKE_FIX) -> Iterator[None]:
    """Around a write of `path`: a full disk raises NoSpaceLeft naming `path` (Polars says
    "No space left on device (os error 28)" and no file)."""
    try:
        yield
    except NoSpaceLeft:
        raise
    except Exception as e:
        if is_no_space(e):
            raise NoSpaceLeft(path, fix) from e
        raise


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def temp_beside(target: Path) -> Path:
    """A new temporary name beside `target` (`.<name>.<pid>-<uuid>.tmp`); the temporary files of
    `target` left by processes that no longer run are removed first."""
    for stale in target.parent.glob(f".{target.name}.*.tmp"):
        pid = stale.name.removeprefix(f".{target.name}.").split("-", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)):
            stale.unlink(missing_ok=True)
    return target.with_name(f".{target.name}.{os.getpid()}-{uuid.uuid4().hex}.tmp")


def fsync_file(path: Path | str) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def fsync_dir(d: Path | str) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Staging:
    """Files written beside their targets (`write`), moved into place by `commit`, each atomically;
    the temporary files of those not moved are removed when the `staging()` block ends."""

    def __init__(self, fix: str):
        self.fix = fix
        self._staged: list[tuple[Path, Path]] = []

    def write(self, target: Path | str, write: Callable[[Path], object]) -> Path:
        """Call `write(tmp)` to write the content of `target` to a temporary file beside it;
        returns that temporary path (readable until `commit`)."""
        target = Path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_beside(target)
        self._staged.append((tmp, target))
        with writing(target, self.fix):
            write(tmp)
        return tmp

    def commit(self, *, replace: bool = True) -> list[Path]:
        """Flush every staged file to disk, then move each over its target (`os.replace`); with
        `replace` False each is linked to its target instead, and an existing target raises
        FileExistsError (nothing is ever written over it)."""
        for tmp, target in self._staged:
            with writing(target, self.fix):
                fsync_file(tmp)
        for tmp, target in self._staged:
            if replace:
                os.replace(tmp, target)
            else:
                os.link(tmp, target)
        return [target for _, target in self._staged]

    def discard(self) -> None:
        for tmp, _ in self._staged:
            tmp.unlink(missing_ok=True)
        self._staged = []


@contextmanager
def staging(fix: str = LAKE_FIX) -> Iterator[Staging]:
    """Several files written before any of them replaces its target (a day's marts): call
    `commit()` at the end of the block; whatever was not moved is removed."""
    stage = Staging(fix)
    try:
        yield stage
    finally:
        stage.discard()


def write_atomically(target: Path | str, write: Callable[[Path], object], *, replace: bool = True,
                     fix: str = LAKE_FIX) -> Path:
    """Write `target` through `write(tmp)` (which writes the whole content to the path it is
    given), flushed to disk, then renamed over `target`: readers see the old file or the new one.
    `replace` False: a new file only (FileExistsError when `target` exists). Returns `target`."""
    with staging(fix) as stage:
        stage.write(target, write)
        stage.commit(replace=replace)
    return Path(target)


def write_text(target: Path | str, text: str, *, fix: str = LAKE_FIX) -> Path:
    """`write_atomically` of UTF-8 text."""
    return write_atomically(target, lambda tmp: tmp.write_text(text, encoding="utf-8"), fix=fix)


def write_parquet(target: Path | str, frame: "pl.DataFrame | pl.LazyFrame", *, fix: str = LAKE_FIX,
                  **options) -> Path:
    """`write_atomically` of a frame as Parquet (a lazy frame is streamed); `options` go to
    Polars' writer (compression, statistics, ...)."""
    if hasattr(frame, "sink_parquet"):  # a LazyFrame
        return write_atomically(target, lambda tmp: frame.sink_parquet(tmp, **options), fix=fix)
    return write_atomically(target, lambda tmp: frame.write_parquet(tmp, **options), fix=fix)


def move_into_place(path: Path | str, target: Path | str) -> Path:
    """Move a finished file (on the same file system, e.g. a lake scratch file) over `target`
    atomically, flushed to disk first; returns `target`."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fsync_file(path)
    os.replace(path, target)
    return target


def link_or_copy(source: Path | str, target: Path | str) -> None:
    """A hard link `target` to the file `source`; a copy where links are not allowed (another
    file system)."""
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not allowed: copy
        shutil.copy2(source, target)


def link_into_place(source: Path | str, target: Path | str) -> Path:
    """Point `target` at the file `source` atomically: a hard link (a copy where links are not
    allowed) beside `target`, renamed over it, the directory flushed. A reader holding the old
    `target` open keeps the file it opened."""
    target = Path(target)
    tmp = temp_beside(target)
    try:
        link_or_copy(source, tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(target.parent)
    return target


def write_scratch(path: Path | str, frame: "pl.LazyFrame", **options) -> Path:
    """Stream `frame` into a private scratch file (`Lake.scratch()`: no reader sees it before it
    is whole, so it is written in place); a full disk raises NoSpaceLeft naming it."""
    with writing(path):
        frame.sink_parquet(path, **options)
    return Path(path)
