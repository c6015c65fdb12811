"""Attribution of a simulated day through real Dagster materializations: conservation against
the lake's own inputs, every request costed once, byte-identical reruns."""

import hashlib
import shutil
from datetime import timedelta

import dagster as dg
import polars as pl
import pytest

from pipelines.cli.output import print_attribution
from pipelines.defs.attribution.assets import request_costs
from pipelines.defs.ingest.assets import asset_register, cost_lines, market_prices, power_readings, requests
from pipelines.partitions import register_sites
from pipelines.resources import AttributionSettings, ParquetLake, RawInputs, Warehouse
from pipelines.runner import QUIET_RUN
from tests.conftest import built_once
from tests.days import DAY, SITES, build_ingested_day
from transforms.attribution.reconcile import conservation_failures

ALL = [requests, power_readings, cost_lines, asset_register, market_prices, request_costs]
OUTPUTS = ("request_costs", "node_slots", "pool_idle", "site_hours", "true_up", "unattributed", "reconciliation",
           "totals")


def attribute(raw, lake, instance):
    resources = {"raw": RawInputs(root=str(raw)), "lake": ParquetLake(root=str(lake)), "warehouse": Warehouse(),
                 "settings": AttributionSettings(slot_s=60, weight="time", gap_limit_s=300)}
    return dg.materialize(ALL, selection=[request_costs], partition_key=DAY.isoformat(), resources=resources,
                          instance=instance, run_config=QUIET_RUN)


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    # tests/test_pipeline_ingest.py's day (10,000 requests, seed 11, invoices), ingested once per
    # session by the same materializations; copied, since the attribution writes into the lake.
    shared = built_once(tmp_path_factory, "ingested-day", build_ingested_day)
    root = tmp_path_factory.mktemp("attr")
    raw, lake = root / "raw", root / "lake"
    shutil.copytree(shared / "raw", raw)
    shutil.copytree(shared / "lake", lake)
    instance = dg.DagsterInstance.ephemeral()
    register_sites(instance, SITES)
    result = attribute(raw, lake, instance)
    out = {name: pl.read_parquet(lake / name / f"date={DAY}" / "part-0.parquet") for name in OUTPUTS}
    return {"raw": raw, "lake": lake, "instance": instance, "result": result, **out}


def test_conservation_check_passes_and_every_line_adds_up(day):
    checks = day["result"].get_asset_check_evaluations()
    assert [(c.check_name, c.passed) for c in checks] == [("conservation", True)]
    rec = day["reconciliation"]
    assert conservation_failures(rec).height == 0
    assert rec.filter(pl.col("unit") != "J").select(pl.col("difference").abs().max()).item() < 1e-9
    assert set(rec.filter(pl.col("unit") != "J")["unit"]) == {"USD"}  # the ISO code (issue 16, item 8)
    t = day["totals"]
    worst = t.select(pl.col("requests_difference").abs().max(), pl.col("idle_difference").abs().max()).row(0)
    assert worst < (1e-6, 1e-6)


def test_sources_equal_the_lake_inputs_computed_independently(day):
    lake = day["lake"]
    t = {r["component"]: r for r in day["totals"].iter_rows(named=True)}
    bills = pl.read_parquet(lake / "cost_lines" / "**" / "*.parquet", hive_partitioning=True)
    start, end = DAY, DAY + timedelta(days=1)
    on_day = bills.filter((pl.col("source") == "focus") & (pl.col("period_start").dt.date() >= start)
                          & (pl.col("period_end").dt.date() <= end))
    compute = on_day.filter(pl.col("cost_type") == "cloud_compute")["effective_amount"].sum()
    others = on_day.filter(pl.col("cost_type") == "other")["effective_amount"].sum()
    assert t["cloud_cost"]["source_amount"] == pytest.approx(compute + others, abs=1e-9)
    assert t["cloud_cost"]["unattributed"] == pytest.approx(others, abs=1e-9)  # S3 and CloudWatch match no node
    # Straight-line and declining-balance depreciation of the register, by hand in Python.
    reg = pl.read_parquet(lake / "assets" / f"date={DAY}" / "part-0.parquet")
    expected = 0.0
    for a in reg.iter_rows(named=True):
        life_end = a["in_service_date"]
        m = life_end.month - 1 + a["useful_life_months"]
        life_end = life_end.replace(year=life_end.year + m // 12, month=m % 12 + 1)
        life = (life_end - a["in_service_date"]).days
        if not (a["in_service_date"] <= DAY < life_end) or (a["disposal_date"] and DAY >= a["disposal_date"]):
            continue
        if a["method"] == "straight_line":
            expected += (a["acquisition_cost"] - a["salvage_value"]) / life
        else:
            d, r = (DAY - a["in_service_date"]).days, 2 / life
            book, next_book = (max(a["salvage_value"], a["acquisition_cost"] * (1 - r) ** k) for k in (d, d + 1))
            expected += (book - a["salvage_value"]) if d == life - 1 else book - next_book
    assert t["amortization_cost"]["source_amount"] == pytest.approx(expected, rel=1e-12)
    # Energy: the node meters' own totals.
    assert t["it_energy_j"]["source_amount"] == pytest.approx(day["node_slots"]["it_energy_j"].sum(), rel=1e-12)


def test_every_request_is_costed_exactly_once(day):
    lake = day["lake"]
    reqs = pl.read_parquet(lake / "requests" / "**" / "*.parquet", hive_partitioning=True)
    facts = day["request_costs"]
    assert facts.height == reqs.height and facts["request_id"].n_unique() == facts.height
    assert sorted(facts["request_id"]) == sorted(reqs["request_id"])
    costs = ["energy_cost", "demand_cost", "amortization_cost", "cloud_cost", "fixed_cost", "egress_cost"]
    assert facts.select(pl.min_horizontal(costs).min()).item() >= -1e-12
    assert (facts["direct_cost"] - facts.select(pl.sum_horizontal(costs)).to_series()).abs().max() < 1e-12
    assert (facts["fully_loaded_cost"] - facts["direct_cost"] - facts["idle_share"]).abs().max() < 1e-12
    # Premium carries its reserved pool's idle; every pool with requests absorbed its idle.
    idle = day["pool_idle"]
    assert idle.filter(pl.col("pool_id") == "premium-h200")["policy"].item() == "reserved"
    assert idle.select((pl.col("unabsorbed").abs() < 1e-9).all()).item()
    assert facts["idle_share"].sum() == pytest.approx(idle["idle_cost"].sum(), rel=1e-12)


def test_rerun_gives_byte_identical_outputs(day):
    lake = day["lake"]
    digest = lambda: {n: hashlib.sha256((lake / n / f"date={DAY}" / "part-0.parquet").read_bytes()).hexdigest()  # noqa: E731
                      for n in OUTPUTS}
    before = digest()
    assert attribute(day["raw"], lake, day["instance"]).success
    assert digest() == before


def test_print_attribution_shows_conservation_and_cost_per_query(day, capsys):
    print_attribution(DAY, day["lake"])
    out = capsys.readouterr().out
    assert "every source = requests + idle + unattributed" in out
    facts = pl.read_parquet(day["lake"] / "request_costs" / f"date={DAY.isoformat()}" / "part-0.parquet")
    assert f"Cost per query by tier, {DAY} ({facts['currency'][0]})" in out
    lines = {line.split()[1]: line for line in out.splitlines() if line.startswith("│")}
    for tier in ("premium", "standard", "batch"):
        rows = facts.filter(pl.col("tier") == tier)
        assert f"{rows.height:,}" in lines[tier]
        assert f"{rows['fully_loaded_cost'].mean():.6f}" in lines[tier]
