"""`inferledger run --parallel 2`: the day's ingest runs (one per site and dataset) go two at a
time in worker processes, then attribution and publish run as before. The lake and the
warehouse come out exactly as with one run at a time."""

from datetime import date
from pathlib import Path

import polars as pl
import pytest

import fleetsim
from lake.raw import raw_files
from pipelines.cli import main
from pipelines.runner import day_steps, expand_steps
from settings import defaults
from warehouse.access import open_warehouse

DAY = date(2026, 11, 24)


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("parallel") / "raw"
    fleetsim.simulate(root, DAY, requests=2_000, seed=5, invoices=True)  # the size does not matter here
    return root


def _lake_files(lake: Path) -> dict[str, bytes]:
    return {p.relative_to(lake).as_posix(): p.read_bytes() for p in sorted(lake.rglob("*.parquet"))
            if "_scratch" not in p.parts}


def test_the_ingest_splits_into_one_run_per_site_and_dataset_largest_first(raw, tmp_path):
    paths = defaults(raw=raw, lake=tmp_path / "lake", warehouse=tmp_path / "wh.duckdb")
    steps = day_steps(DAY, ["metro-east", "remote-plains", "cloud-use1"]) + [("publish_warehouse", None, None)]
    assert expand_steps(steps, paths, 1) == steps
    runs = expand_steps(steps, paths, 2)
    assert len(runs) == 9 + 3  # attribute, the day before again if stale (pipelines.midnight), publish
    assert sorted((p, a[0]) for _, p, a in runs[:9]) == sorted(
        (f"{DAY}|{s}", d) for s in ("metro-east", "remote-plains", "cloud-use1")
        for d in ("requests", "power_readings", "cost_lines"))
    sizes = [sum(f.stat().st_size for _, fs in raw_files(a[0], raw, DAY, p.split("|")[1]) for f in fs)
             for _, p, a in runs[:9]]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] > sizes[-1]  # the largest raw input first
    assert runs[9:] == steps[3:]


def test_parallel_runs_give_the_same_lake_and_warehouse(raw, tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    out = {}
    for parallel in ("1", "2"):
        root = tmp_path / parallel
        wh = root / "warehouse" / "inferledger.duckdb"
        assert main(["run", "--date", DAY.isoformat(), "--raw", str(raw), "--lake", str(root / "lake"),
                     "--warehouse", str(wh), "--parallel", parallel]) == 0
        con = open_warehouse(wh)
        try:
            marts = con.sql("SELECT * FROM cost_by_tier_day ORDER BY ALL").fetchall()
        finally:
            con.close()
        out[parallel] = (_lake_files(root / "lake"), marts)
    files_1, marts_1 = out["1"]
    files_2, marts_2 = out["2"]
    assert any(name.startswith("requests/") for name in files_1)
    assert files_1.keys() == files_2.keys()
    assert [n for n in files_1 if files_1[n] != files_2[n]] == []
    assert marts_1 == marts_2 and len(marts_1) > 0
    assert pl.read_parquet(next(p for p in (tmp_path / "2" / "lake" / "requests").rglob("*.parquet"))).height > 0
