"""The code location loads, as `dg dev` would load it, and its graph is what we expect."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg

from pipelines.definitions import defs

ROOT = Path(__file__).resolve().parent.parent


def test_definitions_load_and_graph_snapshot():
    graph = defs.resolve_asset_graph()
    keys = sorted(k.to_user_string() for k in graph.get_all_asset_keys())
    assert keys == ["asset_register", "cost_lines", "power_readings", "request_costs", "requests"]
    for name in ("requests", "power_readings", "cost_lines"):
        pd = graph.get(dg.AssetKey(name)).partitions_def
        assert isinstance(pd, dg.MultiPartitionsDefinition)
        assert [d.name for d in pd.partitions_defs] == ["date", "site"]
    daily = graph.get(dg.AssetKey("asset_register")).partitions_def
    assert isinstance(daily, dg.DailyPartitionsDefinition) and daily.timezone == "UTC"
    assert isinstance(graph.get(dg.AssetKey("request_costs")).partitions_def, dg.DailyPartitionsDefinition)
    assert sorted(graph.get(dg.AssetKey("request_costs")).parent_keys) == [
        dg.AssetKey(k) for k in ("asset_register", "cost_lines", "power_readings", "requests")]
    spec = next(s for s in defs.resolve_asset_graph().asset_check_keys if s.name == "conservation")
    assert spec.asset_key == dg.AssetKey("request_costs")
    assert set(defs.resources) >= {"raw", "lake", "warehouse", "settings"}


def test_dg_check_defs_passes(tmp_path):
    dg_bin = Path(sys.executable).parent / "dg"
    assert dg_bin.exists(), "dagster-dg-cli is a dev dependency; reinstall with `make setup`"
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    shutil.copy(ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    proc = subprocess.run([str(dg_bin), "check", "defs"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "All definitions loaded successfully" in proc.stdout + proc.stderr
