"""The code location loads, as `dg dev` would load it, and its graph is what we expect."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from pipelines.definitions import defs as load_defs
from pipelines.instance import instance_config
from transforms.quality import catalog

ROOT = Path(__file__).resolve().parent.parent


def test_definitions_load_and_graph_snapshot():
    defs = load_defs()
    graph = defs.resolve_asset_graph()
    keys = sorted(k.to_user_string() for k in graph.get_all_asset_keys())
    assert keys == ["asset_register", "cost_lines", "cost_marts", "fx_rates", "market_prices", "performance_profiles",
                    "power_readings", "report", "request_costs", "requests", "warehouse"]
    assert graph.get(dg.AssetKey("report")).parent_keys == {dg.AssetKey("warehouse")}
    for name in ("requests", "power_readings", "cost_lines"):
        pd = graph.get(dg.AssetKey(name)).partitions_def
        assert isinstance(pd, dg.MultiPartitionsDefinition)
        assert [d.name for d in pd.partitions_defs] == ["date", "site"]
    for name in ("asset_register", "market_prices", "fx_rates", "performance_profiles"):  # fleet-wide inputs, by day
        daily = graph.get(dg.AssetKey(name)).partitions_def
        assert isinstance(daily, dg.DailyPartitionsDefinition) and daily.timezone == "UTC"
    assert isinstance(graph.get(dg.AssetKey("request_costs")).partitions_def, dg.DailyPartitionsDefinition)
    assert sorted(graph.get(dg.AssetKey("request_costs")).parent_keys) == [
        dg.AssetKey(k) for k in ("asset_register", "cost_lines", "fx_rates", "market_prices", "power_readings",
                                 "requests")]
    spec = next(s for s in defs.resolve_asset_graph().asset_check_keys if s.name == "conservation")
    assert spec.asset_key == dg.AssetKey("request_costs")
    assert set(defs.resources) >= {"raw", "lake", "warehouse", "settings"}
    # The warehouse: day marts after the attribution, one unpartitioned publish after all days,
    # in the single-writer pool, with its SQL checks (error ones blocking).
    # The capacity marts read the day's performance profiles (docs/capacity.md).
    assert graph.get(dg.AssetKey("cost_marts")).parent_keys == {dg.AssetKey("request_costs"),
                                                               dg.AssetKey("performance_profiles")}
    wh = graph.get(dg.AssetKey("warehouse"))
    assert wh.parent_keys == {dg.AssetKey("cost_marts")} and wh.partitions_def is None
    assert wh.pools == {"warehouse"}
    wh_checks = {k.name: graph.get(k) for k in graph.asset_check_keys if k.asset_key == dg.AssetKey("warehouse")}
    assert {n for n, c in wh_checks.items() if c.blocking} == {
        "reconciliation_per_source_line", "marts_equal_sources", "marts_equal_request_facts",
        "every_request_costed_once", "no_negative_costs", "pue_within_bounds", "surplus_within_pool_cost"}
    assert {n for n, c in wh_checks.items() if not c.blocking} == {"freshness", "negative_energy_cost"}


def test_quality_checks_on_their_assets():
    # Every expectation of every quality suite is a check on its asset (docs/data-quality.md);
    # error severity blocks, warnings do not.
    graph = load_defs().resolve_asset_graph()
    checks = {(k.asset_key.to_user_string(), k.name): graph.get(k) for k in graph.asset_check_keys}
    for suite, asset in (("requests", "requests"), ("power_readings", "power_readings"), ("cost_lines", "cost_lines"),
                         ("assets", "asset_register"), ("request_costs", "request_costs")):
        for c in catalog(suite):
            assert checks[(asset, c.name)].blocking == (c.severity == "error"), c.name
    assert checks[("power_readings", "power_readings.power_w.within_gpu_nameplate")].blocking
    # A line in another currency is converted (or left unattributed, no_fx_rate): a warning (issue 16).
    assert not checks[("cost_lines", "cost_lines.currency.reporting_currency")].blocking
    assert checks[("requests", "requests.output_tokens.non_negative")].blocking
    # What the fleet-wide ingests lost blocks the attribution of the day, in the same run.
    assert checks[("market_prices", "market_prices.sources.not_lost")].blocking
    assert checks[("asset_register", "assets.sources.not_lost")].blocking
    assert checks[("fx_rates", "fx_rates.sources.not_lost")].blocking
    assert not checks[("requests", "requests.row_count.vs_previous_day")].blocking


def test_dg_check_defs_passes(tmp_path):
    dg_bin = Path(sys.executable).parent / "dg"
    assert dg_bin.exists(), "dagster-dg-cli is a dev dependency; reinstall with `make setup`"
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    (tmp_path / "dagster.yaml").write_text(instance_config(tmp_path))
    proc = subprocess.run([str(dg_bin), "check", "defs"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "All definitions loaded successfully" in proc.stdout + proc.stderr
