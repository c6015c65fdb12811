"""The pipeline reads OTel JSON Lines files with `scan_json_fields`: a clean file is read whole by
DuckDB's `read_json`, any other line by line (`extract_json_fields`). The two must give the same
frame, hence the same verdict for every line: these tests hold them equal on awkward lines, on
generated files, and check which path a file takes. Compressed files (`.jsonl.zst`, `.jsonl.gz`)
must give the frame of their text.
"""

import json
import threading
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pipelines.ingest as ingest
from lake import json_lines
from lake.json_lines import (
    _json_fields_whole_file,
    _json_fields_whole_files,
    extract_json_fields,
    scan_json_fields,
    scan_redfish_sensors,
)
from lake.readers import COMPRESSION_RATIO, UnreadableFile, line_count, scan_text_lines, text_bytes
from tests.conftest import examples
from transforms.ingest.requests import OTEL_FIELDS

KEYS = list(OTEL_FIELDS)
GOOD = json.dumps({"time": "2026-11-28T10:00:00Z", "gen_ai.response.id": "r-1", "server.address": "m-h200-01",
                   "gen_ai.usage.input_tokens": 12, "gen_ai.latency.e2e": 1.5, "error.type": None,
                   "gen_ai.input.messages": [{"role": "user", "parts": [{"type": "text", "content": "SECRET"}]}]})


def line_by_line(path: Path, root: Path) -> pl.DataFrame:
    return extract_json_fields(scan_text_lines([path], root), KEYS).collect()


def whole(path: Path, root: Path) -> pl.DataFrame | None:
    con = duckdb.connect()
    try:
        return _json_fields_whole_file(con, path, root, KEYS)
    finally:
        con.close()


def same(got: pl.DataFrame, expected: pl.DataFrame, name: str = "") -> None:
    assert got.schema == expected.schema, name
    assert got.rows() == expected.rows(), name


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# Lines DuckDB's reader accepts: the file is read whole, and must equal the line-by-line frame.
CLEAN_LINES = {
    "plain": GOOD,
    "trailing comma (accepted by json_valid too)": '{"gen_ai.response.id": "r-2", "gen_ai.usage.input_tokens": 3,}',
    "NaN and Infinity": '{"gen_ai.latency.e2e": NaN, "gen_ai.latency.time_in_queue": Infinity}',
    "number beyond float range": '{"gen_ai.latency.e2e": 1e999}',
    "integer beyond int64": '{"gen_ai.usage.input_tokens": 99999999999999999999}',
    "quoted number": '{"gen_ai.usage.input_tokens": "12"}',
    "fraction and exponent for a count": '{"gen_ai.usage.input_tokens": 12.0, "gen_ai.usage.output_tokens": 1e2}',
    "number for a string": '{"server.address": 17, "inferledger.tier": true}',
    "object and array for a string": '{"server.address": {"a": 1}, "inferledger.tier": [1, "x"]}',
    "escapes and unicode": '{"gen_ai.response.id": "r-\\"3\\"\\u00e9\\n", "inferledger.tenant.id": "ümlaut-テナント"}',
    "explicit nulls beside a value": '{"gen_ai.response.id": "r-6", "error.type": null, "server.address": null}',
    "number formats": ('{"gen_ai.latency.e2e": 0.020, "gen_ai.latency.time_in_queue": -0.0, '
                       '"gen_ai.latency.decode_s": 1E-3}'),
    "spaces around": '   {"gen_ai.response.id": "r-4"}   ',
    "CRLF": '{"gen_ai.response.id": "r-5"}\r',
}

# Files the whole-file reader must refuse (a line judged wrong on its own, numbering lost, or a
# line with none of the keys, which may be a `null` line): they are read line by line.
MIXED_FILES = {
    "invalid JSON": [GOOD, '{"gen_ai.response.id": "r-1"', GOOD],
    "not an object": [GOOD, "[1, 2]", '"text"', "42", GOOD],
    "two objects on a line": [GOOD, '{"a": 1} {"b": 2}', GOOD],
    "single quotes": [GOOD, "{'gen_ai.response.id': 'r'}", GOOD],
    "blank lines keep their numbers": [GOOD, "", "   ", GOOD],
    "duplicate key": [GOOD, '{"gen_ai.response.id": "a", "gen_ai.response.id": "b"}', GOOD],
    "raw control character in a string": [GOOD, '{"gen_ai.response.id": "a\tb"}', GOOD],
    "null line": [GOOD, "null", GOOD],
    "scalar lines": [GOOD, "42", '"text"', "true", GOOD],
    "an object with none of the keys": [GOOD, "{}", '{"other": 1}', '{"gen_ai.response.id": null}', GOOD],
    "unit separator 0x1F first, inside, alone": [GOOD, "\x1f" + GOOD, GOOD.replace(", ", ",\x1f ", 1), "\x1f", GOOD],
}


def test_clean_lines_are_read_whole_and_equal_line_by_line(tmp_path):
    for name, line in CLEAN_LINES.items():
        path = write(tmp_path, "clean.jsonl", f"{GOOD}\n{line}\n{GOOD}".encode())  # last line unterminated
        fast = whole(path, tmp_path)
        assert fast is not None, name
        same(fast, line_by_line(path, tmp_path), name)


def test_files_with_a_bad_or_blank_line_are_read_line_by_line(tmp_path):
    for name, lines in MIXED_FILES.items():
        path = write(tmp_path, "mixed.jsonl", ("\n".join(lines) + "\n").encode())
        assert whole(path, tmp_path) is None, name
        # and the reader the pipeline calls gives the line-by-line frame
        same(scan_json_fields([path], tmp_path, KEYS).collect(), line_by_line(path, tmp_path), name)


def test_invalid_utf8_and_byte_order_mark(tmp_path):
    bad = write(tmp_path, "bad.jsonl", GOOD.encode() + b'\n{"gen_ai.response.id": "r-\xff"}\n')
    assert whole(bad, tmp_path) is None
    bom = write(tmp_path, "bom.jsonl", b"\xef\xbb\xbf" + GOOD.encode() + b"\n")
    same(scan_json_fields([bom], tmp_path, KEYS).collect(), line_by_line(bom, tmp_path))


def test_several_files_keep_their_names_and_numbers_and_no_text(tmp_path):
    (tmp_path / "d").mkdir()
    paths = [write(tmp_path / "d", "b.jsonl", f"{GOOD}\n{GOOD}\n".encode()),
             write(tmp_path / "d", "a.jsonl", f"{GOOD}\n\n{GOOD}\n".encode()),
             write(tmp_path / "d", "empty.jsonl", b"")]
    got = scan_json_fields(paths, tmp_path, KEYS).collect()
    assert got.select("_source_file", "_source_row").rows() == [("d/a.jsonl", 1), ("d/a.jsonl", 3),
                                                                 ("d/b.jsonl", 1), ("d/b.jsonl", 2)]
    assert got.columns == ["_source_file", "_source_row", "_json_valid", "_json_object", *KEYS]
    assert not any("SECRET" in str(v) for row in got.rows() for v in row)


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=6)
records = st.dictionaries(st.sampled_from([*KEYS, "gen_ai.input.messages", "other"]), json_values, max_size=8)
lines = st.one_of(records.map(json.dumps), records.map(json.dumps),
                  records.map(lambda r: json.dumps(r, ensure_ascii=False)),  # raw non-ASCII, U+2028 included
                  st.sampled_from(["", "  ", "[1]", "{", "null", '{"a":1,}', '{"time": NaN}', "\x1f", "\x1f" + GOOD,
                                   '{"gen_ai.response.id": "a"}\x1f', "\x1e\x1f\x1d"]))


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(lines, max_size=12))
def test_generated_files_give_the_line_by_line_frame(tmp_path, file_lines):
    # lone surrogates: bad UTF-8
    path = write(tmp_path, "gen.jsonl", "\n".join(file_lines).encode("utf-8", "surrogatepass"))
    same(scan_json_fields([path], tmp_path, KEYS).collect(), line_by_line(path, tmp_path))


def each_line_by_line(paths: list[Path], root: Path) -> pl.DataFrame:
    return pl.concat([line_by_line(p, root) for p in sorted(paths)])


def test_a_group_of_files_is_read_at_once_and_equals_each_file_line_by_line(tmp_path):
    """Files are read together by one `read_json`: a file it cannot read is named by its error,
    left out (line by line) and the rest read again; clean files still take the fast path."""
    (tmp_path / "g").mkdir()
    clean = [write(tmp_path / "g", f"clean-{i}.jsonl", "\n".join([GOOD, line, GOOD]).encode())
             for i, line in enumerate(CLEAN_LINES.values())]
    mixed = [write(tmp_path / "g", f"mixed-{i}.jsonl", ("\n".join(lines) + "\n").encode())
             for i, lines in enumerate(MIXED_FILES.values())]
    odd = [write(tmp_path / "g", "empty.jsonl", b""),
           write(tmp_path / "g", "utf8.jsonl", GOOD.encode() + b'\n{"gen_ai.response.id": "r-\xff"}\n')]
    paths = clean + mixed + odd
    same(scan_json_fields(paths, tmp_path, KEYS).collect(), each_line_by_line(paths, tmp_path))
    con = duckdb.connect()
    try:
        fast = dict(zip(sorted(paths), _json_fields_whole_files(con, sorted(paths), tmp_path, KEYS), strict=True))
    finally:
        con.close()
    assert all(fast[p] is not None for p in clean)
    assert all(fast[p] is None for p in mixed + odd[1:])


def test_a_group_of_one_file_counts_its_lines_while_duckdb_reads_it(tmp_path, monkeypatch):
    """A node's day of logs is a group of its own at 10 M requests (150-220 MB a file): its lines
    are counted in the `line-count` thread, as a group's are, not after the read. The file of
    GOOD, GOOD, GOOD has 3 lines, read whole (3 rows, numbered 1-3); one with a blank line (GOOD,
    "", GOOD: 3 lines, 2 rows from read_json) is read line by line, as before."""
    counted: list[tuple[str, str]] = []
    real = json_lines._counted

    def counting(path, root):
        counted.append((path.name, threading.current_thread().name.split("_")[0]))
        return real(path, root)

    monkeypatch.setattr(json_lines, "_counted", counting)
    (tmp_path / "one").mkdir()
    clean = write(tmp_path / "one", "clean.jsonl", "\n".join([GOOD, GOOD, GOOD]).encode())
    blank = write(tmp_path / "one", "blank.jsonl", "\n".join([GOOD, "", GOOD]).encode())
    con = duckdb.connect()
    try:
        [fast] = _json_fields_whole_files(con, [clean], tmp_path, KEYS)
        [slow] = _json_fields_whole_files(con, [blank], tmp_path, KEYS)
    finally:
        con.close()
    assert counted == [("clean.jsonl", "line-count"), ("blank.jsonl", "line-count")]
    assert fast is not None and fast["_source_row"].to_list() == [1, 2, 3] and slow is None
    same(scan_json_fields([blank], tmp_path, KEYS).collect(), line_by_line(blank, tmp_path))


def test_a_group_of_one_file_is_read_while_its_lines_are_counted_not_after(tmp_path, monkeypatch):
    """The read of a one-file group does not wait for its line count (it did: the count was
    awaited before the read began, so a 150-220 MB file was counted with DuckDB idle). The count
    here finishes only once the read has begun (or gives up after 5 s): the read must begin first.
    The file of GOOD x4 has 4 lines: 4 rows, numbered 1-4."""
    reading = threading.Event()
    seen: list[bool] = []
    real_count, real_sql = json_lines._counted, json_lines._read_json_sql

    def counting(path, root):
        seen.append(reading.wait(timeout=5))  # True: DuckDB's read had begun while this counted
        return real_count(path, root)

    def read_sql(keys, **kwargs):
        reading.set()
        return real_sql(keys, **kwargs)

    monkeypatch.setattr(json_lines, "_counted", counting)
    monkeypatch.setattr(json_lines, "_read_json_sql", read_sql)
    (tmp_path / "one").mkdir()
    clean = write(tmp_path / "one", "clean.jsonl", "\n".join([GOOD] * 4).encode())
    con = duckdb.connect()
    try:
        [fast] = _json_fields_whole_files(con, [clean], tmp_path, KEYS)
    finally:
        con.close()
    assert seen == [True]
    assert fast is not None and fast["_source_row"].to_list() == [1, 2, 3, 4]


@settings(max_examples=examples(30), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(lines, max_size=6), min_size=2, max_size=5))
def test_generated_groups_of_files_give_each_file_line_by_line(tmp_path, files):
    d = tmp_path / "gen"
    d.mkdir(exist_ok=True)
    for old in d.iterdir():
        old.unlink()
    paths = [write(d, f"f{i}.jsonl", "\n".join(fl).encode("utf-8", "surrogatepass")) for i, fl in enumerate(files)]
    same(scan_json_fields(paths, tmp_path, KEYS).collect(), each_line_by_line(paths, tmp_path))


# --- compressed request logs (`<node>.jsonl.zst`, `.jsonl.gz`, as shippers write them) ---------

def compress(path: Path, codec: str) -> Path:
    """A compressed copy of `path` beside it (`x.jsonl` -> `x.jsonl.zst` / `x.jsonl.gz`)."""
    out = path.with_name(path.name + COMPRESSED_SUFFIX[codec])
    with pa.CompressedOutputStream(str(out), codec) as sink:
        sink.write(path.read_bytes())
    return out


def renamed(frame: pl.DataFrame, codec: str) -> pl.DataFrame:
    """The frame of the plain files as the compressed files' frame names them."""
    return frame.with_columns(pl.col("_source_file") + COMPRESSED_SUFFIX[codec])


COMPRESSED_SUFFIX = {"zstd": ".zst", "gzip": ".gz"}


@pytest.mark.parametrize("codec", ["zstd", "gzip"])
def test_compressed_files_give_the_frame_of_their_text(tmp_path, codec):
    """Clean, mixed, empty and unterminated files, compressed: the same rows as the plain files
    (named as the compressed file), clean ones by the fast path, the others line by line."""
    plain_dir, packed_dir = tmp_path / "plain", tmp_path / "packed"
    plain_dir.mkdir()
    packed_dir.mkdir()
    texts = {f"clean-{i}.jsonl": "\n".join([GOOD, line, GOOD]).encode() for i, line in enumerate(CLEAN_LINES.values())}
    texts |= {f"mixed-{i}.jsonl": ("\n".join(lines) + "\n").encode() for i, lines in enumerate(MIXED_FILES.values())}
    texts |= {"empty.jsonl": b"", "utf8.jsonl": GOOD.encode() + b'\n{"gen_ai.response.id": "r-\xff"}\n',
              "bom.jsonl": b"\xef\xbb\xbf" + GOOD.encode() + b"\n"}
    plain = [write(plain_dir, name, data) for name, data in texts.items()]
    packed = []
    for p in plain:
        packed.append(compress(p, codec).rename(packed_dir / (p.name + COMPRESSED_SUFFIX[codec])))
        assert line_count(packed[-1]) == line_count(p), p.name
    assert (packed_dir / f"empty.jsonl{COMPRESSED_SUFFIX[codec]}").stat().st_size > 0  # a compressed nothing
    expected = scan_json_fields(plain, tmp_path, KEYS).collect().with_columns(
        pl.col("_source_file").str.replace("plain/", "packed/", literal=True))
    assert expected.height > 40
    same(scan_json_fields(packed, tmp_path, KEYS).collect(), renamed(expected, codec))
    for path in packed:  # each file alone too, and line by line
        name = path.relative_to(tmp_path).as_posix().removesuffix(COMPRESSED_SUFFIX[codec])
        same(line_by_line(path, tmp_path), renamed(expected.filter(pl.col("_source_file") == name), codec), name)
    con = duckdb.connect()
    try:
        fast = dict(zip(packed, _json_fields_whole_files(con, packed, tmp_path, KEYS), strict=True))
    finally:
        con.close()
    assert all(fast[p] is not None for p in packed if p.name.startswith(("clean-", "bom.")))
    assert all(fast[p] is None for p in packed if p.name.startswith(("mixed-", "utf8.")))


@settings(max_examples=examples(30), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(lines, max_size=6), min_size=1, max_size=4), st.sampled_from(["zstd", "gzip"]))
def test_generated_compressed_files_give_the_frame_of_their_text(tmp_path, files, codec):
    d = tmp_path / "genz"
    d.mkdir(exist_ok=True)
    for old in d.iterdir():
        old.unlink()
    plain = [write(d, f"f{i}.jsonl", "\n".join(fl).encode("utf-8", "surrogatepass")) for i, fl in enumerate(files)]
    packed = [compress(p, codec) for p in plain]
    assert [line_count(p) for p in packed] == [line_count(p) for p in plain]
    same(scan_json_fields(packed, tmp_path, KEYS).collect(),
         renamed(scan_json_fields(plain, tmp_path, KEYS).collect(), codec))


def test_a_compressed_file_counts_as_the_text_it_holds_when_files_are_grouped(tmp_path):
    plain = write(tmp_path, "a.jsonl", (GOOD + "\n").encode() * 50)
    packed = compress(plain, "zstd")
    assert text_bytes(plain) == plain.stat().st_size
    assert text_bytes(packed) == packed.stat().st_size * COMPRESSION_RATIO
    assert ingest._file_groups([packed, plain], limit=packed.stat().st_size * COMPRESSION_RATIO) == [[packed], [plain]]


@pytest.mark.parametrize("codec", ["zstd", "gzip"])
def test_a_compressed_file_that_does_not_decompress_is_unreadable_and_the_group_still_read(tmp_path, codec):
    """A damaged compressed file (gzip: a flipped byte fails its CRC; zstd frames carry no checksum
    by default, so a zstd file is damaged in its header), a file cut short, and plain text named
    as compressed, among clean files: the fast path names them unreadable (its line count
    decompresses each file whole) instead of failing, and reads the others as it would without
    them; `scan_json_fields` leaves them out and names them, or raises UnreadableFile naming the
    file when not asked to name them."""
    (tmp_path / "g").mkdir()
    clean = [write(tmp_path / "g", f"clean-{i}.jsonl", "\n".join([GOOD] * 50).encode()) for i in range(3)]
    packed = [compress(p, codec) for p in clean]
    damaged = bytearray(packed[1].read_bytes())
    damaged[len(damaged) // 2 if codec == "gzip" else 4] ^= 0xFF
    bad = write(tmp_path / "g", "damaged.jsonl" + COMPRESSED_SUFFIX[codec], bytes(damaged))
    cut = write(tmp_path / "g", "cut.jsonl" + COMPRESSED_SUFFIX[codec], packed[2].read_bytes()[:-12])
    plain = write(tmp_path / "g", "plain.jsonl" + COMPRESSED_SUFFIX[codec], clean[0].read_bytes())
    good = [packed[0], packed[2]]
    paths = sorted([*good, bad, cut, plain])
    con = duckdb.connect()
    try:
        got = dict(zip(paths, _json_fields_whole_files(con, paths, tmp_path, KEYS), strict=True))
        alone = {p: _json_fields_whole_file(con, p, tmp_path, KEYS) for p in (bad, cut, plain)}
    finally:
        con.close()
    for p in (bad, cut, plain):
        assert isinstance(got[p], UnreadableFile) and isinstance(alone[p], UnreadableFile), p.name
        assert got[p].name == p.relative_to(tmp_path).as_posix()
    assert "is not " + codec + "-compressed" in got[plain].detail
    assert "cannot be decompressed as " + codec in got[bad].detail and "cannot be decompressed" in got[cut].detail, \
        (got[bad].detail, got[cut].detail)
    unreadable: dict[str, str] = {}
    same(scan_json_fields(paths, tmp_path, KEYS, unreadable=unreadable).collect(),
         scan_json_fields(good, tmp_path, KEYS).collect())
    assert sorted(unreadable) == sorted(p.relative_to(tmp_path).as_posix() for p in (bad, cut, plain))
    with pytest.raises(UnreadableFile, match="g/cut.jsonl"):
        scan_json_fields([cut], tmp_path, KEYS)


def test_redfish_sensor_fields_of_many_batches_open_no_database_each(tmp_path, monkeypatch):
    """The Redfish reader runs DuckDB once per batch of lines (the streaming engine cuts a file
    into batches): each call takes a cursor of the process's database, where a database opened
    per batch cost 24 ms of CPU (20 batches for a site-day's 14,400 readings: 0.65 CPU-s, 0.13-0.20
    now). 3 files of 5,000 lines each: line i of a file is `{"Id": "TotalPower", "Reading": i, ...}`
    except line 7, which is `[1]` (JSON, not an object: every field null, `_json_ok` false)."""
    for f in range(3):
        lines = [json.dumps({"Id": "TotalPower", "Reading": i, "ReadingUnits": "W",
                             "ReadingTime": "2026-10-31T00:00:17+00:00"}) for i in range(1, 5001)]
        lines[6] = "[1]"
        write(tmp_path, f"redfish_n{f}_2026-10-31.jsonl", ("\n".join(lines) + "\n").encode())
    json_lines._database()  # the process's database, opened once whatever the test order
    opened = []
    real_connect = duckdb.connect
    monkeypatch.setattr(duckdb, "connect", lambda *a, **k: opened.append(a) or real_connect(*a, **k))
    got = scan_redfish_sensors(sorted(tmp_path.glob("*.jsonl")), tmp_path).collect(engine="streaming")
    assert opened == []
    # 3 x 5,000 rows; 3 x 4,999 are objects; readings 1..5000 but 7 of each file: sum 3 x (12,502,500 - 7).
    assert got.height == 15_000
    assert got["_json_ok"].sum() == 14_997
    assert got.filter(pl.col("_source_row") == 7)["_id"].to_list() == [None] * 3
    assert got["_reading"].cast(pl.Int64).sum() == 3 * (5000 * 5001 // 2 - 7) == 37_507_479
    assert set(got["_units"].drop_nulls()) == {"W"}
