"""`make demo-real` (`inferledger demo --real`): the day of the real public samples of
tests/data/real run through the same pipeline as `make demo` (ingest, attribution, checks, publish,
report) into its own data folder. Figures by hand from the samples and the inventory
(lake/real_day_inventory.yaml); the day's energy is priced with Energinet's DK2 prices of 2022-10-18
(UTC) replayed onto it, in EUR, the fleet's reporting currency."""

import os
import re
from datetime import date
from decimal import Decimal

import polars as pl
import pytest

from lake.real_day import PRICE_FILE, REAL_DAY, MissingSample, replay_prices
from pipelines.cli import main
from tests.conftest import DATA
from warehouse.access import open_warehouse

DAY = REAL_DAY.isoformat()
ELSPOT = DATA / "real" / "energinet_elspot_dk2" / "Elspotprices.csv"


@pytest.fixture(scope="module")
def demo_real(tmp_path_factory):
    data = tmp_path_factory.mktemp("demo-real")
    saved = os.environ.pop("DAGSTER_HOME", None)  # an ephemeral instance: the test leaves no runs behind
    try:
        code = main(["demo", "--real", "--samples", str(DATA / "real"), "--real-data", str(data)])
    finally:
        if saved is not None:
            os.environ["DAGSTER_HOME"] = saved
    assert code == 0
    return data


def _sql(data, query: str) -> pl.DataFrame:
    con = open_warehouse(data / "warehouse" / "inferledger.duckdb")
    try:
        return con.sql(query).pl()
    finally:
        con.close()


def test_every_replayed_request_is_costed_on_the_ipmi_day(demo_real):
    tiers = _sql(demo_real, f"SELECT tier, requests FROM cost_by_tier_day WHERE date = '{DAY}' ORDER BY tier")
    # Azure code + conv (8,819 + 19,366) as standard, Mooncake's 12,031 as batch.
    assert tiers.rows() == [("batch", 12_031), ("standard", 28_185)]


def test_only_the_dumps_blocks_without_a_reading_are_quarantined(demo_real):
    q = _sql(demo_real, f"SELECT dataset, reason, rows FROM quarantine_summary WHERE date = '{DAY}'")
    # holygpu8a11101's BMC stopped answering after 30 of its 60 one-minute blocks: 30 blocks
    # without a Chassis Power reading. Nothing else: no request, bill line, rate or price.
    assert q.rows() == [("power_readings", "sensor_no_reading", 30)]


def test_node_energy_and_its_price_by_hand(demo_real):
    ns = pl.read_parquet(demo_real / "lake" / "node_slots" / f"date={DAY}" / "*.parquet")
    own = ns.group_by("node_id").agg((pl.col("it_energy_j") - pl.col("infra_it_energy_j")).sum().alias("j"))
    # holygpu8a11101 reads 450 W (Chassis Power) on each of its 30 blocks, and is estimated at its idle_w,
    # 450 W, the rest of the day: 450 W x 86,400 s = 38,880,000 J = 10.8 kWh.
    assert own.filter(pl.col("node_id") == "holygpu8a11101")["j"][0] == pytest.approx(38_880_000, abs=1e-3)
    totals = pl.read_parquet(demo_real / "lake" / "totals" / f"date={DAY}" / "*.parquet")
    source = dict(zip(totals["component"], totals["source_amount"], strict=True))
    # Design PUE 1.3 (no facility meter): overhead = 0.3 x IT energy.
    assert source["overhead_j"] == pytest.approx(0.3 * source["it_energy_j"], rel=1e-12)
    # The FOCUS sample (September 2024) is ingested, 1,000 lines, and reaches none of this day.
    lines = pl.read_parquet(demo_real / "lake" / "cost_lines" / f"date={DAY}" / "**" / "*.parquet")
    assert lines.height == 1_000 and "cloud_cost" not in source


def test_the_report_shows_what_the_checks_warn_about(demo_real):
    page = (demo_real / "warehouse" / "report.html").read_text()
    assert "40,216" in page
    # holygpu2c0701 reads 35 W (Sys Power) through the site's power-down, below its idle_w of 450 W.
    assert re.search(r"not_below_node_idle", page)
    assert 'id="expectations-missing"' not in page


def test_the_prices_are_energinets_2022_10_18_replayed_onto_the_day(demo_real):
    written = (demo_real / "raw" / PRICE_FILE).read_text().splitlines()
    sample = ELSPOT.read_text().splitlines()
    # The sample's header, then its lines 24-47 (2022-10-18 23:00 back to 00:00 UTC, newest first),
    # each with only the dates of HourUTC (chars 0-9) and HourDK (17-26) changed: +959 days.
    assert written[0] == sample[0] == "HourUTC;HourDK;PriceArea;SpotPriceDKK;SpotPriceEUR"
    assert [w[10:17] + w[27:] for w in written[1:]] == [s[10:17] + s[27:] for s in sample[23:47]]
    assert written[1] == "2025-06-03 23:00;2025-06-04 01:00;DK2;931,210022;125,180000"  # sample line 24
    assert written[18] == "2025-06-03 06:00;2025-06-03 08:00;DK2;2062,419922;277,299988"  # sample line 41
    # 2022-10-18 06:00 UTC, DK2: SpotPriceEUR 277,299988 EUR/MWh = 0.277299988 EUR/kWh, read exactly
    # (a decimal divided by 1000), priced at 2025-06-03 06:00 UTC.
    prices = pl.read_parquet(demo_real / "lake" / "market_prices" / "**" / "*.parquet")
    assert prices.height == 24 and set(prices["tariff_id"]) == {"mghpcc-spot"}
    at6 = prices.filter(pl.col("hour_utc").dt.hour() == 6)
    assert at6["hour_utc"].dt.date()[0] == REAL_DAY and at6["price_per_kwh"][0] == 0.277299988
    audit = _sql(demo_real, "SELECT source_file, rows_read, rows_accepted, rows_quarantined FROM ingest_audit "
                            f"WHERE date = '{DAY}' AND dataset = 'market_prices'")
    assert audit.rows() == [("prices/Elspotprices.csv", 24, 24, 0)]


def test_one_nodes_hour_and_the_days_energy_cost_by_hand(demo_real):
    ns = pl.read_parquet(demo_real / "lake" / "node_slots" / f"date={DAY}" / "*.parquet")
    hour = (ns.filter((pl.col("node_id") == "holygpu8a11101") & (pl.col("slot_start").dt.hour() == 6))
            .select(pl.col("it_energy_j", "infra_it_energy_j", "overhead_j", "energy_cost").sum()).row(0, named=True))
    # holygpu8a11101, 06:00-07:00 UTC (outside its dump: estimated at its idle_w): 450 W x 3,600 s =
    # 1,620,000 J; plus its share of the CPU server lichtmandce04 (estimated at its idle_w, 300 W,
    # outside its first 60 minutes), spread over the pool's two GPU nodes: 150 W x 3,600 s = 540,000 J.
    # IT 2,160,000 J = 0.6 kWh; design PUE 1.3: overhead 0.18 kWh (648,000 J); at 0.277299988 EUR/kWh:
    # 0.78 kWh x 0.277299988 = 0.21629399064 EUR.
    assert hour["it_energy_j"] == pytest.approx(2_160_000, abs=1e-6)
    assert hour["infra_it_energy_j"] == pytest.approx(540_000, abs=1e-6)
    assert hour["overhead_j"] == pytest.approx(648_000, abs=1e-6)
    assert hour["energy_cost"] == pytest.approx(0.21629399064, rel=1e-12)
    # The day: each UTC hour's site energy (IT + overhead, kWh, from the published mart) times that
    # hour's SpotPriceEUR of 2022-10-18 in the sample / 1000, summed in plain Python.
    rows = [line.split(";") for line in ELSPOT.read_text().splitlines()[23:47]]
    price = {int(r[0][11:13]): Decimal(r[4].replace(",", ".")) / 1000 for r in rows}
    hours = _sql(demo_real, "SELECT hour(hour AT TIME ZONE 'UTC') AS h, it_energy_kwh + overhead_energy_kwh AS kwh, "
                            f"energy_cost, currency FROM site_energy_hour WHERE date = '{DAY}' ORDER BY h")
    assert hours["h"].to_list() == list(range(24)) and sorted(price) == list(range(24))
    by_hand = sum(float(price[h]) * kwh for h, kwh in zip(hours["h"], hours["kwh"], strict=True))
    totals = pl.read_parquet(demo_real / "lake" / "totals" / f"date={DAY}" / "*.parquet")
    energy = totals.filter(pl.col("component") == "energy_cost").row(0, named=True)
    assert energy["unit"] == "EUR" and energy["source_amount"] == pytest.approx(by_hand, rel=1e-12)
    assert hours["energy_cost"].sum() == pytest.approx(by_hand, rel=1e-12)
    assert round(by_hand, 2) == 6.77  # docs/real-data.md quotes it


def test_every_money_mart_row_is_in_eur(demo_real):
    tables = _sql(demo_real, "SELECT DISTINCT table_name FROM information_schema.columns "
                             "WHERE column_name = 'currency' ORDER BY 1")["table_name"].to_list()
    assert {"cost_by_tier_day", "request_costs", "site_energy_hour", "idle_by_pool_hour"} <= set(tables)
    for table in tables:
        currencies = _sql(demo_real, f'SELECT DISTINCT currency FROM "{table}"')["currency"].to_list()
        assert set(currencies) <= {"EUR"}, table
    assert _sql(demo_real, "SELECT count(*) AS n FROM request_costs WHERE currency = 'EUR'")["n"][0] == 40_216


def test_the_price_replay_refuses_a_sample_without_the_whole_day(tmp_path):
    lines = ELSPOT.read_text().splitlines()
    # Two days, newest first: 2025-06-04's 24 rows, then 2025-06-03's (the same sample rows twice).
    two = replay_prices(ELSPOT, [REAL_DAY, date(2025, 6, 4)]).splitlines()
    assert len(two) == 49 and two[1].startswith("2025-06-04 23:00;2025-06-05 01:00;DK2;")
    assert two[25].startswith("2025-06-03 23:00;2025-06-04 01:00;DK2;")
    cut = tmp_path / "Elspotprices.csv"
    cut.write_text("\n".join(lines[:30] + lines[31:]) + "\n")  # 2022-10-18 17:00 UTC (line 31) dropped
    with pytest.raises(MissingSample, match=r"Elspotprices\.csv: 23 rows of 2022-10-18 \(UTC\), not 24"):
        replay_prices(cut, [REAL_DAY])
