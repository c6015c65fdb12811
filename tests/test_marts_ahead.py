"""The marts computed ahead, beside the facts' checks (pipelines/ahead.py): installed only by
`cost_marts`, byte for byte the marts a build writes, never those of facts changed since, and
nothing of them left when the run ends without `cost_marts` (its blocking check failed).

The day is test_warehouse_marts.py's hand-made one; its tier mart's figures are written out there
(premium: r1 + r2, energy cost 0.10 + 0.20 = 0.30; standard: r3 + r4, 0.05 + 0.01 = 0.06)."""

import hashlib
import shutil
from pathlib import Path

import polars as pl
import pytest

from lake.store import Lake
from pipelines import ahead
from tests.test_warehouse_marts import DAY, request_costs, write_day
from warehouse.marts import build_day_marts, marts_status
from warehouse.tables import DAILY


def digests(lake: Lake) -> dict[str, str]:
    return {t.name: hashlib.sha256(Path(lake.mart_path(t.name, DAY)).read_bytes()).hexdigest() for t in DAILY}


def energy_cost_by_tier(lake: Lake) -> dict[str, float]:
    return dict(pl.read_parquet(lake.mart_path("cost_by_tier_day", DAY)).select("tier", "energy_cost").rows())


@pytest.fixture
def two_lakes(tmp_path, small_inventory):
    a, b = Lake(tmp_path / "a"), Lake(tmp_path / "b")
    write_day(a)
    shutil.copytree(a.root, b.root)
    return a, b


def test_marts_computed_ahead_are_the_bytes_of_a_build(two_lakes, small_inventory):
    ahead_lake, built_lake = two_lakes
    build_day_marts(built_lake, DAY, small_inventory)
    with ahead.marts_ahead():
        assert ahead.start_marts(ahead_lake, DAY, small_inventory, None)
        assert marts_status(ahead_lake, DAY, small_inventory) == "missing"  # computed aside, nothing in the lake
        out = ahead.take_marts(ahead_lake, DAY, small_inventory)
    assert marts_status(ahead_lake, DAY, small_inventory) == "current"
    assert digests(ahead_lake) == digests(built_lake)
    assert out.rows["cost_by_tier_day"] == 2
    assert energy_cost_by_tier(ahead_lake) == pytest.approx({"premium": 0.30, "standard": 0.06})


def test_marts_computed_ahead_of_facts_changed_since_are_not_installed(tmp_path, small_inventory):
    lake = Lake(tmp_path / "lake")
    write_day(lake)
    with ahead.marts_ahead():
        ahead.start_marts(lake, DAY, small_inventory, None)
        ahead._STATE["pending"][(str(lake.root), DAY)].wait()
        # The facts rewritten after the marts were computed: r3's energy cost 0.05 -> 1.05.
        lake.write(request_costs().with_columns(
            pl.when(pl.col("request_id") == "r3").then(1.05).otherwise(pl.col("energy_cost")).alias("energy_cost")),
            "request_costs", DAY)
        ahead.take_marts(lake, DAY, small_inventory)
    # Built again from the new facts: standard = r3 + r4 = 1.05 + 0.01 = 1.06 (computed ahead: 0.06).
    assert energy_cost_by_tier(lake) == pytest.approx({"premium": 0.30, "standard": 1.06})
    assert marts_status(lake, DAY, small_inventory) == "current"


def test_a_run_that_ends_without_cost_marts_leaves_nothing(tmp_path, small_inventory):
    lake = Lake(tmp_path / "lake")
    write_day(lake)
    with ahead.marts_ahead():
        ahead.start_marts(lake, DAY, small_inventory, None)
        pending = ahead._STATE["pending"][(str(lake.root), DAY)]
        pending.wait()
        folder = pending.computed.folder
        assert (folder / "cost_by_tier_day.parquet").is_file()
    # The block ended (the facts' blocking check failed: `cost_marts` did not run).
    assert not folder.exists()
    assert marts_status(lake, DAY, small_inventory) == "missing"
    assert not lake.mart_path("cost_by_tier_day", DAY).exists()
    assert ahead._STATE == {"enabled": False, "pending": {}}


def test_nothing_is_computed_ahead_outside_the_runners_runs(tmp_path, small_inventory):
    lake = Lake(tmp_path / "lake")
    write_day(lake)
    assert not ahead.start_marts(lake, DAY, small_inventory, None)  # the daemon's, the UI's, a worker's step
    assert ahead._STATE["pending"] == {}
    ahead.take_marts(lake, DAY, small_inventory)  # builds, as before
    assert energy_cost_by_tier(lake) == pytest.approx({"premium": 0.30, "standard": 0.06})


def test_a_computation_that_failed_is_built_again_and_raises_its_error(tmp_path, small_inventory):
    lake = Lake(tmp_path / "lake")
    write_day(lake)
    for f in lake.partition_files("node_slots", DAY):
        Path(f).unlink()
    with ahead.marts_ahead():
        ahead.start_marts(lake, DAY, small_inventory, None)
        with pytest.raises(Exception, match="attribution outputs missing .*node_slots"):
            ahead.take_marts(lake, DAY, small_inventory)
