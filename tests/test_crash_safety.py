"""A nightly run killed mid-attribution (SIGKILL, no clean-up of any kind) leaves the lake's
outputs and the published warehouse as they were; the next run completes, and a rerun of a
day gives byte-identical marts."""

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import fleetsim
from lake.store import Lake
from warehouse.access import open_warehouse
from warehouse.publish import current_version
from warehouse.tables import TABLES

INFERLEDGER = Path(sys.executable).parent / "inferledger"
D2 = date(2026, 11, 25)


def env():
    return {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}


def sql(path, q):
    con = open_warehouse(path)
    try:
        return con.sql(q).fetchall()
    finally:
        con.close()


def run_cmd(root, day):
    return [str(INFERLEDGER), "run", "--date", day.isoformat(), "--raw", str(root / "raw"),
            "--lake", str(root / "lake"), "--warehouse", str(root / "warehouse" / "inferledger.duckdb")]


def test_a_run_killed_mid_attribution_leaves_everything_as_it_was_and_the_rerun_completes(demo_warehouse, tmp_path):
    shutil.copytree(demo_warehouse["raw"], tmp_path / "raw")
    shutil.copytree(demo_warehouse["lake"], tmp_path / "lake")
    wh = tmp_path / "warehouse" / "inferledger.duckdb"
    # Last night: the demo day, already ingested and attributed in the copied lake, published
    # (running the whole 50,000-request day again would write the same lake: reruns are byte-identical).
    publish = [str(INFERLEDGER), "publish", "--raw", str(tmp_path / "raw"), "--lake", str(tmp_path / "lake"),
               "--warehouse", str(wh)]
    first = subprocess.run(publish, capture_output=True, text=True, timeout=600, env=env())
    assert first.returncode == 0, first.stdout + first.stderr
    before = (current_version(wh), sql(wh, "SELECT * FROM cost_by_tier_day ORDER BY ALL"))
    fleetsim.simulate(tmp_path / "raw", D2, requests=40_000, seed=9, invoices=False)

    lake = tmp_path / "lake"
    proc = subprocess.Popen(run_cmd(tmp_path, D2), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env(),
                            start_new_session=True)
    killed_at = None
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        # The register of D2 is ingested by the attribution run, just before the attribution.
        in_attribution = (lake / "assets" / f"date={D2}").exists() and any((lake / "_scratch").glob("*.parquet"))
        if in_attribution:
            os.killpg(proc.pid, signal.SIGKILL)
            killed_at = time.monotonic()
            break
        time.sleep(0.005)
    proc.wait(timeout=60)
    assert killed_at is not None, "the run finished before it could be killed mid-attribution"
    assert proc.returncode == -signal.SIGKILL

    # Nothing of D2's attribution reached the lake, and the warehouse is last night's, readable.
    assert not (lake / "request_costs" / f"date={D2}").exists()
    assert not (lake / "marts" / "cost_by_tier_day" / f"date={D2}").exists()
    assert (current_version(wh), sql(wh, "SELECT * FROM cost_by_tier_day ORDER BY ALL")) == before

    rerun = subprocess.run(run_cmd(tmp_path, D2), capture_output=True, text=True, timeout=600, env=env())
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert sql(wh, "SELECT count(DISTINCT date), sum(requests) FROM cost_by_tier_day")[0][0] == 2
    assert sql(wh, "SELECT count(*) FROM reconciliation WHERE NOT within_tolerance") == [(0,)]
    # The scratch files the killed run left are gone once the next run has cleaned up after it.
    assert not [p for p in (lake / "_scratch").glob("*") if p.stat().st_mtime < killed_at - 1]

    # Idempotence: running D2 again rewrites byte-identical marts (and facts).
    marts = {t.name: Lake(lake).mart_path(t.name, D2).read_bytes() for t in TABLES if t.daily}
    facts = (lake / "request_costs" / f"date={D2}" / "part-0.parquet").read_bytes()
    again = subprocess.run([*run_cmd(tmp_path, D2), "--no-publish"], capture_output=True, text=True, timeout=600,
                           env=env())
    assert again.returncode == 0, again.stdout + again.stderr
    assert {n: Lake(lake).mart_path(n, D2).read_bytes() for n in marts} == marts
    assert (lake / "request_costs" / f"date={D2}" / "part-0.parquet").read_bytes() == facts
