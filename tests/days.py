"""Simulated days that several test modules read, built once per test session (`built_once` in
tests/conftest.py) instead of once per module."""

import hashlib
import json
import os
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

import fleetsim
from pipelines.definitions import defs as load_defs
from pipelines.defs.ingest.assets import (asset_register, cost_lines, fx_rates, market_prices, performance_profiles,
                                          power_readings, requests)
from pipelines.partitions import register_sites
from pipelines.resources import AttributionSettings, ParquetLake, RawInputs, Warehouse
from pipelines.runner import QUIET_RUN
from warehouse.tables import DAILY

DAY = date(2026, 11, 24)
SITES = ["metro-east", "remote-plains", "cloud-use1"]
INGESTED_REQUESTS, INGESTED_SEED = 10_000, 11
NIGHT_REQUESTS, NIGHT_SEED = 3_000, 5


def materialize_day(raw: Path, lake: Path, instance: dg.DagsterInstance) -> list[dg.ExecuteInProcessResult]:
    resources = {"raw": RawInputs(root=str(raw)), "lake": ParquetLake(root=str(lake)), "warehouse": Warehouse()}
    results = [dg.materialize([requests, power_readings, cost_lines], partition_key=f"{DAY}|{site}",
                              resources=resources, instance=instance, run_config=QUIET_RUN) for site in SITES]
    results.append(dg.materialize([asset_register, market_prices, fx_rates, performance_profiles],
                                  partition_key=str(DAY),
                                  resources=resources,
                                  instance=instance, run_config=QUIET_RUN))
    return results


def _plain(v):
    return getattr(v, "value", getattr(v, "data", v))


def build_ingested_day(folder: Path) -> None:
    """`DAY` simulated (10,000 requests, seed 11, the month's invoices) into `folder/raw` and
    ingested by real materializations into `folder/lake`. What the runs reported (success, each
    materialization's metadata) is kept in `folder/runs.json`: the runs' results stay in the
    process that built the day."""
    raw, lake = folder / "raw", folder / "lake"
    summary = fleetsim.simulate(raw, DAY, requests=INGESTED_REQUESTS, seed=INGESTED_SEED, invoices=True)
    instance = dg.DagsterInstance.ephemeral()
    register_sites(instance, SITES)
    runs = [{"success": r.success,
             "materializations": [{"asset": m.asset_key.to_user_string(),
                                   "metadata": {k: _plain(v) for k, v in m.metadata.items()}}
                                  for m in (ev.event_specific_data.materialization
                                            for ev in r.get_asset_materialization_events())]}
            for r in materialize_day(raw, lake, instance)]
    (folder / "runs.json").write_text(json.dumps(runs, default=str))
    (folder / "summary.json").write_text(json.dumps({"records": summary.records,
                                                     "expected_quarantine": summary.expected_quarantine}))


def day_runs() -> list[tuple[str, str | None]]:
    """The night of DAY, one run after the other: the three sites' ingest, the attribution, the publish."""
    return [*(("ingest_day_site", f"{DAY}|{site}") for site in SITES), ("attribute_day", str(DAY)),
            ("publish_warehouse", None)]


def run_in_process(raw: Path, lake: Path, warehouse: Path, instance: dg.DagsterInstance) -> None:
    """The night's jobs (`day_runs`) with the in-process executor, on paths of their own."""
    defs = load_defs()
    resources = {"raw": RawInputs(root=str(raw)), "lake": ParquetLake(root=str(lake)),
                 "warehouse": Warehouse(path=str(warehouse)), "settings": AttributionSettings()}
    for name, key in day_runs():
        res = defs.resolve_job_def(name).execute_in_process(partition_key=key, instance=instance, resources=resources,
                                                           run_config=QUIET_RUN, raise_on_error=False)
        assert res.success, f"in-process {name} {key} failed: {[e.message for e in res.get_step_failure_events()]}"


def build_reference_night(folder: Path) -> None:
    """`DAY` simulated (3,000 requests, seed 5, the month's invoices) into `folder/raw` and its
    night run in-process on local disk into `folder/lake` and `folder/warehouse/inferledger.duckdb`:
    the reference the same night elsewhere must equal, byte for byte (the lake on an object store,
    tests/test_lake_object_store.py; on Celery workers, tests/test_celery_hosts.py). Read only:
    copy it to change it."""
    fleetsim.simulate(folder / "raw", DAY, requests=NIGHT_REQUESTS, seed=NIGHT_SEED, invoices=True)
    instance = dg.DagsterInstance.ephemeral()
    register_sites(instance, SITES)
    with pytest.MonkeyPatch.context() as mp:  # the same night whichever test asks first, whatever it set
        for k in [k for k in os.environ if k.startswith("INFERLEDGER_")]:
            mp.delenv(k)
        run_in_process(folder / "raw", folder / "lake", folder / "warehouse" / "inferledger.duckdb", instance)


def lake_sha(lake, path) -> str:
    """SHA-256 of a lake file, read through the lake (local disk or an object store)."""
    with lake.open_read(path) as f:
        return hashlib.sha256(f.read()).hexdigest()


def day_digests(lake, day: date = DAY) -> dict[str, str]:
    """SHA-256 of each daily mart of `day` and of the day's request facts."""
    out = {t.name: lake_sha(lake, lake.mart_path(t.name, day)) for t in DAILY}
    out["request_costs"] = lake_sha(lake, lake.partition_file("request_costs", day))
    return out
