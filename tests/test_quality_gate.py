"""The quality gate end to end, through the commands the nightly path runs: a day with an
injected defect fails the named blocking check, and the published warehouse of the previous
night stays exactly as it was (issue 5's acceptance; the mart off by a dollar is in
test_warehouse_publish.py)."""

import csv
import io
import re
import shutil
import subprocess
from datetime import date

import polars as pl
import pytest

import fleetsim
from lake.store import Lake
from pipelines.cli import main
from warehouse.access import open_warehouse
from warehouse.publish import current_version

D2 = date(2026, 11, 25)


def state(wh):
    con = open_warehouse(wh)
    try:
        return current_version(wh), con.sql("SELECT * FROM cost_by_tier_day ORDER BY ALL").fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def night_base(demo_warehouse, tmp_path_factory):
    """The demo day published (night 1) and day 2 simulated, once per module; each test works on a
    clone (`night`): `cp -a` keeps the hard links (the published file is its version's) and times."""
    root = tmp_path_factory.mktemp("quality_gate") / "night"
    raw, lake, wh = root / "raw", root / "lake", root / "warehouse" / "inferledger.duckdb"
    shutil.copytree(demo_warehouse["raw"], raw)
    shutil.copytree(demo_warehouse["lake"], lake)
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("DAGSTER_HOME", raising=False)
        assert main(["publish", "--raw", str(raw), "--lake", str(lake), "--warehouse", str(wh)]) == 0
    fleetsim.simulate(raw, D2, requests=3_000, seed=21, invoices=False)
    return root


@pytest.fixture
def night(night_base, tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    root = tmp_path / "night"
    subprocess.run(["cp", "-a", str(night_base), str(root)], check=True)
    raw, lake, wh = root / "raw", root / "lake", root / "warehouse" / "inferledger.duckdb"
    args = ["--raw", str(raw), "--lake", str(lake), "--warehouse", str(wh)]
    return {"raw": raw, "lake": lake, "wh": wh, "args": args, "before": state(wh)}


@pytest.mark.parametrize("parallel", ["1", "2"])  # 2: the ingest runs in worker processes
def test_a_50_kw_gpu_is_quarantined_and_a_focus_line_without_a_rate_stays_unattributed(night, capsys, parallel):
    # Issue 16, item 5: a FOCUS line in EUR used to stop the night. No rate is delivered here: the
    # line stays unattributed (`no_fx_rate`) in EUR, and the day completes with every other cost.
    site = night["raw"] / D2.isoformat() / "cloud-use1"
    dcgm = sorted((site / "dcgm").glob("*.prom"))[0]
    dcgm.write_text(re.sub(r'(DCGM_FI_DEV_POWER_USAGE\{gpu="3"[^}]*\}) [0-9.]+', r"\1 50000.000", dcgm.read_text(),
                           count=1))
    focus = next((site / "focus").glob("*.csv"))
    lines = focus.read_text().splitlines(keepends=True)
    lines[1] = lines[1].replace(",USD,", ",EUR,")
    focus.write_text("".join(lines))
    eur = float(next(csv.DictReader(io.StringIO(lines[0] + lines[1])))["EffectiveCost"])  # its day: 00:00-01:00
    assert main(["run", "--date", D2.isoformat(), *night["args"], "--parallel", parallel]) == 0
    said = " ".join("".join(capsys.readouterr()).split())
    un = pl.read_parquet(night["lake"] / "unattributed" / f"date={D2}" / "part-0.parquet")
    assert un.filter(pl.col("reason") == "no_fx_rate").select("source", "component", "amount", "currency").rows() == [
        ("focus", "cloud_cost", eur, "EUR")]
    totals = pl.read_parquet(night["lake"] / "totals" / f"date={D2}" / "part-0.parquet")
    assert totals.filter(pl.col("component") == "cloud_cost")["unit"].to_list() == ["USD"]  # the EUR line is not in it
    # 50 kW on a GPU of 700 W TDP is out of range (transforms/bounds.py): that sample is quarantined at
    # ingest, naming its file and line, and the power suite passes on the rest.
    assert "power_readings.power_w.within_gpu_nameplate" not in said
    q = pl.read_parquet(night["lake"] / "quarantine" / f"date={D2}" / "site=cloud-use1" / "power_readings.parquet")
    assert q.filter(pl.col("reason") == "out_of_range")["source_file"].to_list() == [
        dcgm.relative_to(night["raw"]).as_posix()]
    facts = pl.read_parquet(night["lake"] / "request_costs" / f"date={D2}" / "part-0.parquet")
    assert facts.height > 0 and facts["cloud_cost"].sum() > 0 and facts["amortization_cost"].sum() > 0
    assert state(night["wh"]) != night["before"]  # the day was published


def test_negative_tokens_past_the_quarantine_stop_the_publish(night, capsys):
    assert main(["ingest", "--date", D2.isoformat(), *night["args"][:4]]) == 0
    # A bug writes a negative token count straight into the canonical lake (no quarantine on the way).
    part = night["lake"] / "requests" / f"date={D2}" / "site=remote-plains" / "part-0.parquet"
    rows = pl.read_parquet(part).with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(-40).otherwise(pl.col("output_tokens")).alias("output_tokens"))
    Lake(night["lake"]).write(rows, "requests", D2, "remote-plains")
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["attribute", "--date", D2.isoformat(), *night["args"][:4]])
    said = " ".join("".join(capsys.readouterr()).split())
    assert "check request_costs.output_tokens.non_negative on request_costs failed: 1 unexpected, e.g. [-40]" in said
    assert "not run (upstream failed): cost_marts" in said
    # The facts of D2 are in the lake, but their marts were never built: the publish refuses the day.
    with pytest.raises(SystemExit):
        main(["publish", *night["args"]])
    assert f"the marts of {D2} (missing)" in " ".join("".join(capsys.readouterr()).split())
    assert state(night["wh"]) == night["before"]
