"""A request in flight at midnight through the whole pipeline (issue 16, item 3): `inferledger run`
for D, then for D+1, whose request log holds a request from 23:59:30 on D to 00:00:30 on D+1.
The second run attributes D again (pipelines/midnight.py), so each day charges its 30 s; the
warehouse counts the request once, on D+1, with both days' money; every check passes."""

import json
from datetime import date, datetime, timedelta, UTC

import polars as pl
import pytest

import fleetsim
from lake.store import Lake
from pipelines.cli import main
from pipelines.midnight import previous_day_stale
from warehouse.access import open_warehouse

D, D1 = date(2026, 11, 24), date(2026, 11, 25)
MIDNIGHT = datetime(2026, 11, 25, tzinfo=UTC)
NODE = "m-h200-01"
COMPONENTS = ("energy_cost", "demand_cost", "amortization_cost", "cloud_cost", "fixed_cost")


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _clear_midnight(log, keep=lambda r: True) -> dict:
    """Drop the node's requests that touch 23:57-00:03 around this midnight (so the request
    below is alone in its slots); returns one remaining record as a template."""
    lo, hi = MIDNIGHT - timedelta(minutes=3), MIDNIGHT + timedelta(minutes=3)
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]

    def touches(r):
        start = datetime.fromisoformat(r["time"].replace("Z", "+00:00"))
        return start < hi and start + timedelta(seconds=r["gen_ai.latency.e2e"] + 1) > lo

    kept = [r for r in rows if not touches(r)]
    log.write_text("".join(json.dumps(r) + "\n" for r in kept))
    return kept[0]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("midnight")
    raw, lake, wh = root / "raw", root / "lake", root / "warehouse" / "inferledger.duckdb"
    fleetsim.simulate(raw, D, requests=1_000, seed=5, invoices=True)
    fleetsim.simulate(raw, D1, requests=1_000, seed=6, invoices=False)
    _clear_midnight(raw / D.isoformat() / "metro-east" / "requests" / f"{NODE}.jsonl")
    log = raw / D1.isoformat() / "metro-east" / "requests" / f"{NODE}.jsonl"
    r = dict(_clear_midnight(log))
    # R: arrives 23:59:30 on D, no queue, 60 s end to end: completes 00:00:30 on D+1, logged there.
    r.update({"time": _iso(MIDNIGHT - timedelta(seconds=30)), "gen_ai.response.id": "midnight-R",
              "gen_ai.latency.time_in_queue": 0.0, "gen_ai.latency.e2e": 60.0})
    with log.open("a") as f:
        f.write(json.dumps(r) + "\n")
    paths = ["--raw", str(raw), "--lake", str(lake), "--warehouse", str(wh)]
    assert main(["run", "--date", D.isoformat(), "--no-publish", *paths]) == 0
    first = pl.read_parquet(lake / "request_costs" / f"date={D}" / "part-0.parquet")
    assert previous_day_stale(Lake(lake), D1) is False  # D+1 not ingested yet
    assert main(["run", "--date", D1.isoformat(), *paths]) == 0
    return {"lake": lake, "wh": wh, "paths": paths, "first": first}


def _facts(lake, day):
    return pl.read_parquet(lake / "request_costs" / f"date={day}" / "part-0.parquet")


def _slot(lake, day, slot):
    ns = pl.read_parquet(lake / "node_slots" / f"date={day}" / "part-0.parquet")
    return ns.filter((pl.col("node_id") == NODE) & (pl.col("slot") == slot)).row(0, named=True)


def test_each_day_charges_the_request_its_30_s_and_keeps_the_rest_of_the_slot_idle(runs):
    lake = runs["lake"]
    assert "midnight-R" not in runs["first"]["request_id"].to_list()  # D alone did not know it
    for day, slot in ((D, 1439), (D1, 0)):
        row = _facts(lake, day).filter(pl.col("request_id") == "midnight-R").row(0, named=True)
        ns = _slot(lake, day, slot)
        # R alone in the node's slot for 30 s of 60: half of every amount of the slot is R's,
        # the other half idle (the slot figures are the day's own, read back from node_slots).
        assert (row["occupied_s"], ns["occupied_s"], ns["active"]) == (30.0, 30.0, 1)
        assert row["date"] == day and row["completed_at"] == MIDNIGHT + timedelta(seconds=30)
        for c in ("it_energy_j", *COMPONENTS):
            assert row[c] == pytest.approx(ns[c] / 2, rel=1e-12), c
            assert ns[f"idle_{c}"] == pytest.approx(ns[c] / 2, rel=1e-12), c
        assert row["overhead_energy_j"] == pytest.approx(ns["overhead_j"] / 2, rel=1e-12)
        assert ns["energy_cost"] > 0 and ns["amortization_cost"] > 0


def test_the_warehouse_counts_the_request_on_its_completion_day_with_both_days_money(runs):
    con = open_warehouse(runs["wh"])
    try:
        rows = con.sql("SELECT date, direct_cost, CAST(completed_at AS DATE) = date AS completed "
                       "FROM request_costs WHERE request_id = 'midnight-R' ORDER BY date").fetchall()
        marts = dict(con.sql("SELECT date, sum(requests) FROM cost_by_tier_day GROUP BY date").fetchall())
        facts = dict(con.sql("SELECT date, count(*) FILTER (WHERE CAST(completed_at AS DATE) = date) "
                             "FROM request_costs GROUP BY date").fetchall())
        failing = con.sql("SELECT count(*) FROM reconciliation WHERE NOT within_tolerance").fetchall()[0][0]
    finally:
        con.close()
    assert [(d, completed) for d, _, completed in rows] == [(D, False), (D1, True)]
    assert all(cost > 0 for _, cost, _ in rows)
    # Counted once, on D+1: D's tier marts hold as many requests as D's log, D+1's as D+1's.
    assert marts == facts
    lake = runs["lake"]
    assert marts[D] == _facts(lake, D).height - 1 and marts[D1] == _facts(lake, D1).height
    assert failing == 0


def test_running_d_plus_1_again_attributes_d_again_to_the_same_bytes(runs):
    lake, files = Lake(runs["lake"]), {}
    for day in (D, D1):
        files[day] = (runs["lake"] / "request_costs" / f"date={day}" / "part-0.parquet").read_bytes()
    assert previous_day_stale(lake, D1) is False  # D was attributed after D+1's log was ingested
    assert previous_day_stale(lake, D1, changed_only=False) is True  # the log does hold an in-flight request
    assert main(["run", "--date", D1.isoformat(), "--no-publish", *runs["paths"]]) == 0
    # The ingest wrote D+1's log again, so D was attributed again (its facts are newer than
    # the log): byte-identical, like every rerun.
    assert previous_day_stale(lake, D1) is False
    for day in (D, D1):
        assert (runs["lake"] / "request_costs" / f"date={day}" / "part-0.parquet").read_bytes() == files[day]
