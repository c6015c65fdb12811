"""A partition validated in bounded row batches gives exactly the SuiteResult of validating it
whole: defects spread over several batches (counts summed, the first examples in file order),
a duplicate key split across two batches, more duplicates than examples, the row count
against the previous day, nullable and Date columns converted as the whole file would be."""

import json
from datetime import timedelta

import great_expectations.expectations as gxe
import pandas as pd
import polars as pl
import pytest

import pipelines.suites as suites_module
import transforms.quality.batched as batched
from lake.store import Lake
from pipelines.suites import run_suite_on_files, validate_partition
from tests.test_quality_suites import (
    DAY,
    FIXTURES,
    assets_frame,
    drilled,
    power_frame,
    request_costs_frame,
    requests_frame,
    set_row,
)
from transforms.quality import gx_private
from transforms.quality.runner import (
    _NULLABLE,
    _arrow_to_pandas,
    _gx_validate,
    _own_columns,
    gx_validate_by_columns,
    to_pandas,
)
from transforms.quality.suites import SUITES, SuiteContext, prepare

BATCH = 1_000
WHOLE = 10**9


def tile(frame: pl.DataFrame, n: int, key: str, step=None) -> pl.DataFrame:
    """`frame` repeated to `n` rows, `key` made unique per copy (a string suffix, or `step`
    times the copy added)."""
    k = n // frame.height + 1
    copies = []
    for i in range(k):
        bump = (pl.col(key) + f"-{i}") if step is None else (pl.col(key) + step * i)
        copies.append(frame.with_columns(bump.alias(key)))
    return pl.concat(copies).head(n)


def defects(df: pl.DataFrame, rows_by_col: dict[str, tuple[list[int], object]]) -> pl.DataFrame:
    """Set `col` at `rows` to `value` (a list: one value per row)."""
    for col, (rows, value) in rows_by_col.items():
        values = value if isinstance(value, list) else [value] * len(rows)
        for r, v in zip(rows, values, strict=True):
            df = set_row(col, v, row=r)(df)
    return df


def copy_key(df: pl.DataFrame, key: list[str], pairs: list[tuple[int, int]]) -> pl.DataFrame:
    """Row `dst` takes the key of row `src`: a duplicate key, wherever the two rows fall."""
    for src, dst in pairs:
        for c in key:
            df = set_row(c, df[c][src], row=dst)(df)
    return df


def write(lake, suite, frame, site=None, day=DAY, parts=1):
    d = Lake(lake).partition_dir(suite, day, site)
    d.mkdir(parents=True, exist_ok=True)
    step = -(-frame.height // parts)
    for i in range(parts):
        frame.slice(i * step, step).write_parquet(d / f"part-{i}.parquet", row_group_size=700)
    return d


def same(batched, whole):
    assert batched.rows == whole.rows and batched.partition == whole.partition
    for b, w in zip(batched.results, whole.results, strict=True):
        assert b == w, (b, w)
    assert batched.results == whole.results


def requests_with_defects(n=3_500):
    df = tile(requests_frame(), n, "request_id")
    df = defects(df, {
        "output_tokens": ([5, 999, 1000, 2400, 2401, 3499], [-1, -2, -3, -4, -5, -6]),  # > EXAMPLES, 3 batches
        "tenant_id": ([10, 2500], None),
        "status": ([1500], "done"),
        "completed_at": ([3000], DAY_END + timedelta(seconds=5)),
        "queue_s": ([42, 1042], [-1.0, -2.0]),
        "request_id": ([50, 1600], None),  # null ids: not duplicates of each other (GX ignores them)
    })
    # A duplicate split across the first two batches (rows 999 and 1000), one inside the third
    # batch, one from the first batch to the last: 6 rows of duplicated ids, more than EXAMPLES.
    return copy_key(df, ["request_id"], [(999, 1000), (2100, 2200), (3, 3498)])


DAY_END = requests_frame()["completed_at"][0].replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)


@pytest.mark.parametrize("parts", [1, 3])
def test_requests_in_batches_equal_the_whole_partition(tmp_path, small_inventory, parts):
    lake = tmp_path / "lake"
    frame = requests_with_defects()
    write(lake, "requests", frame, "metro-east", parts=parts)
    write(lake, "requests", frame.head(300), "metro-east", day=DAY - timedelta(days=1))  # row count: > 5x
    whole = validate_partition(lake, "requests", DAY, small_inventory, "metro-east", batch_rows=WHOLE)
    batched = validate_partition(lake, "requests", DAY, small_inventory, "metro-east", batch_rows=BATCH)
    same(batched, whole)
    key = whole.result("requests.key.unique")
    assert (key.success, key.unexpected_count) == (False, 6)
    assert key.examples == [frame["request_id"][i] for i in (3, 999, 1000, 2100, 2200)]
    neg = whole.result("requests.output_tokens.non_negative")
    assert (neg.unexpected_count, neg.examples) == (6, [-1, -2, -3, -4, -5])
    assert not whole.result("requests.row_count.vs_previous_day").success
    assert {r.name for r in whole.results if not r.success} == {
        "requests.key.unique", "requests.output_tokens.non_negative", "requests.tenant_id.not_null",
        "requests.status.allowed", "requests.completed_at.inside_partition_day", "requests.queue_s.non_negative",
        "requests.row_count.vs_previous_day", "requests.request_id.not_null"}


def test_clean_requests_in_batches_equal_the_whole_partition(tmp_path, small_inventory):
    lake = tmp_path / "lake"
    write(lake, "requests", tile(requests_frame(), 2_600, "request_id"), "metro-east")
    whole = validate_partition(lake, "requests", DAY, small_inventory, "metro-east", batch_rows=WHOLE)
    same(validate_partition(lake, "requests", DAY, small_inventory, "metro-east", batch_rows=BATCH), whole)
    assert whole.success and not whole.warnings


def test_compound_key_and_reference_columns_in_batches(tmp_path, small_inventory):
    # power_readings: (meter_id, ts) key, the nameplate join of `prepare`, a nullable Int16
    # column whose only nulls sit in one batch, timestamps in the examples.
    lake = tmp_path / "lake"
    base = power_frame().with_columns(pl.lit(1, pl.Int16).alias("gpu_index"))
    frame = tile(base, 3_000, "ts", step=timedelta(seconds=0.001))
    frame = defects(frame, {"power_w": ([0, 1400, 2999], 50_000.0), "gpu_index": ([2500], None)})
    frame = copy_key(frame, ["meter_id", "ts"], [(1000, 999), (4, 2004), (8, 2008)])
    frame = defects(frame, {"ts": ([100, 1100, 1700, 2700], None)})  # half-missing keys are still compared
    frame = defects(frame, {"meter_id": ([1700, 2700], None)})  # wholly missing ones are not
    write(lake, "power_readings", frame, "cloud-use1")
    whole = validate_partition(lake, "power_readings", DAY, small_inventory, "cloud-use1", batch_rows=WHOLE)
    same(validate_partition(lake, "power_readings", DAY, small_inventory, "cloud-use1", batch_rows=BATCH), whole)
    key = whole.result("power_readings.key.unique")
    assert (key.success, key.unexpected_count, len(key.examples)) == (False, 8, 5)


@pytest.mark.parametrize("suite, build, key", [("assets", assets_frame, "asset_id"),
                                               ("request_costs", request_costs_frame, "request_id")])
def test_date_columns_in_batches(tmp_path, small_inventory, suite, build, key):
    lake = tmp_path / "lake"
    frame = tile(build(), 2_500, key)
    if suite == "assets":  # nullable Int32 with nulls in one batch only; a Date only the last batch has
        frame = defects(frame, {"useful_life_months": ([1800], None), "disposal_date": ([2499], DAY)})
    else:
        frame = defects(frame, {"date": ([1200, 2300], DAY - timedelta(days=1))})
    frame = copy_key(frame, [key], [(999, 1000)])
    write(lake, suite, frame)
    whole = validate_partition(lake, suite, DAY, small_inventory, batch_rows=WHOLE)
    same(validate_partition(lake, suite, DAY, small_inventory, batch_rows=BATCH), whole)
    assert not whole.result(f"{suite}.key.unique").success


def test_files_outside_the_lake_in_batches(tmp_path, small_inventory):
    d = write(tmp_path, "requests", requests_with_defects(), "x", parts=2)
    files = sorted(d.glob("*.parquet"))
    whole = run_suite_on_files("requests", files, small_inventory, DAY, previous=3_000, batch_rows=WHOLE)
    same(run_suite_on_files("requests", files, small_inventory, DAY, previous=3_000, batch_rows=300), whole)


@pytest.mark.parametrize("suite", sorted(FIXTURES))
def test_a_few_columns_at_a_time_equal_the_whole_frame(suite, small_inventory):
    """GX given a batch a few columns at a time (`gx_validate_by_columns`) reports what it reports
    on the whole frame, field for field: on one frame holding every failure drill of the suite."""
    ctx = SuiteContext(inventory=small_inventory, day=DAY)
    clean, mutated = drilled(suite)  # drills that drop or retype a column stand apart
    frame = prepare(suite, pl.concat([clean, *mutated]).lazy(), ctx).collect()
    expectations = [c.expectation for c in SUITES[suite](ctx)]
    whole = _gx_validate(suite, expectations, to_pandas(frame))
    parts = gx_validate_by_columns(suite, expectations, frame, to_pandas)
    assert whole.keys() == parts.keys()
    assert any(not r.success for r in whole.values())
    for name in whole:
        same_result = [json.dumps(r.result, default=str, sort_keys=True) for r in (parts[name], whole[name])]
        assert parts[name].success == whole[name].success and same_result[0] == same_result[1], name
    # Row conditions count among an expectation's columns; most expectations run narrowed.
    narrowed = [e for e in expectations if _own_columns(e)]
    assert len(narrowed) >= len(expectations) - 2
    conditioned = {_own_columns(e) for e in narrowed if getattr(e, "row_condition", None)}
    if suite == "cost_lines":  # billed_amount >= 0 where charge_category is a spend
        assert ("billed_amount", "charge_category") in conditioned


@pytest.mark.parametrize("suite", sorted(FIXTURES))
def test_configurations_built_once_equal_gx_as_shipped(suite, small_inventory, monkeypatch):
    """`gx_private.configurations_built_once` (each expectation's configuration built once per
    validation, not on every read) changes no result: every failure drill of the suite, validated
    with it and with GX's own property, field for field."""
    ctx = SuiteContext(inventory=small_inventory, day=DAY)
    clean, mutated = drilled(suite)
    pdf = to_pandas(prepare(suite, pl.concat([clean, *mutated]).lazy(), ctx).collect())
    expectations = [c.expectation for c in SUITES[suite](ctx)]
    original = gxe.Expectation.configuration
    builds = {"n": 0}

    def counted(self):
        builds["n"] += 1
        return original.fget(self)

    monkeypatch.setattr(gx_private, "CONFIGURATION", property(counted))
    fast = _gx_validate(suite, expectations, pdf)
    fast_builds = builds["n"]
    assert gxe.Expectation.configuration is gx_private.CONFIGURATION  # put back after the run
    monkeypatch.setattr(gx_private, "CONFIGURATION", None)  # as shipped: GX's property, built on every read
    monkeypatch.setattr(gxe.Expectation, "configuration", property(counted))
    builds["n"] = 0
    shipped = _gx_validate(suite, expectations, pdf)
    assert 0 < fast_builds * 5 < builds["n"]  # 510 against 4,326 on the requests suite
    assert fast.keys() == shipped.keys() and any(not r.success for r in shipped.values())
    for name in shipped:
        pair = [json.dumps(r.to_json_dict(), default=str, sort_keys=True) for r in (fast[name], shipped[name])]
        assert pair[0] == pair[1], name


@pytest.mark.parametrize("suite, site, build", [("requests", "metro-east", requests_with_defects),
                                                ("power_readings", "cloud-use1", None)])
def test_one_batch_read_once_equals_the_whole_partition(tmp_path, small_inventory, monkeypatch, suite, site, build):
    """A partition larger than WHOLE_ROWS that fits one batch is read once: the batch is the frame
    the key uniqueness and the conversion plan are judged on (no second read). Same SuiteResult as
    validating it whole, and as in batches of 1,000 rows."""
    lake = tmp_path / "lake"
    if build is None:  # power readings: the nameplate join of `prepare`, a duplicated (meter_id, ts)
        base = power_frame().with_columns(pl.lit(1, pl.Int16).alias("gpu_index"))
        frame = tile(base, 2_500, "ts", step=timedelta(seconds=0.001))
        frame = copy_key(defects(frame, {"power_w": ([7, 2100], 50_000.0)}), ["meter_id", "ts"], [(10, 2400)])
    else:
        frame = build()
    write(lake, suite, frame, site, parts=2)
    whole = validate_partition(lake, suite, DAY, small_inventory, site, batch_rows=WHOLE)  # WHOLE_ROWS: one frame
    reads = []
    read_files, iter_batches = suites_module.read_files, suites_module.iter_batches
    monkeypatch.setattr(suites_module, "read_files", lambda *a: reads.append("scan") or read_files(*a))
    monkeypatch.setattr(suites_module, "iter_batches", lambda *a: reads.append("batches") or iter_batches(*a))
    monkeypatch.setattr(suites_module, "WHOLE_ROWS", 100)  # 2,500-3,500 rows: more than a whole frame, one batch
    once = validate_partition(lake, suite, DAY, small_inventory, site, batch_rows=WHOLE)
    assert reads == ["scan"]  # read once, as one frame (twice as batches: a scan and the batches)
    same(once, whole)
    same(validate_partition(lake, suite, DAY, small_inventory, site, batch_rows=BATCH), whole)
    assert reads == ["scan", "scan", "batches"]
    key = whole.result(f"{suite}.key.unique")
    # requests: 3 pairs and a chain of copied ids (tests above): 6 rows; power: rows 10 and 2400.
    assert (key.success, key.unexpected_count) == (False, 6 if suite == "requests" else 2)


def test_duplicates_found_across_hash_partitions(monkeypatch):
    """Past PARTITION_KEYS rows the key hashes are grouped one hash partition at a time (spilled,
    `__hash % K`): duplicates in different partitions are all found, counted and shown in file
    order. 8 rows, PARTITION_KEYS 2: K = ceil(8 / 2) = 4 partitions. Keys a (rows 0, 2), b (rows
    1, 4, 5): 2 + 3 = 5 duplicated rows; c (row 3) once; the two nulls (rows 6, 7) are not
    compared (GX ignores missing values). Examples: the rows 0, 1, 2, 4, 5 -> a, b, a, b, b."""
    monkeypatch.setattr(batched, "PARTITION_KEYS", 2)
    frame = pl.LazyFrame({"request_id": ["a", "b", "a", "c", "b", "b", None, None]})
    exp = gxe.ExpectColumnValuesToBeUnique(column="request_id")
    hashes = frame.select(pl.struct(["request_id"]).hash()).collect().to_series()
    assert len({hashes[0] % 4, hashes[1] % 4}) == 2  # a and b fall in different partitions
    count, first = batched.duplicates(frame, exp)
    assert (count, first["request_id"].to_list()) == (5, ["a", "b", "a", "b", "b"])
    monkeypatch.setattr(batched, "PARTITION_KEYS", 100)  # one group-by in memory: the same answer
    assert batched.duplicates(frame, exp)[0] == 5


@pytest.mark.parametrize("partition_keys", [500, 10**9])
def test_key_uniqueness_in_hash_partitions_equals_the_whole_partition(tmp_path, small_inventory, monkeypatch,
                                                                      partition_keys):
    """The requests with defects (3,500 rows) in batches of 1,000 with the key hashes grouped in
    ceil(3,500 / 500) = 7 spilled partitions, or in one: the SuiteResult GX gives on the whole
    partition. Duplicated ids: the pairs (999, 1000), (2100, 2200), (3, 3498): 6 rows; examples
    the ids of rows 3, 999, 1000, 2100, 2200 (file order), as GX formats them."""
    lake = tmp_path / "lake"
    frame = requests_with_defects()
    write(lake, "requests", frame, "metro-east", parts=2)
    whole = validate_partition(lake, "requests", DAY, small_inventory, "metro-east", batch_rows=WHOLE)
    monkeypatch.setattr(batched, "PARTITION_KEYS", partition_keys)
    spilled = []
    sink = pl.LazyFrame.sink_ipc
    monkeypatch.setattr(pl.LazyFrame, "sink_ipc",
                        lambda self, path, **kw: spilled.append(path) or sink(self, path, **kw))
    folders = []  # the spill's temporary folder: in the lake's scratch, removed after
    temporary = batched.tempfile.TemporaryDirectory
    monkeypatch.setattr(batched.tempfile, "TemporaryDirectory",
                        lambda **kw: folders.append(kw["dir"]) or temporary(**kw))
    same(validate_partition(lake, "requests", DAY, small_inventory, "metro-east", batch_rows=BATCH), whole)
    assert len(spilled) == (partition_keys == 500)
    assert folders == ([lake / "_scratch"] if partition_keys == 500 else [])
    assert not list((lake / "_scratch").glob("inferledger-quality-*"))
    ids = frame["request_id"]
    dup_parts = {h % 7 for h in pl.Series([ids[3], ids[999], ids[2100]]).to_frame("request_id")
                 .select(pl.struct(["request_id"]).hash()).to_series()}
    assert len(dup_parts) >= 2  # the three duplicated ids are not all in one partition
    key = whole.result("requests.key.unique")
    assert (key.success, key.unexpected_count) == (False, 6)
    assert key.examples == [ids[i] for i in (3, 999, 1000, 2100, 2200)]


@pytest.mark.parametrize("suite", sorted(FIXTURES))
def test_pandas_from_arrow_chunks_equals_polars_to_pandas(suite, small_inventory):
    """`runner._arrow_to_pandas` (pyarrow's `to_pandas` of the frame's Arrow chunks as they are)
    gives the frame Polars's `to_pandas` gives (it rechunks first): same dtypes, same values, on
    every failure drill of the suite (nulls, bad values) in a frame of several chunks, plain and
    with the nullable dtypes; and a Categorical column goes through Polars."""
    ctx = SuiteContext(inventory=small_inventory, day=DAY)
    clean, mutated = drilled(suite)
    frame = prepare(suite, pl.concat([clean, *mutated, clean], rechunk=False).lazy(), ctx).collect()
    assert max(frame[c].n_chunks() for c in frame.columns) > 1
    for kwargs in ({}, {"types_mapper": _NULLABLE.get}):
        ours, polars = _arrow_to_pandas(frame, **kwargs), frame.to_pandas(**kwargs)
        assert ours.dtypes.equals(polars.dtypes)
        pd.testing.assert_frame_equal(ours, polars, check_exact=True)
    categorical = frame.head(3).with_columns(pl.lit("x", pl.Categorical).alias("cat"))
    pd.testing.assert_frame_equal(_arrow_to_pandas(categorical), categorical.to_pandas(), check_exact=True)
