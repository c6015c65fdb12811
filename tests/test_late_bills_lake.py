"""Which bill lines a day reads from the lake (lake/bills.py, DOMAIN.md section 7): every line
touching the day whenever delivered, each bill in its latest delivery, and nothing read from
deliveries that do not touch the day. Real Parquet partitions written by `Lake.write`."""

import os
from datetime import UTC, date, datetime

import polars as pl

from lake.bills import bill_index, day_bill_lines, deliveries_touching, stale_days
from lake.store import Lake
from transforms.contracts import COST_LINES

D = date(2026, 11, 24)


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def lines(*rows: tuple) -> pl.DataFrame:
    """Rows of (source, line_id, period_start, period_end, cost_type, amount[, peak_at])."""
    out = []
    for source, line_id, start, end, cost_type, amount, *peak in rows:
        out.append({"source": source, "line_id": line_id, "site_id": "remote-plains", "resource_id": None,
                    "period_start": _t(start), "period_end": _t(end), "cost_type": cost_type,
                    "billed_amount": amount, "effective_amount": amount, "currency": "USD", "quantity": None,
                    "unit": None, "service_name": None, "charge_category": "Usage", "tou_period": None,
                    "peak_at": _t(peak[0]) if peak else None})
    return pl.DataFrame(out, schema=COST_LINES.schema)


def deliver(lake: Lake, day: date, frame: pl.DataFrame, site: str = "remote-plains") -> None:
    lake.write(frame, "cost_lines", day, site)


def amounts(frame: pl.LazyFrame) -> dict[str, float]:
    return dict(frame.select("line_id", "effective_amount").collect().iter_rows())


def test_a_bill_delivered_after_its_days_reaches_them_and_its_latest_delivery_wins(tmp_path):
    lake = Lake(tmp_path)
    month = ("2026-11-01T05:00:00", "2026-12-01T06:00:00")
    # November's invoice, first delivered on 3 December with three lines ...
    deliver(lake, date(2026, 12, 3), lines(("electricity_invoice", "INV-11:1", *month, "energy", 400.0),
                                           ("electricity_invoice", "INV-11:2", *month, "other", 300.0),
                                           ("electricity_invoice", "INV-11:3", *month, "other", 12.0)))
    # ... and re-issued on 9 December: line 1 corrected, line 3 withdrawn.
    deliver(lake, date(2026, 12, 9), lines(("electricity_invoice", "INV-11:1", *month, "energy", 410.0),
                                           ("electricity_invoice", "INV-11:2", *month, "other", 300.0)))
    # A FOCUS hour of D delivered 5 days late, and the same row again in a later export.
    hour = ("2026-11-24T10:00:00", "2026-11-24T11:00:00")
    deliver(lake, date(2026, 11, 29), lines(("focus", "f-1", *hour, "cloud_compute", 42.0)), "cloud-use1")
    deliver(lake, date(2026, 11, 30), lines(("focus", "f-1", *hour, "cloud_compute", 42.0)), "cloud-use1")
    # A bill of another month, delivered on D: D does not read it.
    deliver(lake, D, lines(("electricity_invoice", "INV-10:1", "2026-10-01T05:00:00", "2026-11-01T05:00:00",
                            "energy", 999.0)))

    got = amounts(day_bill_lines(lake, D))
    # The invoice as re-issued (410 + 300; line 3 is gone with its delivery), the FOCUS row once.
    assert got == {"f-1": 42.0, "INV-11:1": 410.0, "INV-11:2": 300.0}
    # The day before D reads the invoice, not the FOCUS hour of D.
    assert amounts(day_bill_lines(lake, date(2026, 11, 23))) == {"INV-11:1": 410.0, "INV-11:2": 300.0}

    # The index comes from the files' footers: October's bill touches 1 Oct 05:00 .. 1 Nov 05:00 UTC.
    index = bill_index(lake)
    october = index.filter(pl.col("delivered") == D).row(0, named=True)
    assert (october["first_at"], october["last_at"]) == (_t("2026-10-01T05:00:00"), _t("2026-11-01T05:00:00"))
    assert sorted(deliveries_touching(index, D, D)["delivered"].to_list()) == [
        date(2026, 11, 29), date(2026, 11, 30), date(2026, 12, 3), date(2026, 12, 9)]


def test_a_demand_line_reaches_the_day_of_its_peak_and_an_empty_delivery_touches_nothing(tmp_path):
    lake = Lake(tmp_path)
    # A demand charge billed for October whose peak interval starts on D (a corrected period).
    deliver(lake, date(2026, 12, 2), lines(("electricity_invoice", "INV-D:1", "2026-10-01T05:00:00",
                                            "2026-11-01T05:00:00", "demand", 112.5, "2026-11-24T18:45:00")))
    deliver(lake, date(2026, 12, 2), lines(), "metro-east")  # a site with no bill that day
    assert amounts(day_bill_lines(lake, D)) == {"INV-D:1": 112.5}
    assert bill_index(lake).filter(pl.col("site") == "metro-east")["first_at"].to_list() == [None]


def test_days_attributed_before_a_bill_touching_them_are_stale(tmp_path):
    lake = Lake(tmp_path)
    for day in (D, date(2026, 11, 25)):
        lake.write(pl.DataFrame({"request_id": ["r"]}), "request_costs", day)
        os.utime(lake.partition_file("request_costs", day), ns=(10**18, 10**18))
    assert stale_days(lake) == []
    deliver(lake, date(2026, 11, 29), lines(("focus", "f-1", "2026-11-24T10:00:00", "2026-11-24T11:00:00",
                                             "cloud_compute", 42.0)))
    assert stale_days(lake) == [D]  # delivered after D was attributed, touching D only


def test_a_bill_file_written_without_statistics_is_read_from_its_columns(tmp_path):
    lake = Lake(tmp_path)
    path = lake.partition_file("cost_lines", date(2026, 12, 3), "remote-plains")
    path.parent.mkdir(parents=True)
    lines(("electricity_invoice", "INV-11:1", "2026-11-01T05:00:00", "2026-12-01T06:00:00", "other", 300.0)
          ).write_parquet(path, statistics=False)
    index = bill_index(lake).row(0, named=True)
    assert (index["first_at"], index["last_at"]) == (_t("2026-11-01T05:00:00"), _t("2026-12-01T06:00:00"))
    assert amounts(day_bill_lines(lake, D)) == {"INV-11:1": 300.0}
