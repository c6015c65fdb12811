"""`inferledger backfill`: a range of days, two at a time in worker processes, one publish at
the end; a failed day is named, the others are kept, and the same command run again resumes
with only what is left."""

import json
import re
from datetime import date

import fleetsim
from pipelines.cli import main
from warehouse.access import open_warehouse

DAYS = [date(2026, 11, 20), date(2026, 11, 21)]


def test_backfill_runs_days_in_parallel_names_failures_and_resumes(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    raw, lake, wh = tmp_path / "raw", tmp_path / "lake", tmp_path / "warehouse" / "inferledger.duckdb"
    for i, d in enumerate(DAYS):
        fleetsim.simulate(raw, d, requests=1_000, seed=30 + i, invoices=(i == 0))
    # The last day's FOCUS bill comes without its BilledCost column: every line is quarantined.
    focus = next((raw / DAYS[1].isoformat() / "cloud-use1" / "focus").glob("*.csv"))
    clean = focus.read_text()
    focus.write_text(re.sub(r"\bBilledCost\b", "BilledKost", clean, count=1))
    args = ["backfill", "--from", DAYS[0].isoformat(), "--to", DAYS[-1].isoformat(), "--parallel", "2",
            "--raw", str(raw), "--lake", str(lake), "--warehouse", str(wh)]

    assert main(args) == 1
    said = " ".join(capsys.readouterr().out.split())
    assert f"failed: {DAYS[1]}" in said and "cost_lines.sources.not_lost" in said
    assert "1 day(s) done, 1 failed" in said
    state = json.loads((lake / "_backfills" / f"{DAYS[0]}_{DAYS[-1]}.json").read_text())
    assert state["done"] == [DAYS[0].isoformat()]
    con = open_warehouse(wh)  # the day that succeeded is published
    assert con.sql("SELECT DISTINCT date FROM cost_by_tier_day ORDER BY 1").fetchall() == [(DAYS[0],)]
    con.close()

    focus.write_text(clean)  # the export is fixed upstream; the same command resumes
    assert main(args) == 0
    said = " ".join(capsys.readouterr().out.split())
    assert "resuming: 1 day(s) already done" in said and "1 day(s) done, 0 failed" in said
    con = open_warehouse(wh)
    assert con.sql("SELECT count(DISTINCT date), count(*) FILTER (WHERE NOT within_tolerance) "
                   "FROM reconciliation").fetchall() == [(2, 0)]
    con.close()
