"""Late bills reach their days and restate them, visibly (issue 16, items 1 and 2; DOMAIN.md
section 7), through the real CLI: Dagster runs, Parquet lake, published DuckDB warehouse.

Two days are published (24 and 25 November 2026) with no invoice: their energy is priced at the
tariff, estimated, not yet invoiced. Then
- a FOCUS line for 24 November 10:00-11:00 is delivered 5 days late (29 November's folder), and
- November's electricity invoice of remote-plains is delivered on 3 December,
and `inferledger run --date 2026-12-03` re-attributes both November days, publishes them again
and logs what changed in `restatements`; `cost_by_tier_day_first_published` keeps what finance
saw first, and the morning report lists the restated days.
"""

import csv
import hashlib
import os
from datetime import date
from pathlib import Path

import polars as pl
import pytest

import fleetsim
from pipelines.cli import main
from warehouse.access import open_warehouse
from warehouse.report import write_report

D1, D2, FOCUS_DAY, INVOICE_DAY = date(2026, 11, 24), date(2026, 11, 25), date(2026, 11, 29), date(2026, 12, 3)
FOCUS_FILE = f"{FOCUS_DAY}/cloud-use1/focus/focus_late.csv"
INVOICE_FILE = f"{INVOICE_DAY}/remote-plains/electricity/PLN-202611-LATE.csv"
# November in America/Chicago: 1 Nov 00:00 CDT (05:00 UTC) to 1 Dec 00:00 CST (06:00 UTC), summer
# time ending on 1 November: 30 days and one hour.
PERIOD_S = 30 * 86_400 + 3_600
FIXED_PER_DAY = 300.00 * 86_400 / PERIOD_S  # 9.986130374479889: the fixed line's share of a whole UTC day
INVOICED_RATE = 400.00 / 4_000  # the energy line: 400.00 USD for 4,000 kWh, 0.10 USD/kWh


def read(lake: Path, name: str, day: date) -> pl.DataFrame:
    return pl.read_parquet(lake / name / f"date={day}" / "part-0.parquet")


def sql(warehouse: Path, q: str) -> pl.DataFrame:
    con = open_warehouse(warehouse)
    try:
        return con.sql(q).pl()
    finally:
        con.close()


def component(lake: Path, day: date, name: str) -> float:
    return read(lake, "totals", day).filter(pl.col("component") == name)["source_amount"].item()


def deliver_late_files(raw: Path) -> None:
    """The FOCUS hour (a copy of the day's first row with other times and 42.00 USD) and the invoice."""
    source = next((raw / D1.isoformat() / "cloud-use1" / "focus").glob("*.csv"))
    with source.open(newline="") as f:
        reader = csv.DictReader(f)
        row, fields = next(reader), reader.fieldnames
    row.update(ChargePeriodStart="2026-11-24T10:00:00Z", ChargePeriodEnd="2026-11-24T11:00:00Z",
               BilledCost="42.00", EffectiveCost="42.00", ListCost="42.00", ContractedCost="42.00")
    (raw / FOCUS_FILE).parent.mkdir(parents=True)
    with (raw / FOCUS_FILE).open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerow(row)
    (raw / INVOICE_FILE).parent.mkdir(parents=True)
    (raw / INVOICE_FILE).write_text(
        "invoice_id,line_no,account,period_start,period_end,line_type,tou_period,quantity,unit,rate,amount,currency,"
        "peak_at\n"
        "PLN-202611-LATE,1,ACCT-1,2026-11-01,2026-12-01,energy,,4000,kWh,0.10,400.00,USD,\n"
        "PLN-202611-LATE,2,ACCT-1,2026-11-01,2026-12-01,fixed,,1,month,300,300.00,USD,\n")


@pytest.fixture(scope="module")
def restated(tmp_path_factory):
    saved = os.environ.pop("DAGSTER_HOME", None)  # an ephemeral instance: the test leaves no runs behind
    root = tmp_path_factory.mktemp("late-bills")
    raw, lake, wh = root / "raw", root / "lake", root / "warehouse" / "inferledger.duckdb"
    data = ["--raw", str(raw), "--lake", str(lake)]  # ingest and attribute
    paths = [*data, "--warehouse", str(wh)]
    try:
        for day in (D1, D2, INVOICE_DAY):
            fleetsim.simulate(raw, day, requests=1_000, seed=5, invoices=False)
        assert main(["run", "--date", D1.isoformat(), *paths]) == 0
        v1 = sql(wh, "SELECT version FROM publication").item()
        first_tiers = sql(wh, "SELECT * FROM cost_by_tier_day ORDER BY date, tier")
        assert main(["run", "--date", D2.isoformat(), *paths]) == 0
        v2 = sql(wh, "SELECT version FROM publication").item()
        before = {day: {n: read(lake, n, day) for n in ("totals", "true_up")} for day in (D1, D2)}
        deliver_late_files(raw)
        assert main(["ingest", "--date", FOCUS_DAY.isoformat(), *data]) == 0
        assert main(["run", "--date", INVOICE_DAY.isoformat(), *paths]) == 0
        yield {"raw": raw, "lake": lake, "wh": wh, "paths": paths, "data": data, "v1": v1, "v2": v2,
               "first_tiers": first_tiers, "before": before}
    finally:
        if saved is not None:
            os.environ["DAGSTER_HOME"] = saved


def test_a_month_invoice_delivered_on_the_3rd_of_the_next_month_reaches_every_day(restated):
    lake = restated["lake"]
    for day in (D1, D2):
        rec = read(lake, "reconciliation", day).filter(pl.col("line_id").str.starts_with("PLN-202611-LATE"))
        by_line = {r["line_id"]: r for r in rec.iter_rows(named=True)}
        # The fixed line: its share of the day by time, 300.00 x 86,400 / 2,595,600 = 9.99 USD.
        assert by_line["PLN-202611-LATE:2"]["source_amount"] == pytest.approx(FIXED_PER_DAY, abs=1e-9)
        assert component(lake, day, "fixed_cost") == pytest.approx(FIXED_PER_DAY, abs=1e-9)
        # The energy line trues the day up: remote-plains' kWh of the day, priced at the tariff
        # before, now at the invoiced 0.10 USD/kWh (the invoice period covers the whole UTC day).
        old = restated["before"][day]["true_up"].filter(pl.col("site_id") == "remote-plains")
        assert old["invoice_line_id"].is_null().all()  # tariff-priced: estimated, not yet invoiced
        new = read(lake, "true_up", day).filter(pl.col("site_id") == "remote-plains")
        assert new["invoice_line_id"].unique().to_list() == ["PLN-202611-LATE:1"]
        assert new["invoiced_rate"].unique().to_list() == [pytest.approx(INVOICED_RATE)]
        kwh = old["day_kwh"].sum()
        assert new["day_kwh"].sum() == pytest.approx(kwh, rel=1e-12)  # same energy, other price
        assert by_line["PLN-202611-LATE:1"]["source_amount"] == pytest.approx(kwh * INVOICED_RATE, rel=1e-9)
        energy_before = restated["before"][day]["totals"].filter(pl.col("component") == "energy_cost")["source_amount"]
        assert component(lake, day, "energy_cost") == pytest.approx(
            energy_before.item() - old["tariff_cost"].sum() + kwh * INVOICED_RATE, rel=1e-9)
        # Conserved to the cent, every line.
        assert read(lake, "reconciliation", day).select(pl.col("difference").abs().max()).item() < 0.01


def test_a_focus_line_delivered_5_days_late_reaches_its_day_only(restated):
    lake, before = restated["lake"], restated["before"]
    cloud = {d: before[d]["totals"].filter(pl.col("component") == "cloud_cost")["source_amount"].item()
             for d in (D1, D2)}
    assert component(lake, D1, "cloud_cost") == pytest.approx(cloud[D1] + 42.00, abs=1e-9)
    assert component(lake, D2, "cloud_cost") == pytest.approx(cloud[D2], abs=1e-12)


def test_restatements_log_each_change_with_the_files_that_caused_it(restated):
    wh, v2 = restated["wh"], restated["v2"]
    rows = sql(wh, "SELECT * FROM restatements WHERE measure = 'cost' ORDER BY date, component")
    version = sql(wh, "SELECT version FROM publication").item()
    assert rows.select("date", "component").rows() == [
        (D1, "cloud_cost"), (D1, "energy_cost"), (D1, "fixed_cost"), (D2, "energy_cost"), (D2, "fixed_cost")]
    by = {(r["date"], r["component"]): r for r in rows.iter_rows(named=True)}
    before = restated["before"]
    assert by[(D1, "cloud_cost")]["difference"] == pytest.approx(42.00, abs=1e-9)
    for day in (D1, D2):
        assert by[(day, "fixed_cost")]["amount_before"] == 0.0
        assert by[(day, "fixed_cost")]["amount_after"] == pytest.approx(FIXED_PER_DAY, abs=1e-9)
        old = before[day]["true_up"].filter(pl.col("site_id") == "remote-plains")
        e = by[(day, "energy_cost")]
        assert e["amount_before"] == pytest.approx(
            before[day]["totals"].filter(pl.col("component") == "energy_cost")["source_amount"].item(), abs=1e-12)
        # tariff cost out, invoiced cost in: kWh x 0.10 - kWh x tariff
        invoiced = old["day_kwh"].sum() * INVOICED_RATE
        assert e["difference"] == pytest.approx(invoiced - old["tariff_cost"].sum(), rel=1e-9)
    assert all(r["difference"] == pytest.approx(r["amount_after"] - r["amount_before"]) for r in by.values())
    # The publication that first showed the amounts: D1's first publish (v1), D2's (v2).
    assert {(d, r["version_before"]) for (d, _), r in by.items()} == {(D1, restated["v1"]), (D2, v2)}
    assert {r["version_after"] for r in by.values()} == {version}
    assert {r["currency"] for r in by.values()} == {"USD"}
    assert by[(D1, "cloud_cost")]["caused_by"] == f"{FOCUS_FILE}; {INVOICE_FILE}"
    assert by[(D2, "energy_cost")]["caused_by"] == INVOICE_FILE
    # Where the money went moved too (to requests, to idle), each with its own row.
    assert sql(wh, "SELECT count(*) FROM restatements WHERE measure <> 'cost' AND date = DATE '2026-11-25'").item() > 0


def test_the_days_as_first_published_stay_readable_and_the_report_lists_restated_days(restated, tmp_path):
    wh = restated["wh"]
    first = sql(wh, "SELECT * FROM cost_by_tier_day_first_published WHERE date = DATE '2026-11-24' ORDER BY tier")
    assert first["first_version"].unique().to_list() == [restated["v1"]]
    assert first.drop("first_version", "first_published_at").equals(restated["first_tiers"])
    now = sql(wh, "SELECT * FROM cost_by_tier_day WHERE date = DATE '2026-11-24' ORDER BY tier")
    assert now["cloud_cost"].sum() > first["cloud_cost"].sum()  # restated: the current table moved, not the first
    report = write_report(wh, tmp_path / "report.html")
    page = report.path.read_text()
    assert '<section id="restatements" data-days="2026-11-24,2026-11-25">' in page
    assert INVOICE_FILE in page


def test_a_rerun_with_no_new_file_restates_nothing_and_writes_the_same_bytes(restated):
    lake, wh, paths, data = restated["lake"], restated["wh"], restated["paths"], restated["data"]
    digest = {n: hashlib.sha256((lake / n / f"date={D1}" / "part-0.parquet").read_bytes()).hexdigest()
              for n in ("request_costs", "totals", "reconciliation")}
    count = sql(wh, "SELECT count(*) FROM restatements").item()
    assert main(["attribute", "--date", D1.isoformat(), *data]) == 0
    assert main(["publish", *paths]) == 0
    assert sql(wh, "SELECT count(*) FROM restatements").item() == count
    assert {n: hashlib.sha256((lake / n / f"date={D1}" / "part-0.parquet").read_bytes()).hexdigest()
            for n in digest} == digest
