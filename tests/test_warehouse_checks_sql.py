"""The warehouse checks' SQL over the facts (`warehouse.checks`), on hand-made tables: which rows
each returns, exactly."""

from datetime import UTC, date, datetime

import polars as pl

from warehouse.checks import COMPLETED_ON_DAY, COSTED_ONCE_SQL
from warehouse.connection import connect

D1, D2 = date(2026, 10, 31), date(2026, 11, 1)


def _at(day: date, h: int, s: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, h, 0, s, tzinfo=UTC)


def _costed_once(facts: list[tuple], accepted: list[tuple]) -> list[tuple]:
    con = connect()
    try:
        con.register("_f", pl.DataFrame(facts, schema={"date": pl.Date, "request_id": pl.String,
                                                       "completed_at": pl.Datetime("us", "UTC")},
                                        orient="row").to_arrow())
        con.register("_a", pl.DataFrame(accepted, schema={"date": pl.Date, "dataset": pl.String,
                                                          "rows_accepted": pl.Int64}, orient="row").to_arrow())
        con.execute("CREATE TABLE request_costs AS SELECT * FROM _f")
        con.execute("CREATE TABLE ingest_audit AS SELECT * FROM _a")
        return con.sql(COSTED_ONCE_SQL).fetchall()
    finally:
        con.close()


def test_every_request_costed_once_names_ids_twice_and_days_with_other_counts():
    facts = [
        (D1, "a", _at(D1, 10)),      # a on D1 ...
        (D1, "b", _at(D1, 11)),      # b twice on D1
        (D1, "b", _at(D1, 12)),
        (D1, "c", _at(D2, 0, 1)),    # c in flight at midnight: its D1 row completes on D2, not counted on D1
        (D2, "c", _at(D2, 0, 1)),    # ... and counted once, on D2
        (D2, "a", _at(D2, 9)),       # ... and a again on D2
        (D2, "d", _at(D2, 10)),
        (D2, "e", _at(D2, 11)),
    ]
    # Facts completed on their day: D1 a, b, b = 3 (the ingest accepted 3); D2 c, a, d, e = 4 (accepted 5).
    accepted = [(D1, "requests", 3), (D2, "requests", 2), (D2, "requests", 3), (D2, "power_readings", 9)]
    assert _costed_once(facts, accepted) == [
        (D1, "b", 2, None, "2026-10-31, 2026-10-31"),   # b: 2 rows, both on D1
        (D2, "a", 2, None, "2026-10-31, 2026-11-01"),   # a: D1 and D2, the later day first in the order
        (D2, None, 4, 5, None),                          # D2: 4 facts, 5 accepted
    ]


def test_every_request_costed_once_passes_unique_ids_and_ids_in_flight_at_midnight():
    facts = [(D1, "a", _at(D1, 10)), (D1, "c", _at(D2, 0, 1)), (D2, "c", _at(D2, 0, 1)), (D2, "d", _at(D2, 23))]
    assert _costed_once(facts, [(D1, "requests", 1), (D2, "requests", 2)]) == []


def test_completed_on_day_is_the_utc_day_whatever_the_session_time_zone():
    """Epoch microseconds against the day's UTC bounds: the same rows in a Paris session (the
    connections are UTC; a cast through the session's zone would move midnight by an hour)."""
    con = connect()
    try:
        con.execute("SET TimeZone = 'Europe/Paris'")
        rows = con.sql(f"""SELECT {COMPLETED_ON_DAY} FROM (VALUES
            (DATE '2026-10-31', TIMESTAMPTZ '2026-10-31 23:30:00+00'),
            (DATE '2026-10-31', TIMESTAMPTZ '2026-10-31 00:00:00+00'),
            (DATE '2026-10-31', TIMESTAMPTZ '2026-11-01 00:00:00+00'),
            (DATE '2026-10-31', TIMESTAMPTZ '2026-10-30 23:30:00+00')) AS t(date, completed_at)""").fetchall()
        # 23:30 UTC on the day (00:30 on Nov 1 in Paris), its start, its end (excluded), 30 min before
        assert [r[0] for r in rows] == [True, True, False, False]
    finally:
        con.close()
