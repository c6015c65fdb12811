"""JSON Lines files (request logs, Redfish polls, Mooncake traces) to frames of their fields.

A parser in `transforms.ingest` judges each line from what is read here: whether the line is JSON,
whether it is an object, and the values of the keys it documents, as JSON text. The JSON is read
by DuckDB: Polars' `str.json_decode` raises on the first line it cannot decode, and
`str.json_path_match` returns null for a line DuckDB's `json_valid` accepts (`NaN`, `Infinity`,
trailing commas, numbers beyond float range), so a Polars reading would give other verdicts than
the ones the parsers document. Only the documented keys leave DuckDB (prompt and completion
fields never do). tests/test_ingest_json_files.py and tests/test_ingest_requests.py hold the
paths below to the same verdict for every line.
"""

import json
import os
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa

from lake.readers import (
    UnreadableFile,
    is_compressed,
    line_count,
    refuse,
    relative_name,
    scan_text_lines,
    unreadable_detail,
)

# --- a frame of lines: one DuckDB pass over the `line` column ---------------------------------------

def extract_json_fields(raw_lines: pl.LazyFrame, keys: Sequence[str]) -> pl.LazyFrame:
    """`scan_text_lines` output to one row per line: `_source_file`, `_source_row`, `_json_valid`
    (the line is JSON), `_json_object` (it is a JSON object) and, per key, the key's value as
    JSON text (`"abc"`, `12`, `1.5`, `true`, `{...}`) or null when the key is absent or null.

    Only `keys` are extracted (DuckDB `json_transform` to an explicit struct of JSON fields); the
    rest of the line, prompt text included, never leaves DuckDB. DuckDB runs once per collect
    over the whole `line` column (one query on all cores): memory is about three times the bytes
    of the lines in the frame."""
    keys = list(keys)
    structure = json.dumps(dict.fromkeys(keys, "JSON")).replace("'", "''")
    # json_valid guards json_transform (which raises on invalid JSON); CASE evaluates the transform
    # only on valid lines, so a file full of bad lines is as fast as a clean one (try() is not).
    sql = (
        "SELECT v AS _json_valid, v AND starts_with(ltrim(line, ' \t\r\n'), '{') AS _json_object, "
        f"CASE WHEN v THEN json_transform(line, '{structure}') END AS j "
        "FROM (SELECT line, json_valid(line) AS v FROM lines)"
    )
    out_schema = {"_json_valid": pl.Boolean, "_json_object": pl.Boolean,
                  **{f"v{i}": pl.String for i in range(len(keys))}}

    def extract(lines: pl.Series) -> pl.Series:
        table = pa.table({"line": lines.to_arrow(compat_level=pl.CompatLevel.newest())})
        con = _database().cursor()  # a database opened per call costs 24 ms of CPU
        try:
            con.register("lines", table)
            result = pl.from_arrow(con.sql(sql).to_arrow_table())
        finally:
            con.close()
        values = result["j"].struct.unnest()  # fields in the order of `keys`
        values.columns = [f"v{i}" for i in range(len(keys))]
        return result.select("_json_valid", "_json_object").hstack(values).cast(out_schema).to_struct("_json")

    return (
        raw_lines.select("_source_file", pl.col("_source_row").cast(pl.Int64),
                         pl.col("line").map_batches(extract, return_dtype=pl.Struct(out_schema)).alias("_json"))
        .unnest("_json")
        .rename({f"v{i}": k for i, k in enumerate(keys)})
    )


# --- whole files: DuckDB's read_json where every line is a JSON object ------------------------------

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
    if frame.height != (line_count(path) if lines is None else lines):
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


def _counted(path: Path, raw_root: Path) -> int | UnreadableFile:
    """`line_count` of a file, or why it cannot be read when it is compressed and does not
    decompress (counting its lines decompresses it whole: the check costs no extra pass)."""
    try:
        return line_count(path)
    except OSError as e:
        if not is_compressed(path):
            raise
        return UnreadableFile(relative_name(path, raw_root), unreadable_detail(path, e))


def _json_fields_whole_file(con: duckdb.DuckDBPyConnection, path: Path, raw_root: Path, keys: list[str],
                            lines: Future | None = None) -> pl.DataFrame | UnreadableFile | None:
    """The fast path of `scan_json_fields` for one file: DuckDB's parallel `read_json` with every
    key as a JSON column. None when the file is not clean JSON Lines, one object per non-blank
    line holding at least one of `keys` (a line DuckDB cannot read, a blank line, or a line with
    none of the keys, which may not be an object): the caller then reads that file line by line.
    UnreadableFile when the file is compressed and does not decompress (`lines`: its `_counted`
    computing in another thread, awaited only after the read: waited for first, the count of a
    150-220 MB file ran with DuckDB idle)."""
    try:
        table = con.sql(_read_json_sql(keys), params={"paths": [str(path)]}).to_arrow_table()
    except duckdb.Error:
        table = None
    if table is None and not is_compressed(path):
        return None
    count = _counted(path, raw_root) if lines is None else lines.result()
    if isinstance(count, UnreadableFile) or table is None:
        return count if isinstance(count, UnreadableFile) else None
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return _clean_file_frame(frame, path, raw_root, keys, count)


def _json_fields_whole_files(con: duckdb.DuckDBPyConnection, paths: list[Path], raw_root: Path,
                             keys: list[str]) -> list[pl.DataFrame | UnreadableFile | None]:
    """`_json_fields_whole_file` of each of `paths`, from one `read_json` of them all: DuckDB keeps
    both cores busy across files where one file at a time leaves gaps (the 134 files, 6.9 GB, of
    the benchmark day's largest site: 5.2-5.3 s instead of 5.9-6.3 s). The rows come back in file and line order
    (DuckDB preserves insertion order), each with its file, and are cut into files by the run
    lengths of that column. A file a failed read names (a line DuckDB cannot read, a damaged
    compressed file) is left out and the rest read again; when a failure names no single file, or
    the rows are not where expected, file by file. A compressed file whose line count (which
    decompresses it whole) fails is unreadable, whatever DuckDB made of it."""
    refused: set[Path] = set()  # files a failed read named: line by line, without reading them again
    rest = list(paths)
    # The files' lines are counted in a thread while DuckDB reads them: NumPy and DuckDB both
    # release the GIL, and DuckDB alone leaves a core idle part of the time (remote-plains:
    # 5.6 s -> 5.1 s). A group of one file too (a node's day of logs is 150-220 MB at 10 M
    # requests, a group of its own): counted after the read, it left a core idle ~0.06 s a file.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="line-count") as counter:
        lines = {p: counter.submit(_counted, p, raw_root) for p in paths}

        def not_whole(p: Path) -> UnreadableFile | None:  # a file read_json did not give
            count = lines[p].result() if is_compressed(p) else None
            return count if isinstance(count, UnreadableFile) else None

        while len(rest) > 1:
            try:
                table = con.sql(_read_json_sql(keys, filename=True),
                                params={"paths": [str(p) for p in rest]}).to_arrow_table()
            except duckdb.Error as e:
                named = [p for p in rest if f'"{p}"' in str(e)]
                if len(named) != 1:
                    break
                refused.add(named[0])
                rest.remove(named[0])
                continue
            frame = pl.from_arrow(table)
            assert isinstance(frame, pl.DataFrame)
            runs = frame.get_column("filename").rle().struct.unnest()
            found = dict(zip(runs["value"].to_list(), runs["len"].to_list(), strict=True))
            names = [str(p) for p in rest]
            if runs["value"].to_list() != [n for n in names if n in found]:  # each file once, in order
                break
            by_path: dict[Path, pl.DataFrame | UnreadableFile | None] = {}
            offset = 0
            for path, name in zip(rest, names, strict=True):
                n = found.get(name, 0)
                count = lines[path].result()
                by_path[path] = count if isinstance(count, UnreadableFile) else _clean_file_frame(
                    frame.slice(offset, n).drop("filename"), path, raw_root, keys, count)
                offset += n
            return [by_path[p] if p in by_path else not_whole(p) for p in paths]
        return [not_whole(p) if p in refused
                else _json_fields_whole_file(con, p, raw_root, keys, lines.get(p))
                for p in paths]


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


def scan_json_fields(paths: list[Path], raw_root: Path, keys: list[str], *,
                     unreadable: dict[str, str] | None = None, lossy: set[str] | None = None) -> pl.LazyFrame:
    """JSON Lines files to the frame `extract_json_fields` makes from their lines (`_source_file`,
    `_source_row`, `_json_valid`, `_json_object`, and per key its value as JSON text), with the
    same verdict for every line, faster.

    A clean file (every non-blank line one JSON object, no blank line) is read whole by DuckDB's
    parallel `read_json`, which keeps only `keys` (prompt text never leaves DuckDB) and follows
    the same JSON dialect as the line-by-line path (`json_valid`: trailing commas, NaN accepted).
    Any other file is read line by line, so a bad line is judged on its own and the rest of the
    file still counts. tests/test_ingest_requests.py holds both paths equal on awkward lines.

    A compressed file that does not decompress is named in `unreadable` (relative name -> why and
    the fix) and left out; without `unreadable` it raises UnreadableFile. The files read line by line
    are named in `lossy` (`read_json` accepts valid UTF-8 only: a file it reads whole has no U+FFFD
    from lossy decoding)."""
    frames: list[pl.LazyFrame] = []
    con = _database().cursor()
    try:
        paths = sorted(paths)
        for p, whole in zip(paths, _json_fields_whole_files(con, paths, raw_root, keys), strict=True):
            if isinstance(whole, UnreadableFile):
                refuse(unreadable, whole)
            elif whole is not None:
                frames.append(whole.lazy())
            else:
                frames.append(extract_json_fields(scan_text_lines([p], raw_root, unreadable=unreadable, lossy=lossy),
                                                  keys))
    finally:
        con.close()
    if not frames:
        return pl.LazyFrame(schema={"_source_file": pl.String, "_source_row": pl.Int64, "_json_valid": pl.Boolean,
                                    "_json_object": pl.Boolean, **dict.fromkeys(keys, pl.String)})
    return pl.concat(frames, how="vertical")


# --- Redfish Sensor polls: the Sensor fields of each line --------------------------------------------

_SENSOR_FIELDS = pl.Struct({"_json_ok": pl.Boolean, "_id": pl.String, "_reading": pl.String,
                            "_units": pl.String, "_time": pl.String})
_SENSOR_SQL = """
select ok as _json_ok,
       case when ok then json_extract_string(line, '$.Id') end as _id,
       case when ok then json_extract(line, '$.Reading')::varchar end as _reading,
       case when ok then json_extract_string(line, '$.ReadingUnits') end as _units,
       case when ok then json_extract_string(line, '$.ReadingTime') end as _time
from (select line, coalesce(case when json_valid(line) then json_type(line) = 'OBJECT' end, false) as ok
      from raw_lines)
"""


def _sensor_fields(lines: pl.Series) -> pl.Series:
    """One struct per JSON line: is it a JSON object, and its Sensor fields as text
    (`_reading` is JSON text: `374`, `null`, `"abc"`). Called once per batch of lines (20 times
    for the 5 poll files of a site-day): on a cursor of the process's database, where a database
    opened per batch cost 24 ms of CPU each (0.65 CPU-s for 14,400 readings, 0.13-0.20 now)."""
    con = _database().cursor()
    try:
        con.register("raw_lines", pl.DataFrame({"line": lines}).to_arrow())
        return con.sql(_SENSOR_SQL).pl().cast(_SENSOR_FIELDS.to_schema()).to_struct(lines.name)
    finally:
        con.close()


def redfish_sensor_fields(raw_lines: pl.LazyFrame) -> pl.LazyFrame:
    """`scan_text_lines` output of Redfish Sensor polls to one row per line: `_source_file`,
    `_source_row`, `_json_ok` (the line is a JSON object), and its `Id` (`_id`), `Reading` as
    JSON text (`_reading`), `ReadingUnits` (`_units`) and `ReadingTime` (`_time`); the fields are
    null when the line is not a JSON object."""
    fields = pl.col("line").map_batches(_sensor_fields, return_dtype=_SENSOR_FIELDS, is_elementwise=True)
    return raw_lines.select("_source_file", "_source_row", fields.alias("_fields")).unnest("_fields")


def scan_redfish_sensors(paths: list[Path], raw_root: Path, *, unreadable: dict[str, str] | None = None,
                         lossy: set[str] | None = None) -> pl.LazyFrame:
    """Redfish Sensor poll files (`redfish_<host>_*.jsonl`) to `redfish_sensor_fields` of their lines
    (`scan_text_lines`: blank lines dropped, `unreadable` and `lossy` as there)."""
    return redfish_sensor_fields(scan_text_lines(paths, raw_root, unreadable=unreadable, lossy=lossy))
