"""The quality suites' fixed cost cut without changing a result: GX's metric ids of plain keyword
arguments skip its JSON conversion (`gx_private.plain_ids_fast`), our engine takes an in-memory
frame without measuring it (`gx_private.frames_taken_as_they_are`), and the process-wide GX
context, datasource and batch definition are reused from one validation to the next. Real GX on
real Parquet, against GX as shipped and against a fresh process."""

import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
from great_expectations.core.batch_spec import RuntimeDataBatchSpec
from great_expectations.core.id_dict import IDDict
from great_expectations.execution_engine import pandas_execution_engine
from great_expectations.expectations.expectation_configuration import ExpectationConfiguration
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.suites import validate_partition
from tests.conftest import examples
from tests.test_quality_batches import BATCH, WHOLE, requests_with_defects, write
from tests.test_quality_suites import DAY, FIXTURES, drilled
from transforms.quality import gx_private
from transforms.quality.runner import _batch_definition, _gx_validate, to_pandas
from transforms.quality.suites import SUITES, SuiteContext, prepare

ROOT = Path(__file__).resolve().parents[1]


def shipped_id(d: dict, **kw):
    return gx_private.TO_ID(IDDict(d), **kw)


def test_plain_id_is_gx_md5_of_the_sorted_json():
    # Hand-computed: GX's id of {"column": "queue_s", "mostly": 1.0, "row_condition": None} is the
    # md5 of the sorted JSON '{"column": "queue_s", "mostly": 1.0, "row_condition": null}'.
    d = {"row_condition": None, "mostly": 1.0, "column": "queue_s"}
    text = '{"column": "queue_s", "mostly": 1.0, "row_condition": null}'
    want = hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()
    assert gx_private.fast_to_id(IDDict(d)) == shipped_id(d) == want
    # One key: GX's "key=value", no md5; ignored keys left out as GX does.
    assert gx_private.fast_to_id(IDDict({"column": "a"})) == "column=a"
    assert gx_private.fast_to_id(IDDict(d), id_ignore_keys={"mostly", "row_condition"}) == "column=queue_s"
    # Not plain (a numpy integer, a NaN, an int key): GX's own conversion decides.
    for odd in ({"a": np.int64(3), "b": 1}, {"a": math.nan, "b": 1}, {"a": {1: "x"}, "b": 1}):
        assert not all(gx_private.is_plain(v) for v in odd.values())
        assert gx_private.fast_to_id(IDDict(odd)) == shipped_id(odd)


_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=8),
                    st.sampled_from([np.int64(7), np.float64(0.25), np.bool_(True)]))
_VALUE = st.recursive(_SCALAR, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.tuples(inner, inner),
    st.dictionaries(st.one_of(st.text(max_size=4), st.integers()), inner, max_size=3)), max_leaves=8)


@settings(max_examples=examples(200))
@given(st.dictionaries(st.text(max_size=6), _VALUE, max_size=5), st.sets(st.text(max_size=6), max_size=2))
def test_fast_id_equals_gx_to_id(d, ignored):
    """Any keyword arguments, plain or not (numpy scalars, NaN, int keys, nesting): the same id."""
    assert gx_private.fast_to_id(IDDict(d)) == shipped_id(d)
    assert gx_private.fast_to_id(IDDict(d), id_ignore_keys=ignored) == shipped_id(d, id_ignore_keys=ignored)


def as_json(results) -> dict:
    return {name: json.dumps(r.to_json_dict(), default=str, sort_keys=True) for name, r in results.items()}


@pytest.mark.parametrize("suite", sorted(FIXTURES))
def test_fast_ids_and_domain_objects_equal_gx_as_shipped(suite, small_inventory, monkeypatch):
    """Every failure drill of the suite, validated with the fast ids and the Expectations built
    once per configuration, and with GX's own `to_id` and `to_domain_obj`: field for field the
    same; GX's methods are back after the run, and fewer Expectations were built."""
    ctx = SuiteContext(inventory=small_inventory, day=DAY)
    clean, mutated = drilled(suite)
    pdf = to_pandas(prepare(suite, pl.concat([clean, *mutated]).lazy(), ctx).collect())
    expectations = [c.expectation for c in SUITES[suite](ctx)]
    calls = {"fast": 0, "built": 0}
    fast_to_id, build = gx_private.fast_to_id, gx_private.TO_DOMAIN_OBJ

    def counted(self, *a, **kw):
        calls["fast"] += 1
        return fast_to_id(self, *a, **kw)

    def built(self):
        calls["built"] += 1
        return build(self)

    monkeypatch.setattr(gx_private, "fast_to_id", counted)
    monkeypatch.setattr(gx_private, "TO_DOMAIN_OBJ", built)
    fast = _gx_validate(suite, expectations, pdf)
    fast_built = calls["built"]
    assert calls["fast"] > 100 and IDDict.to_id is gx_private.TO_ID
    assert ExpectationConfiguration.to_domain_obj is built  # GX's (here counted) method put back
    monkeypatch.setattr(gx_private, "TO_ID", None)  # as shipped: GX's own to_id and to_domain_obj
    monkeypatch.setattr(gx_private, "TO_DOMAIN_OBJ", None)
    monkeypatch.setattr(ExpectationConfiguration, "to_domain_obj", built)
    calls["built"] = 0
    shipped = _gx_validate(suite, expectations, pdf)
    # Each expectation's Expectation is built once for its metrics and the GX's run (2 configurations:
    # the suite's and GX's evaluated copy), against about 10 per expectation as shipped.
    assert 0 < fast_built <= 2 * len(expectations) and fast_built * 3 < calls["built"]
    assert any(not r.success for r in shipped.values())
    assert as_json(fast) == as_json(shipped)


FRESH = """
import json, sys
from pathlib import Path
from datetime import date
from lake.inventory import load_inventory
from pipelines.suites import validate_partition
inv = load_inventory(Path(sys.argv[2]))
out = [validate_partition(Path(sys.argv[1]), "requests", date(2026, 11, 24), inv, "metro-east", batch_rows=b).as_dict()
       for b in (int(sys.argv[3]), int(sys.argv[4]))]
print(json.dumps([{k: v for k, v in r.items() if k != "seconds"} for r in out], sort_keys=True, default=str))
"""


def test_two_validations_in_one_process_equal_fresh_ones(tmp_path, small_inventory):
    """The same partition validated twice in this process (whole, then in batches, then both
    again: the GX context, datasource and batch definition reused) gives what a fresh process
    gives, field for field."""
    lake = tmp_path / "lake"
    write(lake, "requests", requests_with_defects(), "metro-east")
    here = []
    for _ in range(2):
        for b in (WHOLE, BATCH):
            r = validate_partition(lake, "requests", DAY, small_inventory, "metro-east", batch_rows=b).as_dict()
            here.append({k: v for k, v in r.items() if k != "seconds"})
    assert here[:2] == here[2:]
    # Hand-built defects (tests/test_quality_batches.py): 6 negative output_tokens, 6 rows of
    # duplicated request ids (3 pairs), 2 null tenants, out of 3,500 rows.
    counts = {r["name"]: r["unexpected_count"] for r in here[0]["results"]}
    assert (here[0]["rows"], counts["requests.output_tokens.non_negative"], counts["requests.key.unique"],
            counts["requests.tenant_id.not_null"]) == (3_500, 6, 6, 2)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    inventory = ROOT / "tests" / "data" / "inventory_small.yaml"
    fresh = subprocess.run([sys.executable, "-c", FRESH, str(lake), str(inventory), str(WHOLE), str(BATCH)],
                           cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert json.loads(fresh.stdout.strip().splitlines()[-1]) == json.loads(json.dumps(here[:2], default=str))


@pytest.mark.parametrize("suite", sorted(FIXTURES))
def test_frames_taken_as_they_are_equal_gx_as_shipped(suite, small_inventory, monkeypatch):
    """`gx_private.frames_taken_as_they_are` (our engine takes an in-memory frame without GX's
    `memory_usage`, computed only to compare with a fingerprint threshold of 0) changes no result:
    every failure drill of the suite, field for field against GX's own `get_batch_data_and_markers`;
    pandas measured the frame twice per validation as shipped, never with it."""
    ctx = SuiteContext(inventory=small_inventory, day=DAY)
    clean, mutated = drilled(suite)
    pdf = to_pandas(prepare(suite, pl.concat([clean, *mutated]).lazy(), ctx).collect())
    expectations = [c.expectation for c in SUITES[suite](ctx)]
    measured = {"n": 0}
    memory_usage = pd.DataFrame.memory_usage

    def counted(self, *a, **kw):
        measured["n"] += 1
        return memory_usage(self, *a, **kw)

    monkeypatch.setattr(pd.DataFrame, "memory_usage", counted)
    engine = gx_private._engine(_batch_definition())
    assert "get_batch_data_and_markers" in vars(engine)  # ours, on this engine only
    fast = _gx_validate(suite, expectations, pdf)
    assert measured["n"] == 0
    monkeypatch.delattr(engine, "get_batch_data_and_markers")  # as shipped: GX's method of the class
    shipped = _gx_validate(suite, expectations, pdf)
    assert measured["n"] == 2  # GX's get_batch_data_and_markers, twice per validation
    assert any(not r.success for r in shipped.values())
    assert as_json(fast) == as_json(shipped)


def test_frames_taken_as_they_are_leave_anything_else_to_gx(monkeypatch):
    """A fingerprint wanted (threshold above 0) or a batch spec other than an in-memory frame goes
    to GX's own method: the fingerprint marker is there again."""
    engine = gx_private._engine(_batch_definition())
    frame = pd.DataFrame({"a": [1, 2, 3]})
    data, markers = engine.get_batch_data_and_markers(RuntimeDataBatchSpec(batch_data=frame))
    assert data.dataframe is frame and set(markers) == {"ge_load_time"}
    monkeypatch.setattr(pandas_execution_engine, "HASH_THRESHOLD", 1e9)
    data, markers = engine.get_batch_data_and_markers(RuntimeDataBatchSpec(batch_data=frame))
    assert data.dataframe is frame and set(markers) == {"ge_load_time", "pandas_data_fingerprint"}
