"""The same request id on two days (issue 19, item 13): each day's checks see it once, so it was
costed, and billed, twice. The warehouse check `every_request_costed_once` is global across days:
it blocks the publish naming the id and both days; re-running a day (same inputs) never makes
its own ids duplicates, and once the copy is removed the night publishes."""

import json
import re
import shutil
from datetime import date

import polars as pl
import pytest

import fleetsim
from pipelines.cli import main
from warehouse.access import open_warehouse
from warehouse.publish import current_version

D1, D2 = date(2026, 11, 24), date(2026, 11, 25)


def published_days(wh) -> list:
    con = open_warehouse(wh)
    try:
        return [d for (d,) in con.sql("SELECT DISTINCT date FROM request_costs ORDER BY 1").fetchall()]
    finally:
        con.close()


def test_a_request_id_on_two_days_blocks_the_publish_naming_both_days(demo_warehouse, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    raw, lake, wh = tmp_path / "raw", tmp_path / "lake", tmp_path / "warehouse" / "inferledger.duckdb"
    shutil.copytree(demo_warehouse["raw"], raw)
    shutil.copytree(demo_warehouse["lake"], lake)
    paths = ["--raw", str(raw), "--lake", str(lake)]
    assert main(["publish", *paths, "--warehouse", str(wh)]) == 0
    night1 = current_version(wh)
    assert demo_warehouse["day"] == D1

    # Day 2's first request of one node carries an id day 1 already costed.
    fleetsim.simulate(raw, D2, requests=1_000, seed=3, invoices=False)
    taken = pl.read_parquet(lake / "requests" / f"date={D1}" / "site=metro-east" / "part-0.parquet")["request_id"][0]
    log = sorted((raw / D2.isoformat() / "remote-plains" / "requests").glob("*.jsonl"))[0]
    clean = log.read_text()
    first, rest = clean.split("\n", 1)
    own = json.loads(first)["gen_ai.response.id"]
    forged = re.sub(r'"gen_ai.response.id":"[^"]*"', f'"gen_ai.response.id":"{taken}"', first, count=1)
    log.write_text(forged + "\n" + rest)

    for _ in range(2):  # a day re-run with the same inputs: its own ids are not duplicates of themselves
        assert main(["ingest", "--date", D2.isoformat(), *paths]) == 0
        assert main(["attribute", "--date", D2.isoformat(), *paths]) == 0
    for part in lake.glob(f"ingest_audit/date={D2}/site=*/*.parquet"):
        a = pl.read_parquet(part)
        assert (a["rows_read"] == a["rows_accepted"] + a["rows_quarantined"]).all(), part
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main(["publish", *paths, "--warehouse", str(wh)])
    assert stop.value.code == 1
    said = " ".join("".join(capsys.readouterr()).split())
    assert "check every_request_costed_once on warehouse failed: 1 unexpected" in said
    assert f"'request_id': '{taken}', 'times': 2, 'accepted': None, 'days': '{D1}, {D2}'" in said
    assert (current_version(wh), published_days(wh)) == (night1, [D1])  # finance keeps night 1

    # The fix: the copy removed from day 2's log, day 2 re-run; the night publishes.
    log.write_text(clean)
    assert main(["ingest", "--date", D2.isoformat(), *paths]) == 0
    assert main(["attribute", "--date", D2.isoformat(), *paths]) == 0
    assert main(["publish", *paths, "--warehouse", str(wh)]) == 0
    assert published_days(wh) == [D1, D2]
    con = open_warehouse(wh)
    try:
        q = f"SELECT date FROM request_costs WHERE request_id IN ('{taken}', '{own}') ORDER BY 1"
        assert con.sql(q).fetchall() == [(D1,), (D2,)]
    finally:
        con.close()
