"""`make demo-real` (`inferledger demo --real`): the day of the real public samples of
tests/data/real run through the same pipeline as `make demo` (ingest, attribution, checks, publish,
report) into its own data folder. Figures by hand from the samples and the inventory
(lake/real_day_inventory.yaml)."""

import os
import re

import polars as pl
import pytest

from lake.real_day import REAL_DAY
from pipelines.cli import main
from tests.conftest import DATA
from warehouse.access import open_warehouse

DAY = REAL_DAY.isoformat()


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
    # Design PUE 1.3 (no facility meter): overhead = 0.3 x IT energy; every kWh at the 0.08 USD/kWh
    # of the day's price file: energy cost = (IT + overhead) kWh x 0.08.
    assert source["overhead_j"] == pytest.approx(0.3 * source["it_energy_j"], rel=1e-12)
    assert source["energy_cost"] == pytest.approx((source["it_energy_j"] + source["overhead_j"]) / 3.6e6 * 0.08,
                                                  rel=1e-12)
    # The FOCUS sample (September 2024) is ingested, 1,000 lines, and reaches none of this day.
    lines = pl.read_parquet(demo_real / "lake" / "cost_lines" / f"date={DAY}" / "**" / "*.parquet")
    assert lines.height == 1_000 and "cloud_cost" not in source


def test_the_report_shows_what_the_checks_warn_about(demo_real):
    page = (demo_real / "warehouse" / "report.html").read_text()
    assert "40,216" in page
    # holygpu2c0701 reads 35 W (Sys Power) through the site's power-down, below its idle_w of 450 W.
    assert re.search(r"not_below_node_idle", page)
    assert 'id="expectations-missing"' not in page
