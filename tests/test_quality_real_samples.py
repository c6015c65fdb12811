"""The cost_lines suite on the real FOCUS samples, ingested as the pipeline ingests them."""

from datetime import date
from pathlib import Path

import polars as pl
import pytest

from lake.readers import scan_csv_text
from transforms.contracts import COST_LINES
from transforms.ingest.bills import parse_focus
from transforms.ingest.common import accepted, classify
from transforms.quality import SuiteContext, format_report, validate_frame

REAL = Path(__file__).parent / "data" / "real"
DAY = date(2026, 11, 24)  # delivery day


def ingested_focus(files: list[Path], root: Path, inventory) -> pl.DataFrame:
    judged = classify(parse_focus(scan_csv_text(files, root, null_values=["NULL"]), inventory, "cloud-use1"),
                      COST_LINES, DAY).collect().lazy()
    return accepted(judged, COST_LINES).collect()


@pytest.fixture(scope="module")
def focus_1_0(small_inventory):
    root = REAL / "focus_sample_data_v1.0"
    lines = ingested_focus([root / "focus_sample.csv"], root, small_inventory)
    return validate_frame("cost_lines", lines, SuiteContext(inventory=small_inventory, day=DAY),
                          partition="focus_sample_data_v1.0/focus_sample.csv")


def test_focus_1_0_sample_passes_the_cost_lines_suite(focus_1_0):
    print(format_report([focus_1_0]))
    assert focus_1_0.rows == 1000
    assert focus_1_0.errors == []
    # Real finding: 12 Microsoft `Usage` lines are usage corrections, negative in cost and in
    # quantity. Legitimate in FOCUS, so warnings that a reviewer sees, not errors that stop a run.
    assert {r.name: r.unexpected_count for r in focus_1_0.warnings} == {
        "cost_lines.billed_amount.non_negative_charge": 12, "cost_lines.quantity.non_negative": 12}
    assert focus_1_0.result("cost_lines.currency.reporting_currency").success


def test_focus_1_2_examples_pass_the_cost_lines_suite(small_inventory):
    root = REAL / "focus_spec_v1.2_examples"
    lines = ingested_focus(sorted(root.glob("*.csv")), root, small_inventory)
    res = validate_frame("cost_lines", lines, SuiteContext(inventory=small_inventory, day=DAY), partition="focus 1.2")
    print(format_report([res]))
    assert res.rows == lines.height > 0
    assert res.errors == []
