"""Where runs are recorded (DAGSTER_HOME, pipelines/instance.py) and an inventory outside the raw
folder (INFERLEDGER_INVENTORY, --inventory), through the real command line."""

import os
import shutil
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

import fleetsim
from pipelines.cli import main
from pipelines.instance import TEMPLATE, InstanceError, ensure_home, instance_config, relative_base_dirs

ROOT = Path(__file__).resolve().parent.parent
DAY = date(2026, 11, 24)
SITES = ("cloud-use1", "metro-east", "remote-plains")  # the simulated fleet's


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """A small simulated day (300 requests), its inventory moved out of the raw folder."""
    base = tmp_path_factory.mktemp("fleet")
    fleetsim.simulate(base / "raw", DAY, requests=300, seed=7)
    inventory = base / "config" / "fleet.yaml"
    inventory.parent.mkdir()
    (base / "raw" / "inventory.yaml").rename(inventory)
    return {"raw": base / "raw", "inventory": inventory}


def test_the_template_becomes_absolute_paths_under_the_home(tmp_path):
    text = instance_config(tmp_path)
    # storage, artifacts and compute logs: the template's three `base_dir`s, relative there.
    assert relative_base_dirs(TEMPLATE.read_text()) == ["storage", ".", "compute_logs"]
    assert relative_base_dirs(text) == []
    for path in (tmp_path / "storage", tmp_path, tmp_path / "compute_logs"):
        assert f"base_dir: \"{path}\"\n" in text
    assert "max_concurrent_runs: 2" in text  # the project's settings come along


def test_a_relative_storage_path_is_refused(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("storage:\n  sqlite:\n    base_dir: .dagster_home/storage\n")
    with pytest.raises(InstanceError, match=r"`\.dagster_home/storage` are relative"):
        ensure_home(home)
    (tmp_path / "file").write_text("")
    with pytest.raises(InstanceError, match="is a file"):
        ensure_home(tmp_path / "file")


def test_a_run_from_another_directory_is_recorded_under_dagster_home(fleet, tmp_path, request):
    """`inferledger run` started in an unrelated directory, DAGSTER_HOME relative and not existing,
    the inventory named by INFERLEDGER_INVENTORY outside the raw folder (issue 16, items 7 and 9).
    Recorded: 3 ingest runs (one per site) + 1 attribute_day + 1 publish_warehouse = 5 runs, in
    <cwd>/dagster-home, created with the project's settings; nothing else written in the cwd."""
    # The unrelated directory on tmpfs where there is one (tests/conftest.py, `fast_instance`): the
    # recorded runs' SQLite storage commits each of a day's ~1,000 events, ~20 ms each on disk.
    shm = Path("/dev/shm")
    cwd = Path(tempfile.mkdtemp(prefix="inferledger-elsewhere-", dir=shm if os.access(shm, os.W_OK) else tmp_path))
    request.addfinalizer(lambda: shutil.rmtree(cwd, ignore_errors=True))
    env = {**os.environ, "DAGSTER_HOME": "dagster-home", "INFERLEDGER_INVENTORY": str(fleet["inventory"]),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "run", "--date", DAY.isoformat(),
                           "--raw", str(fleet["raw"]), "--lake", str(tmp_path / "lake"),
                           "--warehouse", str(tmp_path / "wh" / "inferledger.duckdb")],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    home = cwd / "dagster-home"
    assert sorted(p.name for p in cwd.iterdir()) == ["dagster-home"]  # no .dagster_home/ or storage/ in the cwd
    assert relative_base_dirs((home / "dagster.yaml").read_text()) == []
    assert f"runs recorded in DAGSTER_HOME={home}; see them with `DAGSTER_HOME={home} dg dev`" in \
        " ".join(proc.stdout.split())
    with dg.DagsterInstance.from_config(str(home)) as inst:
        runs = inst.get_runs()
        assert sorted((r.job_name, r.tags.get("dagster/partition")) for r in runs) == sorted(
            [("attribute_day", DAY.isoformat()), ("publish_warehouse", None)]
            + [("ingest_day_site", f"{DAY.isoformat()}|{s}") for s in SITES])
        assert {r.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}
    assert (tmp_path / "wh" / "inferledger.duckdb").is_file()

    # check-data and report run with the same variables, from the same directory.
    wh = str(tmp_path / "wh" / "inferledger.duckdb")
    for command in (["check-data", "--date", DAY.isoformat(), "--raw", str(fleet["raw"]), "--lake",
                     str(tmp_path / "lake"), "--warehouse", wh, "--json", str(tmp_path / "check.json")],
                    ["report", "--warehouse", wh, "--out", str(tmp_path / "report.html")]):
        proc = subprocess.run([sys.executable, "-m", "pipelines.cli", *command], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (tmp_path / "report.html").is_file() and (tmp_path / "check.json").is_file()


def test_backfill_takes_the_inventory_flag(fleet, tmp_path, monkeypatch, capsys):
    """`backfill --inventory FILE` (an in-memory instance): the day's 3 sites ingested and
    attributed, with no inventory in the raw folder; the command says the runs were not recorded."""
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.delenv("INFERLEDGER_INVENTORY", raising=False)
    lake = tmp_path / "lake"
    assert main(["backfill", "--from", DAY.isoformat(), "--to", DAY.isoformat(), "--raw", str(fleet["raw"]),
                 "--lake", str(lake), "--inventory", str(fleet["inventory"]), "--no-publish"]) == 0
    assert sorted(p.name for p in (lake / "requests" / f"date={DAY}").iterdir()) == [f"site={s}" for s in SITES]
    assert (lake / "request_costs" / f"date={DAY}").is_dir()
    assert "runs not recorded (DAGSTER_HOME is not set" in " ".join(capsys.readouterr().out.split())
