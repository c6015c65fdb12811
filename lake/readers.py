"""Raw files to lazy frames of text, with where every record came from.

With `lake.json_lines` (JSON Lines files), the only place raw files are opened. Parsers in
`transforms.ingest` receive these frames and never touch the file system. `_source_file` is
relative to the raw directory so the quarantine and the audit name files the way an operator
sees them.
"""

import mmap
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa

# Compressed raw files (request logs as shippers write them: `<node>.jsonl.zst`, `.jsonl.gz`),
# by suffix. Every reader here reads them as the plain file (DuckDB's `read_json` and Polars's
# CSV reader decompress by suffix; line counts stream through Arrow), and the quarantine and the
# audit name the compressed file, with the line number inside its decompressed text.
COMPRESSED_SUFFIXES = {".gz": "gzip", ".zst": "zstd"}
# The most the request logs of `fleetsim` (a few prompts, repeated) compress: zstd 16x, gzip 13x.
# A compressed file counts as this many times its bytes when files are grouped by size
# (`pipelines.ingest._file_groups`): real logs, with varied text, compress less, so their groups
# hold fewer lines than a plain group, never more.
COMPRESSION_RATIO = 16
_CHUNK = 1 << 24


# The first bytes of each compression format: a file named `.zst` that does not start with them is
# not zstd at all (a plain log renamed), which is said so, rather than "corrupt".
_MAGIC = {"gzip": b"\x1f\x8b", "zstd": b"\x28\xb5\x2f\xfd"}
# Errors a reader raises on a file it cannot read as its format (a CSV it cannot parse, a Parquet
# file without its footer, a damaged compressed stream); `pipelines.ingest` then reads each file of
# the group alone to find the files at fault (a parser's own error is raised, never blamed on a file).
READ_ERRORS = (pl.exceptions.PolarsError, OSError, duckdb.Error, pa.ArrowException)


class UnreadableFile(ValueError):
    """A raw file that cannot be read as its format at all: corrupt or truncated compression,
    content other than its suffix says, a CSV that cannot be parsed, a Parquet file without its
    footer. `name` is relative to the raw directory, `detail` says why and what to do."""

    def __init__(self, name: str, detail: str):
        super().__init__(f"{name}: {detail}")
        self.name, self.detail = name, detail


def refuse(unreadable: dict[str, str] | None, problem: UnreadableFile) -> None:
    """Name `problem` in `unreadable` (the file is left out of the frame), or raise it without one."""
    if unreadable is None:
        raise problem
    unreadable[problem.name] = problem.detail


def is_compressed(path: Path) -> bool:
    return path.suffix in COMPRESSED_SUFFIXES


def _first_line(error: BaseException, limit: int = 160) -> str:
    text = " ".join(str(error).split("\n", 1)[0].replace("`", "'").split())
    return text if len(text) <= limit else text[:limit] + "..."


def _unpaired_quote_line(path: Path) -> int | None:
    """The first line (1-based) after which the file's double quotes no longer pair up: where a
    quote inside an unquoted field, or a quoted field never closed, throws a CSV reader off."""
    quotes, lines = 0, 0
    for chunk in _chunks(path):
        data = np.frombuffer(chunk, dtype=np.uint8)
        at_ends = quotes + np.cumsum(data == 34, dtype=np.int64)[data == 10]  # quotes up to each line's end
        odd = np.flatnonzero(at_ends % 2 == 1)
        if len(odd):
            return lines + int(odd[0]) + 1
        quotes += int(np.count_nonzero(data == 34))
        lines += len(at_ends)
    return None


def unreadable_detail(path: Path, error: BaseException) -> str:
    """Why a raw file could not be read as its format, and what to do, from the reader's error."""
    if isinstance(error, UnreadableFile):
        return error.detail
    if is_compressed(path):
        codec = COMPRESSED_SUFFIXES[path.suffix]
        with open(path, "rb") as f:
            head = f.read(len(_MAGIC[codec]))
        if head != _MAGIC[codec]:
            return (f"is not {codec}-compressed though named `{path.suffix}` (it does not start with the {codec} "
                    f"magic bytes): rename it to `{path.stem}` if it is plain text, or compress it with {codec}")
        return (f"cannot be decompressed as {codec} ({_first_line(error)}): the file is damaged or cut short; "
                "deliver it again")
    if path.suffix == ".csv":
        if isinstance(error, pl.exceptions.NoDataError):
            return ("is empty: a CSV needs at least its header row; deliver the export again, or remove the file "
                    "if there is nothing to deliver")
        line = _unpaired_quote_line(path) if path.stat().st_size else None
        where = (f"the double quotes from line {line} on do not pair up" if line is not None
                 else f"the CSV reader says: {_first_line(error)}")
        return (f"cannot be parsed as CSV ({where}): a quote inside an unquoted field, or a quoted field never "
                "closed? Quote fields holding quotes, commas or line breaks (an inner quote doubled), then deliver "
                "the file again")
    if path.suffix == ".parquet":
        return f"is not a readable Parquet file ({_first_line(error)}): write it again with a Parquet writer"
    return f"cannot be read ({_first_line(error)}): deliver it again"


def text_bytes(path: Path) -> int:
    """The bytes a raw file stands for when files are grouped by size: its size, times
    COMPRESSION_RATIO when it is compressed (its decompressed size is not in its header)."""
    size = path.stat().st_size
    return size * COMPRESSION_RATIO if is_compressed(path) else size


# Raw files are read ahead (and their lines counted) 1 MiB at a time: a chunk the CPU's cache
# holds. In 8 MiB chunks the read-ahead of a 215 MB log cost 0.06 CPU-s, and counting its lines
# again through a memory map 0.06; both at once in 1 MiB chunks cost 0.047 (bench/README.md).
_AHEAD_CHUNK = 1 << 20
# Line counts of plain files made while they were read ahead, by `_identity`: `line_count` takes a
# file's from here (once) instead of reading the file a second time. Bounded: an ingest whose
# files are never counted (CSV power exports) leaves its entries, cleared past this many.
_AHEAD_COUNTS: dict[tuple, int] = {}
_AHEAD_COUNTS_MAX = 4096


def _identity(path: Path) -> tuple:
    """A file as the count was made of it: path, device, inode, size, modification time."""
    st = os.stat(path)
    return (os.path.abspath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _read_counting(f, buffer: bytearray) -> tuple[int, int]:
    """Bytes read from the open file `f` to its end, and its lines as `line_count` numbers them
    (a last line without a newline counts)."""
    view = np.frombuffer(buffer, dtype=np.uint8)
    total, newlines, last = 0, 0, 10
    while n := f.readinto(buffer):
        newlines += int(np.count_nonzero(view[:n] == 10))
        last, total = buffer[n - 1], total + n
    return total, newlines + int(last != 10)


def read_ahead(path: Path) -> int:
    """Read `path` from start to end into a scratch buffer, so that its pages are in the page
    cache when its reader comes; returns the bytes read (0 when it cannot be opened: its own
    read says why). A plain file's lines are counted on the way (`line_count` then reads it no
    second time), kept only if the file did not change while it was read."""
    buffer, total = bytearray(_AHEAD_CHUNK), 0
    try:
        with open(path, "rb", buffering=0) as f:
            if is_compressed(path):  # counted as it is decompressed, by `line_count`
                while n := f.readinto(buffer):
                    total += n
                return total
            before = _identity(path)
            total, lines = _read_counting(f, buffer)
        if total == before[3] and _identity(path) == before:
            if len(_AHEAD_COUNTS) >= _AHEAD_COUNTS_MAX:
                _AHEAD_COUNTS.clear()
            _AHEAD_COUNTS[before] = lines
    except OSError:
        pass
    return total


def prefetch(paths: Sequence[Path]) -> threading.Thread | None:
    """Read `paths` ahead in a background thread (`read_ahead`), so that the disk reads the next
    group of raw files while this one is parsed: a raw day larger than the page cache (10 M
    requests are 11.4 GB) is otherwise read from disk at ~220 MB/s with the cores idle, then
    parsed with the disk idle. A sequential read, not `posix_fadvise(WILLNEED)`, which gained
    nothing on this disk (bench/README.md). Nothing the pipeline reads changes; already cached,
    it costs a copy from the page cache. Returns the thread (tests wait on it), or None."""
    if not paths:
        return None
    thread = threading.Thread(target=lambda: [read_ahead(p) for p in paths], name="raw-prefetch", daemon=True)
    thread.start()
    return thread


def _chunks(path: Path):
    """The file's bytes (its text, when compressed), a chunk at a time; a damaged compressed
    stream raises OSError."""
    if is_compressed(path):
        with pa.input_stream(str(path), compression=COMPRESSED_SUFFIXES[path.suffix]) as stream:
            while chunk := stream.read(_CHUNK):
                yield chunk
        return
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            yield chunk


def relative_name(path: Path, raw_root: Path) -> str:
    """`path` relative to the raw directory, as written (a symlink is named, not its target)."""
    try:
        return Path(os.path.abspath(path)).relative_to(os.path.abspath(raw_root)).as_posix()
    except ValueError:
        return Path(path).as_posix()


def _with_origin(lf: pl.LazyFrame, path: Path, raw_root: Path) -> pl.LazyFrame:
    """A file's frame with where each record came from: `_source_row` (its reader's 1-based row
    index) as Int64, and `_source_file`, the file relative to the raw directory."""
    return lf.with_columns(pl.col("_source_row").cast(pl.Int64),
                           pl.lit(relative_name(path, raw_root)).alias("_source_file"))


def _aligned(frames: list[pl.LazyFrame]) -> pl.LazyFrame:
    """The frames of several files as one, aligned by column name (a column a file lacks is null
    there); with no file, the two origin columns alone."""
    if not frames:
        return pl.LazyFrame(schema={"_source_file": pl.String, "_source_row": pl.Int64})
    return pl.concat(frames, how="diagonal_relaxed")


# Separators tried, in order, to read a file as lines through the CSV reader: a byte the file does
# not hold, so that no line is ever cut or lost (a line starting with 0x1F, the usual one, read as
# an empty first field, was dropped as blank). Control bytes first, then printable ASCII; never \n, \r.
_SEPARATORS = [b for b in [*range(0x1F, 0, -1), 0x7F, *range(0x20, 0x7F)] if b not in (0x0A, 0x0D)]


def _line_separator(path: Path, raw_root: Path) -> str | UnreadableFile | None:
    """A byte absent from the file's text, to split it into lines and nothing else; None when the
    file holds no text at all (an empty file, or a compressed file of nothing). One `find` pass
    over the file shows 0x1F absent, as in any text file; only a file holding it is counted byte by
    byte. A file holding every ASCII byte is not text, and a damaged compressed file none: unreadable."""
    try:
        if not is_compressed(path):
            if path.stat().st_size == 0:
                return None
            with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                if m.find(b"\x1f") < 0:
                    return "\x1f"
        else:
            empty, found = True, False
            for chunk in _chunks(path):
                empty = False
                if chunk.find(b"\x1f") >= 0:
                    found = True
                    break
            if empty:
                return None
            if not found:
                return "\x1f"
        seen = np.zeros(256, dtype=np.int64)
        for chunk in _chunks(path):
            seen += np.bincount(np.frombuffer(chunk, dtype=np.uint8), minlength=256)
    except OSError as e:
        return UnreadableFile(relative_name(path, raw_root), unreadable_detail(path, e))
    free = next((b for b in _SEPARATORS if seen[b] == 0), None)
    if free is None:
        return UnreadableFile(relative_name(path, raw_root),
                              "is not text (every ASCII byte occurs in it): deliver the export as text")
    return chr(free)


def scan_text_lines(paths: list[Path], raw_root: Path, *, skip_blank: bool = True,
                    unreadable: dict[str, str] | None = None, lossy: set[str] | None = None) -> pl.LazyFrame:
    """One row per line: `_source_file`, `_source_row` (1-based line number), `line`.
    Blank lines are not records and are dropped (their numbers are kept for the others).
    Invalid UTF-8 bytes are replaced by U+FFFD (the line then fails its parser, or its identifier
    is quarantined, not the whole file), a byte-order mark at the start of the file is stripped,
    and CR of CRLF endings removed. Lines are split on newlines only, whatever bytes they hold
    (`_line_separator`). A file that is not text (a damaged compressed file) is named in
    `unreadable` (relative name -> why) and left out; without `unreadable` it raises UnreadableFile.
    The files read are named in `lossy` (their text may hold U+FFFD for bytes that were not UTF-8)."""
    frames = []
    for p in sorted(paths):
        separator = _line_separator(p, raw_root)
        if separator is None:  # an empty file has no line (and the CSV reader refuses it)
            continue
        if isinstance(separator, UnreadableFile):
            refuse(unreadable, separator)
            continue
        if lossy is not None:
            lossy.add(relative_name(p, raw_root))
        lines = pl.scan_csv(p, has_header=False, separator=separator, quote_char=None, encoding="utf8-lossy",
                            new_columns=["line"], infer_schema=False, row_index_name="_source_row",
                            row_index_offset=1, truncate_ragged_lines=True)
        frames.append(_with_origin(lines, p, raw_root).with_columns(
            pl.col("line").fill_null("").str.strip_prefix("\ufeff").str.strip_suffix("\r")))
    if not frames:
        return pl.LazyFrame(schema={"_source_file": pl.String, "_source_row": pl.Int64, "line": pl.String})
    lf = pl.concat(frames, how="vertical")
    if skip_blank:
        lf = lf.filter(pl.col("line").str.strip_chars().str.len_bytes() > 0)
    return lf.select("_source_file", "_source_row", "line")


def scan_csv_text(paths: list[Path], raw_root: Path, *, separator: str = ",",
                  null_values: list[str] | None = None, unreadable: dict[str, str] | None = None,
                  lossy: set[str] | None = None) -> pl.LazyFrame:
    """Every column as text (parsers cast and judge), plus `_source_file` and `_source_row`
    (1-based data row, the header not counted). Files with different headers are aligned
    by column name; a column missing from a file is null there. A UTF-8 BOM is stripped.
    Blank lines are not records (their row numbers are kept for the rows after them). When the
    headers differ, `_absent_<column>` is True on the rows of a file whose header lacks the column.
    A file without even a header row is named in `unreadable` (relative name -> why) and left
    out (without `unreadable` it raises UnreadableFile); a CSV that cannot be parsed further down
    fails when the frame is read (`pipelines.ingest` then finds the file). Text is decoded lossily
    (a byte that is not UTF-8 becomes U+FFFD): the files read are named in `lossy`."""
    frames = []
    for p in sorted(paths):
        lf = pl.scan_csv(p, separator=separator, infer_schema=False, null_values=null_values,
                         row_index_name="_source_row", row_index_offset=1, truncate_ragged_lines=True,
                         missing_columns="insert", encoding="utf8-lossy")
        try:
            names = lf.collect_schema().names()
        except READ_ERRORS as e:
            refuse(unreadable, UnreadableFile(relative_name(p, raw_root), unreadable_detail(p, e)))
            continue
        if lossy is not None:
            lossy.add(relative_name(p, raw_root))
        lf = lf.rename({n: n.lstrip("\ufeff").strip() for n in names if n != n.lstrip("\ufeff").strip()})
        # A blank line comes back as an all-null row: it is not a record.
        lf = lf.filter(pl.any_horizontal(pl.exclude("_source_row").is_not_null()))
        frames.append(_with_origin(lf, p, raw_root))
    return _aligned(_marking_absent(frames))


ABSENT = "_absent_"


def _marking_absent(frames: list[pl.LazyFrame]) -> list[pl.LazyFrame]:
    """When the files' headers differ, each file's frame gets `_absent_<column>` (True) for every
    column another file has and its header lacks, so a parser can tell a column missing from a
    file's header from an empty cell (`transforms.ingest.canonical`). Files with one header: no
    column added."""
    names = [set(f.collect_schema().names()) for f in frames]
    union = set().union(*names) if names else set()
    return [f.with_columns(pl.lit(True).alias(f"{ABSENT}{c}") for c in sorted(union - n)) if union - n else f
            for f, n in zip(frames, names, strict=True)]


def scan_parquet_files(paths: list[Path], raw_root: Path, *, unreadable: dict[str, str] | None = None,
                       lossy: set[str] | None = None) -> pl.LazyFrame:
    """Canonical Parquet inputs, plus `_source_file` and `_source_row` (1-based row). A file whose
    footer cannot be read (not Parquet, cut short) is named in `unreadable` and left out (without
    `unreadable` it raises UnreadableFile). Parquet text is UTF-8 by its format: nothing is ever
    named in `lossy`."""
    frames = []
    for p in sorted(paths):
        lf = pl.scan_parquet(p, row_index_name="_source_row", row_index_offset=1)
        try:
            lf.collect_schema()
        except READ_ERRORS as e:
            refuse(unreadable, UnreadableFile(relative_name(p, raw_root), unreadable_detail(p, e)))
            continue
        frames.append(_with_origin(lf, p, raw_root))
    return _aligned(frames)


def line_count(path: Path) -> int:
    """Lines in a file as `scan_text_lines` numbers them (a last line without a newline counts);
    a compressed file's lines are counted as it is decompressed, a chunk at a time; a plain file's
    were counted when it was read ahead (`read_ahead`), unless it changed since."""
    if path.stat().st_size == 0:
        return 0
    if is_compressed(path):
        lines, last = 0, 10
        with pa.input_stream(str(path), compression=COMPRESSED_SUFFIXES[path.suffix]) as stream:
            while chunk := stream.read(_CHUNK):
                data = np.frombuffer(chunk, dtype=np.uint8)
                lines += int(np.count_nonzero(data == 10))
                last = int(data[-1])
        return lines + int(last != 10)
    counted = _AHEAD_COUNTS.pop(_identity(path), None)
    if counted is not None:
        return counted
    with open(path, "rb", buffering=0) as f:
        return _read_counting(f, bytearray(_AHEAD_CHUNK))[1]
