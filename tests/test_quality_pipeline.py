"""Quality checks in real Dagster materializations of a small simulated day.

A clean day passes every check; an injected defect fails the named check, a blocking failure
keeps the downstream asset of the run from materializing, and the lake keeps the previous
attributed file.
"""

import hashlib
import re

import dagster as dg
import pytest

import fleetsim
from pipelines.cli import QUIET_RUN
from pipelines.defs.attribution.assets import request_costs
from pipelines.defs.ingest.assets import asset_register, cost_lines, power_readings, requests
from pipelines.defs.quality.checks import (asset_register_quality, cost_lines_quality, power_readings_quality,
                                           request_costs_quality, requests_quality)
from pipelines.partitions import register_sites
from pipelines.resources import AttributionSettings, ParquetLake, RawInputs, Warehouse
from tests.test_pipeline_ingest import DAY, SITES

INGEST = [requests, power_readings, cost_lines, requests_quality, power_readings_quality, cost_lines_quality]
DAILY = [requests, power_readings, cost_lines, asset_register, request_costs, asset_register_quality,
         request_costs_quality]


def resources(raw, lake):
    return {"raw": RawInputs(root=str(raw)), "lake": ParquetLake(root=str(lake)), "warehouse": Warehouse(),
            "settings": AttributionSettings(slot_s=60, weight="time", gap_limit_s=300)}


def ingest_site(raw, lake, instance, site) -> dg.ExecuteInProcessResult:
    return dg.materialize(INGEST, partition_key=f"{DAY}|{site}", resources=resources(raw, lake), instance=instance,
                          run_config=QUIET_RUN, raise_on_error=False)


def register_and_attribute(raw, lake, instance) -> dg.ExecuteInProcessResult:
    """One daily run: the asset register, its checks, then request_costs and its checks."""
    return dg.materialize(DAILY, selection=dg.AssetSelection.assets(asset_register, request_costs),
                          partition_key=str(DAY), resources=resources(raw, lake), instance=instance,
                          run_config=QUIET_RUN, raise_on_error=False)


def evaluations(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def failed(result) -> dict[str, str]:
    return {e.check_name: e.severity.value for e in result.get_asset_check_evaluations() if not e.passed}


def materialized(result) -> list[str]:
    return sorted(ev.event_specific_data.materialization.asset_key.to_user_string()
                  for ev in result.get_asset_materialization_events())


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    root = tmp_path_factory.mktemp("quality")
    raw, lake = root / "raw", root / "lake"
    fleetsim.simulate(raw, DAY, requests=3_000, seed=5, invoices=True)
    instance = dg.DagsterInstance.ephemeral()
    register_sites(instance, SITES)
    ingest = [ingest_site(raw, lake, instance, s) for s in SITES]
    daily = register_and_attribute(raw, lake, instance)
    return {"raw": raw, "lake": lake, "instance": instance, "ingest": ingest, "daily": daily}


def test_clean_day_passes_every_check_and_attributes(day):
    for res in [*day["ingest"], day["daily"]]:
        assert res.success
        assert failed(res) == {}
    assert materialized(day["daily"]) == ["asset_register", "request_costs"]
    ev = evaluations(day["daily"])
    assert ev["request_costs.key.unique"].passed and ev["assets.currency.reporting_currency"].passed
    n_checks = {k: sum(1 for e in r.get_asset_check_evaluations()) for k, r in zip(SITES, day["ingest"])}
    assert n_checks == dict.fromkeys(SITES, 54 + 34 + 40)


def test_register_in_another_currency_blocks_request_costs_in_the_run(day, tmp_path):
    raw, lake, instance = day["raw"], day["lake"], day["instance"]
    before = digest(lake / "request_costs" / f"date={DAY}" / "part-0.parquet")
    reg = next((raw / DAY.isoformat() / "_fleet").rglob("asset_register_*.csv"))
    clean = reg.read_text()
    try:
        reg.write_text(clean.replace(",USD,", ",EUR,", 1))
        res = register_and_attribute(raw, lake, instance)
    finally:
        reg.write_text(clean)
    assert not res.success
    assert failed(res) == {"assets.currency.reporting_currency": "ERROR"}
    ev = evaluations(res)["assets.currency.reporting_currency"]
    assert ev.metadata["unexpected_count"].value == 1
    assert ev.metadata["examples"].data == ["EUR"]
    assert materialized(res) == ["asset_register"]  # request_costs did not run
    assert digest(lake / "request_costs" / f"date={DAY}" / "part-0.parquet") == before


def test_fifty_kilowatt_gpu_and_focus_currency_fail_their_named_blocking_checks(day, tmp_path):
    raw, instance = day["raw"], day["instance"]
    site_dir = raw / DAY.isoformat() / "cloud-use1"
    dcgm = sorted((site_dir / "dcgm").glob("*.prom"))[0]
    focus = next((site_dir / "focus").glob("*.csv"))
    clean_dcgm, clean_focus = dcgm.read_text(), focus.read_text()
    # One sample of one GPU reads 50 kW; the day's FOCUS bill is in EUR.
    hot = re.sub(r'(DCGM_FI_DEV_POWER_USAGE\{gpu="3"[^}]*\}) [0-9.]+', r"\1 50000.000", clean_dcgm, count=1)
    assert hot != clean_dcgm
    lines = clean_focus.splitlines(keepends=True)
    lines[1] = lines[1].replace(",USD,", ",EUR,")
    try:
        dcgm.write_text(hot)
        focus.write_text("".join(lines))
        res = ingest_site(raw, tmp_path / "lake", instance, "cloud-use1")
    finally:
        dcgm.write_text(clean_dcgm)
        focus.write_text(clean_focus)
    assert not res.success
    assert "DagsterAssetCheckFailedError" in {ev.event_specific_data.error.cls_name for ev in res.get_step_failure_events()}
    assert failed(res) == {"power_readings.power_w.within_gpu_nameplate": "ERROR",
                           "cost_lines.currency.reporting_currency": "ERROR"}
    power = evaluations(res)["power_readings.power_w.within_gpu_nameplate"]
    assert power.metadata["unexpected_count"].value == 1
    assert power.metadata["examples"].data == [[1050.0, 50000.0]]  # (1.5 x 700 W TDP, reading)
    assert evaluations(res)["cost_lines.currency.reporting_currency"].metadata["examples"].data == ["EUR"]
