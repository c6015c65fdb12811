"""The shared judgements every input goes through: required fields, partition day, duplicates."""

from datetime import date, datetime, UTC

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import examples
from transforms.contracts import ASSETS, POWER_READINGS
from transforms.ingest.canonical import parse_canonical
from transforms.ingest.common import _parse_utc_general, accepted, audit, classify, parse_utc, quarantined

DAY = date(2026, 11, 24)


def _register(rows):
    cols = ["asset_id", "node_id", "acquisition_cost", "currency", "in_service_date", "useful_life_months",
            "salvage_value", "method"]
    raw = pl.LazyFrame([r[:8] for r in rows], schema=cols, orient="row").with_columns(
        pl.lit("f.csv").alias("_source_file"), pl.Series("_source_row", [r[8] for r in rows]))
    return parse_canonical(raw, ASSETS, defaults={"site_id": pl.lit("metro-east")})


def test_duplicates_required_fields_and_unreadable_values():
    rows = [
        ("a1", "n1", "100.5", "USD", "2025-01-01", "60", "0", "straight_line", 1),
        ("a2", "n1", "oops", "USD", "2025-01-01", "60", "0", "straight_line", 2),   # unreadable number
        ("a3", "n1", "10", "USD", "2025-01-01", "60", "0", "straight_line", 3),
        ("a3", "n1", "10", "USD", "2025-01-01", "60", "0", "straight_line", 4),     # exact copy
        ("a4", "n1", "10", "USD", "2025-01-01", "60", "0", "straight_line", 5),
        ("a4", "n1", "11", "USD", "2025-01-01", "60", "0", "straight_line", 6),     # conflicting copy
        ("a5", None, "10", "USD", "2025-01-01", "60", "0", "straight_line", 7),     # missing node
    ]
    judged = classify(_register(rows), ASSETS, DAY)
    acc = accepted(judged, ASSETS).collect()
    q = quarantined(judged, ASSETS).collect()
    a = audit(judged, ASSETS).collect()
    assert acc["asset_id"].to_list() == ["a1", "a3"]
    assert acc["acquisition_cost"].to_list() == [100.5, 10.0]
    assert q.select("source_row", "record_key", "reason").rows() == [
        (2, "a2", "invalid_value"), (4, "a3", "exact_duplicate"), (5, "a4", "conflicting_duplicate"),
        (6, "a4", "conflicting_duplicate"), (7, "a5", "missing_required_field")]
    assert q["detail"][0].startswith("`acquisition_cost` is not a valid Float64")
    assert a.rows() == [("assets", "f.csv", 7, 2, 5, "read", None)]


def test_outside_partition_day_and_counter_reset():
    raw = pl.LazyFrame({
        "meter_id": ["m/gpu0"] * 4, "scope": ["gpu"] * 4, "site_id": ["s"] * 4,
        "ts": ["2026-11-24T10:00:00Z", "2026-11-24T10:01:00+01:00", "2026-11-24T10:02:00Z", "2026-11-25T00:00:00Z"],
        "energy_j": ["1000", "1500", "20", "40"], "counter_reset": ["false"] * 4, "source": ["canonical"] * 4,
        "_source_file": ["p.csv"] * 4, "_source_row": [1, 2, 3, 4]})
    judged = classify(parse_canonical(raw, POWER_READINGS), POWER_READINGS, DAY, day_column="ts")
    acc = accepted(judged, POWER_READINGS).collect()
    # 10:01+01:00 is 09:01 UTC: it sorts first; 20 J after 1000 J is a reset.
    assert acc.select("ts", "energy_j", "counter_reset").rows() == [
        (datetime(2026, 11, 24, 9, 1, tzinfo=UTC), 1500.0, False),
        (datetime(2026, 11, 24, 10, 0, tzinfo=UTC), 1000.0, True),
        (datetime(2026, 11, 24, 10, 2, tzinfo=UTC), 20.0, True),
    ]
    q = quarantined(judged, POWER_READINGS).collect()
    assert q.select("source_row", "reason").rows() == [(4, "outside_partition_day")]
    assert "`ts` 2026-11-25T00:00:00Z is not on 2026-11-24 UTC" in q["detail"][0]


def test_parse_utc_offsets_and_naive():
    s = pl.DataFrame({"t": ["2026-03-08T01:59:59.5-05:00", "2026-11-24 10:00:00Z", "2026-11-24T10:00:00", "x"]})
    aware = s.select(parse_utc(pl.col("t"))).to_series().to_list()
    assert aware == [datetime(2026, 3, 8, 6, 59, 59, 500000, tzinfo=UTC),
                     datetime(2026, 11, 24, 10, tzinfo=UTC), None, None]
    naive_ok = s.select(parse_utc(pl.col("t"), naive_is_utc=True)).to_series().to_list()
    assert naive_ok[2] == datetime(2026, 11, 24, 10, tzinfo=UTC) and naive_ok[3] is None


_DIGITS = st.text("0123456789", min_size=1, max_size=4)


@st.composite
def _timestamps(draw) -> str:
    """Timestamp-like strings: valid and invalid fields, every separator, fraction and offset."""
    field = lambda lo, hi: st.one_of(st.integers(lo, hi).map(lambda v: f"{v:02d}"), _DIGITS)  # noqa: E731
    year = draw(st.one_of(st.integers(1, 9999).map(lambda v: f"{v:04d}"), _DIGITS))
    date_part = f"{year}-{draw(field(0, 13))}-{draw(field(0, 32))}"
    time_part = f"{draw(field(0, 25))}:{draw(field(0, 60))}:{draw(field(0, 61))}"
    fraction = draw(st.one_of(st.just(""), st.text("0123456789", min_size=0, max_size=10).map(lambda d: "." + d)))
    offset = draw(st.sampled_from(["Z", "z", "", "+00:00", "-05:00", "+14:00", "+0530", "Z ", " Z", "ZZ"]))
    sep = draw(st.sampled_from(["T", " ", "t", "  "]))
    pad = draw(st.sampled_from(["", " ", "\t"]))
    return f"{pad}{date_part}{sep}{time_part}{fraction}{offset}{pad}"


@settings(max_examples=examples(300), deadline=None)
@given(st.lists(st.one_of(_timestamps(), st.text(max_size=30)), min_size=1, max_size=40))
def test_parse_utc_usual_shape_first_equals_the_general_path(texts):
    """`parse_utc` reads `...T..:..:..(.f)Z` with a literal Z first; every string, of that shape
    or not, gets the instant (or null) the general path alone gives."""
    frame = pl.DataFrame({"t": texts}, schema={"t": pl.String})
    for naive_is_utc in (False, True):
        # As microseconds since the epoch: year 0 parses, and Python's datetime cannot hold it.
        got = frame.select(parse_utc(pl.col("t"), naive_is_utc=naive_is_utc).dt.epoch("us")).to_series()
        general = frame.select(_parse_utc_general(pl.col("t"), naive_is_utc=naive_is_utc).dt.epoch("us")).to_series()
        assert got.to_list() == general.to_list(), list(zip(texts, got.to_list(), general.to_list(), strict=True))
