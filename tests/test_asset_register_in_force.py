"""The asset register in force on a day is the latest one delivered on or before it.

Registers come from the ERP when assets change (monthly, say), not every day. The fleet-wide
ingest of a day without a register still writes the dataset's partition, empty (a partition
with no raw files is written empty, so a withdrawn file leaves nothing behind), and the
attribution used to take that empty partition as the register in force: the day's whole
amortization (627.20 USD on the demo fleet) vanished, with every check green."""

import csv
import shutil
from datetime import date

import polars as pl
import pytest

import fleetsim
from lake.store import Lake
from pipelines.cli import main

D2 = date(2026, 11, 25)


def add_months(d: date, months: int) -> date:
    y, m = divmod(d.month - 1 + months, 12)
    return date(d.year + y, m + 1, d.day)  # the demo's in-service days exist in every month


def daily_depreciation(register_csv, day: date) -> float:
    """By hand, for the assets in service on `day` (docs/attribution.md, step 6): straight line
    (SL) (cost - salvage) / days of the useful life; double declining balance (DB) book(d) -
    book(d + 1), book(d) = max(salvage, cost x (1 - 2 / life days)^d) after d days."""
    total = 0.0
    for a in csv.DictReader(register_csv.open()):
        start = date.fromisoformat(a["in_service_date"])
        end = add_months(start, int(a["useful_life_months"]))
        disposed = a["disposal_date"] and date.fromisoformat(a["disposal_date"]) <= day
        if not start <= day < end or disposed:
            continue
        cost, salvage, life, d = float(a["acquisition_cost"]), float(a["salvage_value"]), (end - start).days, \
            (day - start).days
        if a["depreciation_method"] == "DB":
            book_d, book_next = (max(salvage, cost * (1 - 2 / life) ** n) for n in (d, d + 1))
            total += book_d - (salvage if d == life - 1 else book_next)
        else:
            total += (cost - salvage) / life
    return total


def amortization(lake, day: date) -> float:
    t = pl.read_parquet(lake / "totals" / f"date={day}" / "part-0.parquet")
    return t.filter(pl.col("component") == "amortization_cost")["source_amount"].item()


def test_a_day_without_a_register_delivery_keeps_the_register_in_force(demo_warehouse, tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    raw, lake = tmp_path / "raw", tmp_path / "lake"
    shutil.copytree(demo_warehouse["raw"], raw)
    shutil.copytree(demo_warehouse["lake"], lake)
    d1 = demo_warehouse["day"]
    register = next((raw / d1.isoformat() / "_fleet" / "assets").glob("*.csv"))

    fleetsim.simulate(raw, D2, requests=1_000, seed=9, invoices=False)
    shutil.rmtree(raw / D2.isoformat() / "_fleet")  # no register delivered on day 2
    paths = ["--raw", str(raw), "--lake", str(lake)]
    assert main(["ingest", "--date", D2.isoformat(), *paths]) == 0
    assert main(["attribute", "--date", D2.isoformat(), *paths]) == 0

    assert Lake(lake).days("assets") == [d1, D2]  # day 2's ingest wrote its partition, empty
    assert Lake(lake).delivered_days("assets") == [d1]
    expected = daily_depreciation(register, D2)
    assert expected > 350  # the demo fleet's 5 owned servers (2 H200, 3 L40S), a day of their depreciation
    assert amortization(lake, D2) == pytest.approx(expected, rel=1e-12)
    assert amortization(lake, d1) == pytest.approx(daily_depreciation(register, d1), rel=1e-12)
    facts = pl.read_parquet(lake / "request_costs" / f"date={D2}" / "part-0.parquet")
    assert facts["amortization_cost"].sum() > 0

    # A register delivered again later (here: the same file on day 2) is the one in force from then on.
    (raw / D2.isoformat() / "_fleet" / "assets").mkdir(parents=True)
    shutil.copy(register, raw / D2.isoformat() / "_fleet" / "assets" / register.name)
    assert main(["ingest", "--date", D2.isoformat(), *paths]) == 0
    assert Lake(lake).delivered_days("assets") == [d1, D2]
