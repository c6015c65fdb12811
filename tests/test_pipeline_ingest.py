"""Real Dagster materializations of a simulated day into a temporary Parquet lake.

The simulator states which defects it injected; the ingest must quarantine exactly those,
account for every record of every raw file, keep prompt text out of the lake, and give
byte-identical files when a partition is run again.
"""

import hashlib
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import polars as pl
import pytest

import fleetsim
from lake.inventory import load_inventory
from pipelines.cli import main
from pipelines.defs.ingest.assets import requests
from pipelines.partitions import register_sites
from pipelines.resources import ParquetLake, RawInputs, Warehouse
from pipelines.runner import QUIET_RUN
from tests.conftest import built_once
from tests.days import DAY, INGESTED_REQUESTS, INGESTED_SEED, SITES, build_ingested_day, materialize_day
from transforms.ingest.market_prices import market_price_files

__all__ = ["DAY", "SITES", "materialize_day"]  # other modules import them from here


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    """The simulated day (10,000 requests, seed 11, invoices) ingested once per session
    (`build_ingested_day`, shared with tests/test_pipeline_attribution.py), copied: tests here run
    partitions again into the lake."""
    shared = built_once(tmp_path_factory, "ingested-day", build_ingested_day)
    root = tmp_path_factory.mktemp("ingest")
    raw, lake = root / "raw", root / "lake"
    shutil.copytree(shared / "raw", raw)
    shutil.copytree(shared / "lake", lake)
    instance = dg.DagsterInstance.ephemeral()
    register_sites(instance, SITES)
    summary = json.loads((shared / "summary.json").read_text())
    return {"raw": raw, "lake": lake, "summary": SimpleNamespace(**summary), "instance": instance,
            "runs": json.loads((shared / "runs.json").read_text())}


def _files_digest(lake: Path) -> dict[str, str]:
    return {p.relative_to(lake).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(lake.rglob("*.parquet"))}


def test_materializations_succeed_and_report_counts(day):
    # The four runs of the day's ingest, as the process that ran them recorded them (tests/days.py).
    assert len(day["runs"]) == len(SITES) + 1
    assert all(r["success"] for r in day["runs"])
    mats = [m for r in day["runs"] for m in r["materializations"]]
    assert sorted({m["asset"] for m in mats}) == ["asset_register", "cost_lines", "fx_rates",
                                                  "market_prices", "performance_profiles",
                                                  "power_readings", "requests"]
    for m in mats:
        md = m["metadata"]
        assert md["rows_read"] == md["rows_accepted"] + md["rows_quarantined"]


def test_quarantine_is_exactly_the_injected_defects(day):
    q = pl.read_parquet(day["lake"] / "quarantine" / "**" / "*.parquet", hive_partitioning=True)
    got: dict[str, dict[str, int]] = {}
    for ds, reason, n in q.group_by("dataset", "reason").len().sort("dataset", "reason").iter_rows():
        got.setdefault(ds, {})[reason] = n
    expected = {ds: dict(sorted(r.items())) for ds, r in day["summary"].expected_quarantine.items()}
    assert got == expected
    # Every quarantined row names its file and row, and says why.
    assert q.filter(pl.col("source_file").is_null() | pl.col("source_row").is_null()
                    | (pl.col("detail") == "")).height == 0


def test_audit_accounts_for_every_record_of_every_raw_file(day):
    raw, lake, summary = day["raw"], day["lake"], day["summary"]
    a = pl.read_parquet(lake / "ingest_audit" / "**" / "*.parquet", hive_partitioning=True)
    assert a.filter(pl.col("rows_read") != pl.col("rows_accepted") + pl.col("rows_quarantined")).height == 0
    delivered = sorted(p.relative_to(raw).as_posix() for p in (raw / DAY.isoformat()).rglob("*") if p.is_file())
    prices = sorted(market_price_files(load_inventory(raw / "inventory.yaml")))  # read by every day
    profiles = sorted(p.relative_to(raw).as_posix() for p in (raw / "profiles").glob("*.csv"))  # every day too
    assert profiles == ["profiles/demo.csv"]
    assert sorted(a["source_file"].to_list()) == sorted([*delivered, *prices, *profiles])
    price_rows = a.filter(pl.col("dataset") == "market_prices").select("source_file", "rows_read", "rows_accepted")
    assert price_rows.rows() == [(prices[0], 24, 24)]  # the day's hours of the one price file
    a = a.filter(~pl.col("dataset").is_in(["market_prices", "performance_profiles"]))
    # Records read per family equal what the simulator wrote.
    family = a.with_columns(pl.col("source_file").str.split("/").list.get(2).alias("family"))
    read = dict(family.group_by("family").agg(pl.col("rows_read").sum()).iter_rows())
    for fam in ("requests", "dcgm", "ipmi", "redfish", "facility", "focus", "electricity", "colocation", "assets"):
        assert read[fam] == summary.records[fam], fam
    # Accepted requests + quarantined requests = request lines written.
    req = pl.read_parquet(lake / "requests" / "**" / "*.parquet", hive_partitioning=True)
    assert req.height == summary.records["requests"] - sum(summary.expected_quarantine["requests"].values())
    assert req["request_id"].n_unique() == req.height
    assert req.select((pl.col("completed_at").dt.date() == DAY).all()).item()


def test_no_prompt_or_completion_text_in_any_parquet_file(day):
    raw, lake = day["raw"], day["lake"]
    secrets = []
    for log in sorted((raw / DAY.isoformat()).glob("*/requests/*.jsonl")):
        for line in log.read_text().splitlines()[:20]:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            for k in ("gen_ai.input.messages", "gen_ai.output.messages"):
                for msg in rec.get(k) or []:
                    for part in msg.get("parts", []) if isinstance(msg, dict) else []:
                        if isinstance(part, dict) and len(part.get("content", "")) > 20:
                            secrets.append(part["content"][:40])
    assert len(secrets) > 50, "the simulator must write prompt/completion text for this test to mean anything"
    files = sorted(lake.rglob("*.parquet"))
    assert len(files) > 10
    for f in files:
        df = pl.read_parquet(f)
        assert not any("messages" in c or c in ("prompt", "completion") for c in df.columns), f
        text_cols = [c for c, t in df.schema.items() if t == pl.String]
        if not text_cols or df.height == 0:
            continue
        hits = df.select(pl.any_horizontal(pl.col(c).str.contains_any(secrets) for c in text_cols).any()).item()
        assert not hits, f"prompt/completion text found in {f}"


def test_rerun_is_byte_identical_and_replaces_partitions(day, tmp_path):
    before = _files_digest(day["lake"])
    materialize_day(day["raw"], day["lake"], day["instance"])
    assert _files_digest(day["lake"]) == before

    # A raw file withdrawn and the partition run again: its rows leave the lake, nothing doubles.
    raw2 = tmp_path / "raw"
    fleetsim.simulate(raw2, DAY, requests=INGESTED_REQUESTS, seed=INGESTED_SEED, invoices=True)
    victim = sorted((raw2 / DAY.isoformat() / "remote-plains" / "requests").glob("*.jsonl"))[0]
    n_lines = sum(1 for ln in victim.read_text().splitlines() if ln.strip())
    victim.unlink()
    lake2 = tmp_path / "lake"
    shutil.copytree(day["lake"], lake2)
    resources = {"raw": RawInputs(root=str(raw2)), "lake": ParquetLake(root=str(lake2)), "warehouse": Warehouse()}
    assert dg.materialize([requests], partition_key=f"{DAY}|remote-plains", resources=resources,
                          instance=day["instance"], run_config=QUIET_RUN).success
    part = f"requests/date={DAY}/site=remote-plains/part-0.parquet"
    old = pl.read_parquet(day["lake"] / part).height
    new = pl.read_parquet(lake2 / part).height
    assert 0 < old - new <= n_lines
    assert sorted(p.name for p in (lake2 / f"requests/date={DAY}/site=remote-plains").iterdir()) == ["part-0.parquet"]


def test_cli_ingest_prints_counts_and_names_missing_inputs(day, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    lake = tmp_path / "lake"
    assert main(["ingest", "--date", str(DAY), "--raw", str(day["raw"]), "--lake", str(lake)]) == 0
    out = capsys.readouterr().out
    assert "remote-plains" in out and "exact_duplicate 3" in out and "malformed_record 1" in out
    assert _files_digest(lake) == _files_digest(day["lake"])

    with pytest.raises(SystemExit) as e:
        main(["ingest", "--date", "2026-11-25", "--raw", str(day["raw"]), "--lake", str(lake)])
    assert e.value.code == 2
    assert "no raw folder" in capsys.readouterr().err

    bad = tmp_path / "bad.yaml"
    bad.write_text((day["raw"] / "inventory.yaml").read_text().replace("design_pue:", "design_pew:", 1))
    with pytest.raises(SystemExit) as e:
        main(["ingest", "--date", str(DAY), "--raw", str(day["raw"]), "--lake", str(lake), "--inventory", str(bad)])
    assert e.value.code == 2
    assert "design_pew: unknown key" in capsys.readouterr().err
