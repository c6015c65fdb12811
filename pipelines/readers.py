"""Raw files to lazy frames of text, with where every record came from.

The only place raw files are opened. Parsers in `transforms.ingest` receive these frames
and never touch the file system. `_source_file` is relative to the raw directory so the
quarantine and the audit name files the way an operator sees them.
"""

import mmap
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa

from transforms.ingest.requests import extract_json_fields


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


def is_compressed(path: Path) -> bool:
    return path.suffix in COMPRESSED_SUFFIXES


def text_bytes(path: Path) -> int:
    """The bytes a raw file stands for when files are grouped by size: its size, times
    COMPRESSION_RATIO when it is compressed (its decompressed size is not in its header)."""
    size = path.stat().st_size
    return size * COMPRESSION_RATIO if is_compressed(path) else size


def _has_text(path: Path) -> bool:
    """Whether the file holds any text (a compressed file of nothing is not empty on disk)."""
    if path.stat().st_size == 0:
        return False
    if not is_compressed(path):
        return True
    with pa.input_stream(str(path), compression=COMPRESSED_SUFFIXES[path.suffix]) as stream:
        return len(stream.read(1)) > 0


def relative_name(path: Path, raw_root: Path) -> str:
    try:
        return path.resolve().relative_to(raw_root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def scan_text_lines(paths: list[Path], raw_root: Path, *, skip_blank: bool = True) -> pl.LazyFrame:
    """One row per line: `_source_file`, `_source_row` (1-based line number), `line`.
    Blank lines are not records and are dropped (their numbers are kept for the others).
    Invalid UTF-8 bytes are replaced (the line then fails its parser, not the whole file),
    a byte-order mark at the start of the file is stripped, and CR of CRLF endings removed.
    Lines are split on newlines only (a raw 0x1F byte, never valid in JSON text, cuts the line
    there, and the record then fails its parser)."""
    frames = [
        pl.scan_csv(p, has_header=False, separator="\x1f", quote_char=None, encoding="utf8-lossy",
                    new_columns=["line"], infer_schema=False, row_index_name="_source_row", row_index_offset=1,
                    truncate_ragged_lines=True)
        .with_columns(pl.col("_source_row").cast(pl.Int64), pl.lit(relative_name(p, raw_root)).alias("_source_file"),
                      pl.col("line").fill_null("").str.strip_prefix("\ufeff").str.strip_suffix("\r"))
        for p in sorted(paths) if _has_text(p)  # an empty file has no line (and the CSV reader refuses it)
    ]
    if not frames:
        return pl.LazyFrame(schema={"_source_file": pl.String, "_source_row": pl.Int64, "line": pl.String})
    lf = pl.concat(frames, how="vertical")
    if skip_blank:
        lf = lf.filter(pl.col("line").str.strip_chars().str.len_bytes() > 0)
    return lf.select("_source_file", "_source_row", "line")


def scan_csv_text(paths: list[Path], raw_root: Path, *, separator: str = ",",
                  null_values: list[str] | None = None) -> pl.LazyFrame:
    """Every column as text (parsers cast and judge), plus `_source_file` and `_source_row`
    (1-based data row, the header not counted). Files with different headers are aligned
    by column name; a column missing from a file is null there. A UTF-8 BOM is stripped.
    Blank lines are not records (their row numbers are kept for the rows after them)."""
    frames = []
    for p in sorted(paths):
        lf = pl.scan_csv(p, separator=separator, infer_schema=False, null_values=null_values,
                         row_index_name="_source_row", row_index_offset=1, truncate_ragged_lines=True,
                         missing_columns="insert", encoding="utf8-lossy")
        names = lf.collect_schema().names()
        lf = lf.rename({n: n.lstrip("\ufeff").strip() for n in names if n != n.lstrip("\ufeff").strip()})
        # A blank line comes back as an all-null row: it is not a record.
        lf = lf.filter(pl.any_horizontal(pl.exclude("_source_row").is_not_null()))
        frames.append(lf.with_columns(pl.col("_source_row").cast(pl.Int64),
                                      pl.lit(relative_name(p, raw_root)).alias("_source_file")))
    if not frames:
        return pl.LazyFrame(schema={"_source_file": pl.String, "_source_row": pl.Int64})
    return pl.concat(frames, how="diagonal_relaxed")


def scan_parquet_files(paths: list[Path], raw_root: Path) -> pl.LazyFrame:
    """Canonical Parquet inputs, plus `_source_file` and `_source_row` (1-based row)."""
    frames = [
        pl.scan_parquet(p, row_index_name="_source_row", row_index_offset=1)
        .with_columns(pl.col("_source_row").cast(pl.Int64), pl.lit(relative_name(p, raw_root)).alias("_source_file"))
        for p in sorted(paths)
    ]
    if not frames:
        return pl.LazyFrame(schema={"_source_file": pl.String, "_source_row": pl.Int64})
    return pl.concat(frames, how="diagonal_relaxed")


def _line_count(path: Path) -> int:
    """Lines in a file as `scan_text_lines` numbers them (a last line without a newline counts);
    a compressed file's lines are counted as it is decompressed, a chunk at a time."""
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
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        data = np.frombuffer(m, dtype=np.uint8)
        lines = sum(int(np.count_nonzero(data[i:i + _CHUNK] == 10)) for i in range(0, len(data), _CHUNK))
        unterminated = int(data[-1] != 10)
        del data  # the buffer must be released before the map closes
    return lines + unterminated


def _read_json_sql(keys: list[str], *, filename: bool = False) -> str:
    columns = "{" + ", ".join(f"'{k.replace(chr(39), chr(39) * 2)}': 'JSON'" for k in keys) + "}"
    return (f"SELECT * FROM read_json($paths, format = 'newline_delimited', columns = {columns}, "
            f"ignore_errors = false{', filename = true' if filename else ''})")


def _clean_file_frame(frame: pl.DataFrame, path: Path, raw_root: Path, keys: list[str],
                      lines: int | None = None) -> pl.DataFrame | None:
    """`read_json`'s rows of one file as `scan_json_fields` gives them, or None when the file is not
    clean JSON Lines: a blank line (whose numbering `read_json` loses: the rows are fewer than the
    lines), or a row with no key at all (`read_json` reads a line `null` or `42` as a row of nulls,
    where a line is judged not an object; `{}` is one too, rare)."""
    if frame.height != (_line_count(path) if lines is None else lines):
        return None
    if frame.height and frame.select(pl.all_horizontal(pl.col(keys).is_null()).any()).item():
        return None
    return frame.select(
        pl.lit(relative_name(path, raw_root)).alias("_source_file"),
        pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("_source_row"),
        pl.lit(True).alias("_json_valid"),
        pl.lit(True).alias("_json_object"),
        *[pl.col(k).cast(pl.String) for k in keys],
    )


def _json_fields_whole_file(con: duckdb.DuckDBPyConnection, path: Path, raw_root: Path,
                            keys: list[str]) -> pl.DataFrame | None:
    """The fast path of `scan_json_fields` for one file: DuckDB's parallel `read_json` with every
    key as a JSON column. None when the file is not clean JSON Lines, one object per non-blank
    line holding at least one of `keys` (a line DuckDB cannot read, a blank line, or a line with
    none of the keys, which may not be an object): the caller then reads that file line by line."""
    try:
        table = con.sql(_read_json_sql(keys), params={"paths": [str(path)]}).to_arrow_table()
    except duckdb.Error:
        return None
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return _clean_file_frame(frame, path, raw_root, keys)


def _json_fields_whole_files(con: duckdb.DuckDBPyConnection, paths: list[Path], raw_root: Path,
                             keys: list[str]) -> list[pl.DataFrame | None]:
    """`_json_fields_whole_file` of each of `paths`, from one `read_json` of them all: DuckDB keeps
    both cores busy across files where one file at a time leaves gaps (the 134 files, 6.9 GB, of
    the benchmark day's largest site: 5.2-5.3 s instead of 5.9-6.3 s). The rows come back in file and line order
    (DuckDB preserves insertion order), each with its file, and are cut into files by the run
    lengths of that column. A file a failed read names (a line DuckDB cannot read) is left out and
    the rest read again; when a failure names no single file, or the rows are not where
    expected, file by file."""
    unreadable: set[Path] = set()  # files a failed read named: line by line, without reading them again
    rest = list(paths)
    # The files' lines are counted in a thread while DuckDB reads them: NumPy and DuckDB both
    # release the GIL, and DuckDB alone leaves a core idle part of the time (remote-plains:
    # 5.6 s -> 5.1 s).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="line-count") as counter:
        lines = {p: counter.submit(_line_count, p) for p in paths} if len(paths) > 1 else {}
        while len(rest) > 1:
            try:
                table = con.sql(_read_json_sql(keys, filename=True),
                                params={"paths": [str(p) for p in rest]}).to_arrow_table()
            except duckdb.Error as e:
                named = [p for p in rest if f'"{p}"' in str(e)]
                if len(named) != 1:
                    break
                unreadable.add(named[0])
                rest.remove(named[0])
                continue
            frame = pl.from_arrow(table)
            assert isinstance(frame, pl.DataFrame)
            runs = frame.get_column("filename").rle().struct.unnest()
            found = dict(zip(runs["value"].to_list(), runs["len"].to_list(), strict=True))
            names = [str(p) for p in rest]
            if runs["value"].to_list() != [n for n in names if n in found]:  # each file once, in order
                break
            by_path: dict[Path, pl.DataFrame | None] = {}
            offset = 0
            for path, name in zip(rest, names, strict=True):
                n = found.get(name, 0)
                by_path[path] = _clean_file_frame(frame.slice(offset, n).drop("filename"), path, raw_root, keys,
                                                  lines[path].result())
                offset += n
            return [by_path.get(p) for p in paths]
    return [None if p in unreadable else _json_fields_whole_file(con, p, raw_root, keys) for p in paths]


_DATABASE: dict[int, duckdb.DuckDBPyConnection] = {}


def _database() -> duckdb.DuckDBPyConnection:
    """The process's in-memory DuckDB for reading JSON Lines; each read takes a cursor of it.
    A database opened per read gives its memory back on close, and the next one faults it in
    from the system again: on 3.2 GB of request logs in 8 groups, 2.4 s against 2.0 s (sys time
    1.2 s against 0.7 s). Kept per process id, so a forked worker opens its own."""
    pid = os.getpid()
    if pid not in _DATABASE:  # a parent's database, inherited by a fork, is left alone (never closed here)
        _DATABASE[pid] = duckdb.connect()
    return _DATABASE[pid]


def scan_json_fields(paths: list[Path], raw_root: Path, keys: list[str]) -> pl.LazyFrame:
    """JSON Lines files to the frame `transforms.ingest.requests.extract_json_fields` makes from
    their lines (`_source_file`, `_source_row`, `_json_valid`, `_json_object`, and per key its
    value as JSON text), with the same verdict for every line, faster.

    A clean file (every non-blank line one JSON object, no blank line) is read whole by DuckDB's
    parallel `read_json`, which keeps only `keys` (prompt text never leaves DuckDB) and follows
    the same JSON dialect as the line-by-line path (`json_valid`: trailing commas, NaN accepted).
    Any other file is read line by line, so a bad line is judged on its own and the rest of the
    file still counts. tests/test_ingest_requests.py holds both paths equal on awkward lines."""
    frames: list[pl.LazyFrame] = []
    con = _database().cursor()
    try:
        paths = sorted(paths)
        for p, whole in zip(paths, _json_fields_whole_files(con, paths, raw_root, keys), strict=True):
            frames.append(whole.lazy() if whole is not None
                          else extract_json_fields(scan_text_lines([p], raw_root), keys))
    finally:
        con.close()
    if not frames:
        return pl.LazyFrame(schema={"_source_file": pl.String, "_source_row": pl.Int64, "_json_valid": pl.Boolean,
                                    "_json_object": pl.Boolean, **{k: pl.String for k in keys}})
    return pl.concat(frames, how="vertical")
