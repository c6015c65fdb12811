"""`inferledger run --parallel 2`: the day's ingest runs (one per site and dataset) go two at a
time in worker processes, then attribution and publish run as before. The lake and the
warehouse come out exactly as with one run at a time: the session's reference night of the same
raw files, its jobs run one after the other in-process (tests/days.py)."""

from datetime import date
from pathlib import Path

import polars as pl
import pytest

from lake.raw import raw_files
from pipelines.cli import main
from pipelines.runner import day_steps, expand_steps
from settings import defaults
from tests.conftest import built_once
from tests.days import build_reference_night
from warehouse.access import open_warehouse

DAY = date(2026, 11, 24)


@pytest.fixture(scope="module")
def night(tmp_path_factory) -> Path:
    """The reference night (3,000 requests, seed 5, invoices; the size does not matter here), read only."""
    return built_once(tmp_path_factory, "reference-night", build_reference_night)


@pytest.fixture(scope="module")
def raw(night) -> Path:
    return night / "raw"


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


def test_parallel_runs_give_the_same_lake_and_warehouse(night, raw, tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    root = tmp_path / "2"
    assert main(["run", "--date", DAY.isoformat(), "--raw", str(raw), "--lake", str(root / "lake"),
                 "--warehouse", str(root / "warehouse" / "inferledger.duckdb"), "--parallel", "2"]) == 0
    out = {}
    for parallel, folder in (("1", night), ("2", root)):  # one run at a time: the reference night
        con = open_warehouse(folder / "warehouse" / "inferledger.duckdb")
        try:
            marts = con.sql("SELECT * FROM cost_by_tier_day ORDER BY ALL").fetchall()
        finally:
            con.close()
        out[parallel] = (_lake_files(folder / "lake"), marts)
    files_1, marts_1 = out["1"]
    files_2, marts_2 = out["2"]
    assert any(name.startswith("requests/") for name in files_1)
    assert files_1.keys() == files_2.keys()
    assert [n for n in files_1 if files_1[n] != files_2[n]] == []
    assert marts_1 == marts_2 and len(marts_1) > 0
    assert pl.read_parquet(next(p for p in (tmp_path / "2" / "lake" / "requests").rglob("*.parquet"))).height > 0
