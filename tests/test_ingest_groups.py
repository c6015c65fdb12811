"""Raw files parsed group by group (bounded memory at scale) give exactly the outputs of one
pass over every file; and the quality runner's pandas frame keeps GX's results."""

import json
from datetime import date, datetime
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

import fleetsim
import pipelines.ingest as ingest
from lake import readers
from lake.inventory import load_inventory
from lake.store import Lake
from transforms.quality.runner import to_pandas, validate_frame
from transforms.quality.suites import REQUEST_COSTS_COLUMNS, SuiteContext

DAY = date(2026, 11, 24)
DATASETS = [("requests", "remote-plains"), ("power_readings", "remote-plains"), ("power_readings", "metro-east"),
            ("cost_lines", "cloud-use1"), ("assets", None)]


def test_file_groups_keep_whole_files_in_order(tmp_path):
    paths = []
    for i, size in enumerate([5, 5, 12, 1, 1, 9]):
        p = tmp_path / f"f{i}"
        p.write_bytes(b"x" * size)
        paths.append(p)
    groups = ingest._file_groups(paths, limit=10)
    assert [[p.name for p in g] for g in groups] == [["f0", "f1"], ["f2"], ["f3", "f4"], ["f5"]]
    assert ingest._file_groups([], limit=10) == [[]]


@pytest.fixture(scope="module")
def raw_day(tmp_path_factory):
    raw = tmp_path_factory.mktemp("groups") / "raw"
    fleetsim.simulate(raw, DAY, requests=20_000, seed=3, invoices=True)
    return raw


def _ingest_all(raw: Path, lake_root: Path) -> dict[str, tuple]:
    inv = load_inventory(raw / "inventory.yaml")
    lake = Lake(lake_root)
    outcomes = {}
    for dataset, site in DATASETS:
        out = ingest.ingest_partition(dataset, DAY, site, raw, lake, inv)
        outcomes[f"{dataset}/{site}"] = (out.rows_read, out.rows_accepted, out.by_reason, out.canonical_rows, out.files)
    return outcomes


def test_grouped_parse_gives_identical_outputs(raw_day, tmp_path, monkeypatch):
    whole = _ingest_all(raw_day, tmp_path / "whole")
    monkeypatch.setattr(ingest, "GROUP_BYTES", 1)  # every file its own group, spilled to scratch
    grouped = _ingest_all(raw_day, tmp_path / "grouped")
    assert grouped == whole
    files = sorted(p.relative_to(tmp_path / "whole") for p in (tmp_path / "whole").rglob("*.parquet")
                   if "_scratch" not in p.parts)
    assert files == sorted(p.relative_to(tmp_path / "grouped") for p in (tmp_path / "grouped").rglob("*.parquet")
                           if "_scratch" not in p.parts)
    assert any(f.parts[0] == "requests" for f in files)
    for f in files:
        a, b = pl.read_parquet(tmp_path / "whole" / f), pl.read_parquet(tmp_path / "grouped" / f)
        assert a.schema == b.schema and a.equals(b), f
    assert not list((tmp_path / "grouped" / "_scratch").glob("*.parquet"))  # spills removed


def test_date_columns_reach_gx_at_nanosecond_unit_with_the_same_verdicts(small_inventory):
    frame = pl.DataFrame({"d": [date(2026, 11, 24), date(2026, 11, 25), None]})
    assert str(to_pandas(frame)["d"].dtype) == "datetime64[ns]"
    far = pl.DataFrame({"d": [date(2026, 11, 24), date(3000, 1, 1)]})
    assert str(to_pandas(far)["d"].dtype) != "datetime64[ns]"  # outside the ns range: left as it was
    # request_costs.date.partition_day still judges every row and names the wrong day
    ctx = SuiteContext(inventory=small_inventory, day=date(2026, 11, 24))
    row = dict.fromkeys(REQUEST_COSTS_COLUMNS)
    facts = pl.DataFrame([row, row, row], schema=REQUEST_COSTS_COLUMNS).with_columns(
        pl.Series("date", [date(2026, 11, 24), date(2026, 11, 23), date(2026, 11, 25)]))
    res = validate_frame("request_costs", facts, ctx).result("request_costs.date.partition_day")
    assert (res.success, res.unexpected_count) == (False, 2)
    assert res.examples == [datetime(2026, 11, 23).isoformat(), datetime(2026, 11, 25).isoformat()]


def test_requests_keep_the_raw_files_order_and_rerun_the_same_bytes(raw_day, tmp_path, monkeypatch):
    """REQUESTS.raw_order: the canonical rows are the accepted lines in file-then-line order (no
    sort holding the day in memory), grouped or not, and a rerun writes the same bytes."""
    inv = load_inventory(raw_day / "inventory.yaml")
    monkeypatch.setattr(ingest, "GROUP_BYTES", 1)
    first = ingest.ingest_partition("requests", DAY, "remote-plains", raw_day, Lake(tmp_path / "a"), inv)
    again = ingest.ingest_partition("requests", DAY, "remote-plains", raw_day, Lake(tmp_path / "b"), inv)
    got = pl.read_parquet(first.paths["canonical"])["request_id"].to_list()
    assert Path(first.paths["canonical"]).read_bytes() == Path(again.paths["canonical"]).read_bytes()
    paths = sorted((raw_day / DAY.isoformat() / "remote-plains" / "requests").glob("*.jsonl"))
    assert len(paths) > 1
    in_files = [json.loads(line)["gen_ai.response.id"] for p in paths for line in p.read_text().splitlines()
                if line.strip() and line.lstrip().startswith("{") and _loads_or_none(line)]
    kept = set(got)
    assert got == [i for i in dict.fromkeys(in_files) if i in kept]


def _loads_or_none(line: str):
    try:
        return json.loads(line)
    except ValueError:
        return None


def test_sorted_datasets_sorted_in_key_ranges_give_the_same_file_content(raw_day, tmp_path, monkeypatch):
    """Power readings are sorted range by range of meters (bounded memory) and streamed into one
    file: the same rows, in the same order, as one sort of the whole partition."""
    inv = load_inventory(raw_day / "inventory.yaml")
    whole = ingest.ingest_partition("power_readings", DAY, "remote-plains", raw_day, Lake(tmp_path / "a"), inv)
    monkeypatch.setattr(ingest, "SORT_RANGE_ROWS", 5_000)
    ranged = ingest.ingest_partition("power_readings", DAY, "remote-plains", raw_day, Lake(tmp_path / "b"), inv)
    a, b = pl.read_parquet(whole.paths["canonical"]), pl.read_parquet(ranged.paths["canonical"])
    assert a.height > 20_000 and a.equals(b)
    assert b.sort("meter_id", "ts").equals(b)
    assert (whole.rows_accepted, whole.by_reason) == (ranged.rows_accepted, ranged.by_reason)
    assert not list((tmp_path / "b" / "_scratch").glob("*.parquet"))  # range files removed


def test_key_ranges_hold_at_most_the_limit_and_keep_a_large_key_whole():
    counts = pl.DataFrame({"k": ["a", "b", "c", "d", "e"], "n": [3, 3, 9, 1, 1]})
    assert ingest._key_ranges(counts, 6) == [("a", "b"), ("c", "c"), ("d", "e")]
    assert ingest._key_ranges(counts.head(0), 6) == []


def test_a_day_of_compressed_request_logs_ingests_as_the_plain_day(raw_day, tmp_path):
    """The simulator's zstd request logs (`<node>.jsonl.zst`) hold the plain logs' bytes, and
    their ingest writes the same lake: the same accepted rows in the same order, the same
    quarantine, naming the compressed file."""
    packed = tmp_path / "raw-zstd"
    fleetsim.simulate(packed, DAY, requests=20_000, seed=3, invoices=True, compress="zstd")
    site = "remote-plains"
    logs = sorted((raw_day / DAY.isoformat() / site / "requests").glob("*"))
    assert logs and all(p.suffix == ".jsonl" for p in logs)
    for p in logs:
        z = packed / DAY.isoformat() / site / "requests" / f"{p.name}.zst"
        with pa.input_stream(str(z), compression="zstd") as s:
            assert s.read() == p.read_bytes(), z
    inv = load_inventory(raw_day / "inventory.yaml")
    plain_out = ingest.ingest_partition("requests", DAY, site, raw_day, Lake(tmp_path / "plain"), inv)
    packed_out = ingest.ingest_partition("requests", DAY, site, packed, Lake(tmp_path / "packed"), inv)
    assert packed_out.files == [f"{f}.zst" for f in plain_out.files]
    assert (packed_out.rows_read, packed_out.rows_accepted, packed_out.by_reason) == \
        (plain_out.rows_read, plain_out.rows_accepted, plain_out.by_reason)
    assert plain_out.by_reason  # the simulator's defects are quarantined, with their files named
    files = sorted(p.relative_to(tmp_path / "plain") for p in (tmp_path / "plain").rglob("*.parquet")
                   if "_scratch" not in p.parts)
    assert {f.parts[0] for f in files} >= {"requests", "quarantine"}
    for f in files:
        a, b = pl.read_parquet(tmp_path / "plain" / f), pl.read_parquet(tmp_path / "packed" / f)
        if "source_file" in b.columns:  # the quarantine and the audit name the file read
            b = b.with_columns(pl.col("source_file").str.replace(r"\.jsonl\.zst$", ".jsonl"))
        assert a.schema == b.schema and a.equals(b), f


def test_next_group_is_read_ahead_while_this_one_is_parsed(raw_day, tmp_path, monkeypatch):
    """The disk reads group n+1 while group n is parsed (`lake.readers.prefetch`): with every file
    its own group, files f1..fk give prefetch f2, parse f1, prefetch f3, parse f2, ..., parse fk (k - 1
    read-aheads: none before the first group, which DuckDB reads at once, none after the last), and
    each read-ahead reads the whole file: its size in bytes."""
    inv = load_inventory(raw_day / "inventory.yaml")
    paths = sorted((raw_day / DAY.isoformat() / "remote-plains" / "requests").glob("*.jsonl"))
    assert len(paths) >= 3
    events: list[tuple[str, list[str]]] = []
    read: list[tuple[str, int]] = []
    real_prefetch, real_parse, real_read = ingest.prefetch, ingest._parse_group, readers.read_ahead

    def prefetch(group):
        events.append(("prefetch", [p.name for p in group]))
        thread = real_prefetch(group)
        thread.join()  # the hint is given before the test looks (in a run nobody waits for it)
        return thread

    def parse(src, group, *args):
        events.append(("parse", [p.name for p in group]))
        return real_parse(src, group, *args)

    def read_ahead(path):
        read.append((path.name, real_read(path)))
        return read[-1][1]

    monkeypatch.setattr(ingest, "GROUP_BYTES", 1)  # every file its own group
    monkeypatch.setattr(ingest, "prefetch", prefetch)
    monkeypatch.setattr(ingest, "_parse_group", parse)
    monkeypatch.setattr(readers, "read_ahead", read_ahead)
    out = ingest.ingest_partition("requests", DAY, "remote-plains", raw_day, Lake(tmp_path), inv)
    names = [p.name for p in paths]
    expected = [e for i, n in enumerate(names) for e in
                ([("prefetch", [names[i + 1]])] if i + 1 < len(names) else []) + [("parse", [n])]]
    assert events == expected
    assert len([e for e in events if e[0] == "prefetch"]) == len(names) - 1
    assert read == [(p.name, p.stat().st_size) for p in paths[1:]]
    assert out.rows_read > 0 and out.files == [f"{DAY.isoformat()}/remote-plains/requests/{n}" for n in names]


def test_prefetch_of_a_missing_file_does_nothing(tmp_path):
    """A file gone between the listing and its read-ahead: 0 bytes read ahead (its own read will
    say what happened), the thread ends, nothing is raised; no file, no thread. A file of 3 bytes
    reads 3 (1 MiB chunks: one)."""
    thread = readers.prefetch([tmp_path / "gone.jsonl"])
    assert thread is not None
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert readers.prefetch([]) is None
    assert readers.read_ahead(tmp_path / "gone.jsonl") == 0
    (tmp_path / "three").write_bytes(b"abc")
    assert readers.read_ahead(tmp_path / "three") == 3


def test_lines_counted_while_read_ahead_are_the_counts_of_the_file_read_again(tmp_path, monkeypatch):
    """A plain file's lines are counted as it is read ahead, and `line_count` takes that count
    (once) instead of reading the file again; a file changed after its read-ahead is counted anew.
    Hand counts: b"a\\nb\\nc" is 3 lines (2 newlines + the last line without one), 5 bytes; a
    file of 2,500,000 bytes ("x" * 9 + "\\n", 250,000 times: three 1 MiB chunks) is 250,000
    lines; b"a\\nb\\nc\\nd\\n" (rewritten, 8 bytes) is 4 lines; an empty file 0."""
    small, big, empty = tmp_path / "small.jsonl", tmp_path / "big.jsonl", tmp_path / "empty.jsonl"
    small.write_bytes(b"a\nb\nc")
    big.write_bytes(b"xxxxxxxxx\n" * 250_000)
    empty.write_bytes(b"")
    assert [readers.read_ahead(p) for p in (small, big, empty)] == [5, 2_500_000, 0]
    reads: list[str] = []
    real = readers._read_counting

    def counting(f, buffer):
        reads.append(Path(f.name).name)
        return real(f, buffer)

    monkeypatch.setattr(readers, "_read_counting", counting)
    assert [readers.line_count(p) for p in (small, big, empty)] == [3, 250_000, 0]
    assert reads == []  # every count was made during the read-ahead
    assert readers.line_count(small) == 3 and reads == ["small.jsonl"]  # taken once, then read again
    readers.read_ahead(small)  # counted 3 again, on the way
    reads.clear()
    small.write_bytes(b"a\nb\nc\nd\n")  # rewritten after its read-ahead: another size and time
    assert readers.line_count(small) == 4 and reads == ["small.jsonl"]
