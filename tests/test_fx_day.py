"""A whole day in two currencies through the pipeline (issue 16, item 5): the ECB's reference
rates delivered as they ship (`_fleet/fx/eurofxref-hist.csv`, the real sample), a EUR asset in a
USD register, a USD cloud bill and a line in a currency the ECB does not quote (AED).
`inferledger run` ingests, attributes and publishes; figures by hand."""

import shutil
import textwrap
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest

from pipelines.cli import main
from tests.test_cloud_only_fleet import INVENTORY, REQUESTS
from transforms.attribution.reconcile import conservation_failures

DAY = date(2025, 4, 25)  # a Friday: ECB 1.1357 USD per EUR
ECB = Path(__file__).parent / "data" / "real" / "ecb_eurofxref_hist" / "eurofxref-hist.csv"

FOCUS = """\
ChargePeriodStart,ChargePeriodEnd,ChargeCategory,ServiceCategory,ServiceName,ResourceId,BilledCost,EffectiveCost,BillingCurrency
2025-04-25T00:00:00Z,2025-04-26T00:00:00Z,Usage,Compute,Amazon Elastic Compute Cloud,i-0001,86.40,86.40,USD
2025-04-25T00:00:00Z,2025-04-26T00:00:00Z,Usage,Storage,Object storage (Dubai),bucket-1,5.00,5.00,AED
"""
REGISTER = """\
asset_id,description,node_id,acquisition_cost,currency,in_service_date,useful_life_months,salvage_value,depreciation_method,disposal_date
FA-1,GPU server bought in euros,c-01,10000.00,EUR,2025-01-01,12,0,SL,
"""

# By hand. The asset: 10,000 EUR over 365 days = 27.39726027 EUR a day, at 1.1357 USD/EUR
# = 11,357 / 365 = 31.11506849 USD. The compute line: 86.40 USD. 60 s slots, both spread evenly
# over the day's 1,440 slots of c-01: r1 holds 1 slot, r2 2, so direct costs are 1:2 and, the
# pool's idle shared pro rata, r1 carries a third of everything: (86.40 + 31.11506849) / 3.
ASSET_EUR = 10_000 / 365
ASSET_USD = 11_357 / 365
TOTAL = 86.40 + ASSET_USD


@pytest.fixture(scope="module")
def fx_day(tmp_path_factory):
    root = tmp_path_factory.mktemp("fx_day")
    raw = root / "raw"
    site, fleet = raw / DAY.isoformat() / "cloud-use1", raw / DAY.isoformat() / "_fleet"
    for folder in (site / "focus", site / "canonical", fleet / "assets", fleet / "fx"):
        folder.mkdir(parents=True)
    (raw / "inventory.yaml").write_text(textwrap.dedent(INVENTORY).replace("valid_from: 2026-01-01",
                                                                           "valid_from: 2025-01-01"))
    (site / "focus" / "bill.csv").write_text(FOCUS)
    (site / "canonical" / "requests.csv").write_text(REQUESTS.replace("2026-11-24", DAY.isoformat()))
    (fleet / "assets" / "register.csv").write_text(REGISTER)
    shutil.copy(ECB, fleet / "fx" / "eurofxref-hist.csv")
    code = main(["run", "--date", DAY.isoformat(), "--raw", str(raw), "--lake", str(root / "lake"),
                 "--warehouse", str(root / "warehouse.duckdb")])
    return {"code": code, "lake": root / "lake", "warehouse": root / "warehouse.duckdb"}


def read(lake, name: str) -> pl.DataFrame:
    return pl.read_parquet(lake / name / f"date={DAY}" / "part-0.parquet")


def test_the_eur_asset_is_converted_at_the_days_ecb_rate_and_the_aed_line_left_unattributed(fx_day, monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert fx_day["code"] == 0
    facts = read(fx_day["lake"], "request_costs").sort("request_id")
    assert facts["amortization_cost"].to_list() == pytest.approx([ASSET_USD / 1440, 2 * ASSET_USD / 1440], abs=1e-12)
    assert facts["fully_loaded_cost"].to_list() == pytest.approx([TOTAL / 3, 2 * TOTAL / 3], abs=1e-9)
    assert set(facts["currency"]) == {"USD"}
    un = read(fx_day["lake"], "unattributed")
    assert un.select("source", "component", "amount", "currency", "reason").rows() == [
        ("focus", "cloud_cost", 5.0, "AED", "no_fx_rate")]
    rec = read(fx_day["lake"], "reconciliation")
    assert conservation_failures(rec).height == 0
    asset = rec.filter(pl.col("source") == "asset_register")
    assert asset.select("unit", "source_currency").rows() == [("USD", "EUR")]
    assert asset.select("source_amount", "source_currency_amount", "fx_rate", "unattributed").row(0) == pytest.approx(
        (ASSET_USD, ASSET_EUR, 1.1357, 0.0), abs=1e-12)
    aed = rec.filter(pl.col("unit") == "AED")
    assert aed.select("source_amount", "to_requests", "to_idle", "unattributed", "source_currency_amount").row(0) == (
        5.0, 0.0, 0.0, 5.0, 5.0)
    assert aed["fx_rate"].to_list() == [None]
    totals = read(fx_day["lake"], "totals")  # in USD: the AED line is not summed with dollars
    amort = totals.filter(pl.col("component") == "amortization_cost")
    assert amort.select("unit", "source_amount").row(0) == ("USD", pytest.approx(ASSET_USD, abs=1e-12))
    assert totals.filter(pl.col("component") == "cloud_cost")["source_amount"].item() == pytest.approx(86.40, abs=1e-12)
    with duckdb.connect(str(fx_day["warehouse"]), read_only=True) as con:
        rows = con.execute("SELECT unit, source_currency, round(source_currency_amount, 6), fx_rate "
                           "FROM reconciliation WHERE source = 'asset_register'").fetchall()
    assert rows == [("USD", "EUR", round(ASSET_EUR, 6), pytest.approx(1.1357, abs=1e-15))]
