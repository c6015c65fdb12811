"""The planner's tables from a real plan: kept as Parquet in a real lake (lake/plans.py), read back
as a publish builds them (warehouse/plans.py). The published, read-only side is in
tests/test_planning_ledger.py (the hand day's lake, published) and tests/test_report.py."""

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lake.plans import PlanRunIdError, plan_file
from tests.conftest import examples
from tests.planning_instances import two_pools_one_tier
from transforms.planning import plan
from warehouse.plans import SCHEMAS, PlanRun, keep_plan, markdown, published_frames

CENT = 1e-9
TODAY = {  # today (test_planning_hand): all on `dear`, 3 nodes: energy 3 x 0.30 = 0.90, rent 6.00, egress 0.054
    "energy_cost": 0.90, "rent_cost": 6.00, "egress_cost": 0.054, "amortization_cost": 0.0, "total_cost": 6.954}


def test_a_plan_kept_in_the_lake_gives_the_four_tables(tmp_path):
    lake = tmp_path / "lake"
    empty = published_frames(lake)  # no plan: four tables, no row, every column
    assert {n: (f.height, f.schema) for n, f in empty.items()} == {n: (0, s) for n, s in SCHEMAS.items()}
    p = plan(two_pools_one_tier())
    who = PlanRun("run-1", datetime(2026, 12, 7, 12, tzinfo=UTC), today=TODAY, calibrated=True, calibration="ok",
                  ledger_cost=6.954)
    written = keep_plan(lake, p, who)
    first = {f: f.read_bytes() for f in written}
    keep_plan(lake, p, who)  # kept again: replaced, not doubled, the same bytes
    assert {f: f.read_bytes() for f in written} == first and len(first) == 4
    frames = published_frames(lake)
    runs = frames["plan_runs"].select("kind", "horizon", "objective", "status", "binds_capacity",
                                      "binds_availability", "today_cost", "savings", "objective_misses").rows()
    # the plan: 2.954 (test_planning_hand); savings 6.954 - 2.954 = 4.00; no pool-hour over capacity
    assert runs == [("plan", "day", pytest.approx(2.954, abs=CENT), "Optimal", 2, 1, 6.954,
                     pytest.approx(4.0, abs=CENT), 0)]
    assert frames["plan_routing"].select("pool", "share").rows() == [("cheap", pytest.approx(2 / 3)),
                                                                     ("dear", pytest.approx(1 / 3))]
    # cheap: 2 x 0.10 + 2 x 0.20 + egress 200 tok/s x 3600 x 1000 B / 1e9 x 0.05 = 0.60 + 0.036
    # dear: 0.10 + 2.00 + 0.20 + 0.018 = 2.318
    assert frames["plan_nodes_by_pool_hour"].select("pool", "nodes_on", "total_cost", "over_capacity").rows() == [
        ("cheap", 2, pytest.approx(0.636, abs=CENT), False), ("dear", 1, pytest.approx(2.318, abs=CENT), False)]
    savings = dict(frames["plan_summary"].select("component", "savings").rows())
    # rent 6.00 - 2.00 = 4.00; total 6.954 - 2.954 = 4.00; energy 0.90 - 0.90 = 0
    assert savings == {"amortization_cost": 0.0, "egress_cost": pytest.approx(0.0, abs=CENT),
                       "energy_cost": pytest.approx(0.0, abs=CENT), "rent_cost": pytest.approx(4.0, abs=CENT),
                       "total_cost": pytest.approx(4.0, abs=CENT)}


def test_a_run_whose_write_was_interrupted_is_not_published(tmp_path):
    """A run's plan_runs file is written last: without it (a write killed before its end) the
    run's other files are left out of the tables, never half a run published."""
    lake = tmp_path / "lake"
    keep_plan(lake, plan(two_pools_one_tier()), PlanRun("run-1", datetime(2026, 12, 7, tzinfo=UTC)))
    plan_file(lake, "plan_runs", "run-1").unlink()
    assert plan_file(lake, "plan_routing", "run-1").exists()
    assert {n: f.height for n, f in published_frames(lake).items()} == dict.fromkeys(SCHEMAS, 0)
    with pytest.raises(PlanRunIdError, match=r"'\.\./x': use letters, digits"):
        plan_file(lake, "plan_runs", "../x")


SOLVED = plan(two_pools_one_tier())


@settings(max_examples=examples(15), deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.booleans()), min_size=1, max_size=8))
def test_kept_runs_are_published_once_each_whatever_the_writes(tmp_path_factory, writes):
    """Any sequence of writes of runs `a`, `b`, `c`, some interrupted (their plan_runs file lost):
    a run is published when its last write completed, once (one plan_runs row, its 2 routing rows,
    2 pool-hours, 5 summary rows), with the rows of that last write; never doubled, never half."""
    lake = tmp_path_factory.mktemp("plans") / "lake"
    last: dict[str, tuple[int, bool]] = {}
    for i, (run_id, interrupted) in enumerate(writes):
        keep_plan(lake, SOLVED, PlanRun(run_id, datetime(2026, 12, 7, tzinfo=UTC) + timedelta(minutes=i)))
        if interrupted:
            plan_file(lake, "plan_runs", run_id).unlink()
        last[run_id] = (i, interrupted)
    frames = published_frames(lake)
    done = sorted(r for r, (_, interrupted) in last.items() if not interrupted)
    assert frames["plan_runs"]["run_id"].to_list() == done
    assert frames["plan_runs"]["made_at"].to_list() == [datetime(2026, 12, 7, tzinfo=UTC)
                                                        + timedelta(minutes=last[r][0]) for r in done]
    per_run = {"plan_routing": 2, "plan_nodes_by_pool_hour": 2, "plan_summary": 5}
    for table, rows in per_run.items():
        assert frames[table].group_by("run_id").len().sort("run_id").rows() == [(r, rows) for r in done], table
    shutil.rmtree(lake.parent)


def test_docs_planning_carries_the_tables_dictionary():
    doc = (Path(__file__).parents[1] / "docs" / "planning.md").read_text()
    assert markdown() in doc, "docs/planning.md's tables are stale: paste warehouse.plans.markdown()"
