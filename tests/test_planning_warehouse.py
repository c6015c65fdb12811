"""The planner's tables written into a real DuckDB file from a real plan (warehouse/plan_tables.py)."""

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from tests.planning_instances import two_pools_one_tier
from transforms.planning import plan
from warehouse.plan_tables import PLAN_TABLES, PlanRun, markdown, write_plan

CENT = 1e-9


def test_a_plan_is_written_to_the_four_tables_with_comments(tmp_path):
    p = plan(two_pools_one_tier())
    who = PlanRun("run-1", datetime(2026, 12, 7, 12, tzinfo=UTC), today={
        # today (test_planning_hand): all on `dear`, 3 nodes: energy 3 x 0.30 = 0.90, rent 6.00, egress 0.054
        "energy_cost": 0.90, "rent_cost": 6.00, "egress_cost": 0.054, "amortization_cost": 0.0, "total_cost": 6.954})
    path = tmp_path / "plans.duckdb"
    with duckdb.connect(str(path)) as con:
        write_plan(con, p, who)
        write_plan(con, p, who)  # written again: replaced, not doubled
    with duckdb.connect(str(path), read_only=True) as con:
        runs = con.execute("SELECT horizon, objective, status, binds_capacity, binds_availability FROM plan_runs")
        assert runs.fetchall() == [("day", pytest.approx(2.954, abs=CENT), "Optimal", 2, 1)]
        routing = con.execute("SELECT pool, share FROM plan_routing ORDER BY pool").fetchall()
        assert routing == [("cheap", pytest.approx(2 / 3)), ("dear", pytest.approx(1 / 3))]
        nodes = con.execute("SELECT pool, nodes_on, total_cost FROM plan_nodes_by_pool_hour ORDER BY pool").fetchall()
        # cheap: 2 x 0.10 + 2 x 0.20 + egress 200 tok/s x 3600 x 1000 B / 1e9 x 0.05 = 0.60 + 0.036
        # dear: 0.10 + 2.00 + 0.20 + 0.018 = 2.318
        assert nodes == [("cheap", 2, pytest.approx(0.636, abs=CENT)), ("dear", 1, pytest.approx(2.318, abs=CENT))]
        summary = dict(con.execute("SELECT component, savings FROM plan_summary").fetchall())
        # savings: rent 6.00 - 2.00 = 4.00; total 6.954 - 2.954 = 4.00; energy 0.90 - 0.90 = 0
        assert summary["rent_cost"] == pytest.approx(4.0, abs=CENT)
        assert summary["total_cost"] == pytest.approx(4.0, abs=CENT)
        assert summary["energy_cost"] == pytest.approx(0.0, abs=CENT)
        comments = con.execute("SELECT count(*) FROM duckdb_columns() WHERE table_name LIKE 'plan_%' "
                               "AND comment IS NOT NULL AND comment <> ''").fetchone()[0]
        assert comments == sum(len(t.columns) for t in PLAN_TABLES)


def test_docs_planning_carries_the_tables_dictionary():
    doc = (Path(__file__).parents[1] / "docs" / "planning.md").read_text()
    assert markdown() in doc, "docs/planning.md's tables are stale: paste warehouse.plan_tables.markdown()"
