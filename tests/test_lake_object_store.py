"""The lake on an object store (issue 20): a local S3-compatible server (moto, tests/servers.py)
holds the lake; the night run on it gives the bytes of the night on local disk, a writer killed
before its manifest leaves nothing a reader sees, and a rerun replaces, never doubles."""

import hashlib
import os
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.fs as pafs
import pytest

from lake.inventory import load_inventory
from lake.objects import MANIFEST, TOKEN, ObjectLake
from lake.plans import plan_file, plan_files, write_plan_run
from lake.store import Lake
from pipelines.cli import main
from settings import resolve
from tests.conftest import built_once
from tests.days import build_reference_night, day_digests, lake_sha
from tests.servers import new_bucket
from warehouse.marts import build_day_marts, marts_status
from warehouse.tables import DAILY

DAY = date(2026, 11, 24)
ROOT = Path(__file__).resolve().parents[1]




def _night(raw: Path, lake: str, warehouse: Path, *more: str) -> None:
    assert main(["run", "--date", DAY.isoformat(), "--raw", str(raw), "--lake", lake, "--warehouse", str(warehouse),
                 *more]) == 0


@pytest.fixture(scope="module")
def nights(tmp_path_factory, _moto_endpoint):
    """A 3,000-request demo-fleet day (seed 5, invoices) run in-process with the lake on local disk
    (tests/days.py: built once per session, tests/test_celery_hosts.py compares with it too; read
    only here), then as `inferledger run` does with the lake on the S3 server, publishing to a
    local file."""
    night = built_once(tmp_path_factory, "reference-night", build_reference_night)
    root = tmp_path_factory.mktemp("s3-night")
    raw = night / "raw"
    store = new_bucket(_moto_endpoint)
    with pytest.MonkeyPatch.context() as mp:
        for k, v in store.env.items():
            mp.setenv(k, v)
        _night(raw, store.uri(), root / "s3" / "inferledger.duckdb")
        local, s3 = Lake(night / "lake"), Lake(store.uri())
        yield {"raw": raw, "root": root, "store": store, "local": local, "s3": s3,
               "local_root": night / "lake", "local_warehouse": night / "warehouse" / "inferledger.duckdb",
               "local_digests": day_digests(local), "s3_digests": day_digests(s3)}


def test_the_night_on_s3_gives_the_local_disk_bytes(nights):
    assert isinstance(nights["s3"], ObjectLake)
    assert nights["s3_digests"] == nights["local_digests"]
    assert len(nights["s3_digests"]) == len(DAILY) + 1
    # The same files, by the layout's names: every local Parquet file has its committed object.
    local_root = nights["local_root"]
    local = sorted(p.relative_to(local_root).as_posix() for p in local_root.rglob("*.parquet")
                   if not p.relative_to(local_root).as_posix().startswith("_"))
    s3 = sorted(k.removeprefix("lake/").removesuffix(MANIFEST) + ".parquet"
                for k in nights["store"].keys("lake/") if k.endswith(MANIFEST))
    assert s3 == local


def test_the_warehouse_published_from_s3_is_self_contained(nights, monkeypatch):
    """The published file answers with the store gone from the environment: the request detail is
    beside it, copied from the store, with the facts' rows."""
    for k in nights["store"].env:
        monkeypatch.delenv(k, raising=False)
    facts = pl.read_parquet(nights["local"].partition_file("request_costs", DAY))
    db = nights["root"] / "s3" / "inferledger.duckdb"
    local_db = nights["local_warehouse"]
    with duckdb.connect(str(db), read_only=True) as con, duckdb.connect(str(local_db), read_only=True) as ref:
        assert con.execute("SELECT count(*) FROM request_costs").fetchone()[0] == facts.height
        for t in DAILY:
            sql = f"SELECT * FROM {t.name}"
            assert con.execute(sql).fetchall() == ref.execute(sql).fetchall()


def test_the_night_from_a_raw_drop_on_s3_gives_the_local_disk_bytes(nights, tmp_path, monkeypatch):
    """`--raw s3://bucket/raw`: the raw day uploaded as delivered (request logs compressed as they
    are), the night run from it into another S3 lake by a worker with its own scratch directory:
    facts, marts, quarantine and ingest audit byte-identical to the night from local disk and
    into a local lake (the audit and quarantine name files relative to the raw drop, as there)."""
    store = nights["store"]
    pafs.copy_files(str(nights["raw"]), f"{store.bucket}/raw", source_filesystem=pafs.LocalFileSystem(),
                    destination_filesystem=store.fs())
    worker = tmp_path / "worker"
    worker.mkdir()
    monkeypatch.setenv("TMPDIR", str(worker))
    monkeypatch.setattr(tempfile, "tempdir", str(worker))
    for k, v in store.env.items():
        monkeypatch.setenv(k, v)
    _night(store.uri("raw"), store.uri("lake-from-raw-on-s3"), tmp_path / "w.duckdb")
    lake, local = Lake(store.uri("lake-from-raw-on-s3")), nights["local"]
    assert day_digests(lake) == nights["local_digests"]
    for dataset in ("quarantine", "ingest_audit", "requests", "power_readings", "cost_lines"):
        assert {lake.relative(p): lake_sha(lake, p) for p in lake.day_files(dataset, DAY)} == {
            local.relative(p): lake_sha(local, p) for p in local.day_files(dataset, DAY)}, dataset
    # The worker's mirror holds the delivered files, compressed as they are, under their names.
    mirror = next((worker / "inferledger-scratch" / "raw").iterdir())
    logs = sorted(nights["raw"].glob(f"{DAY.isoformat()}/*/requests/*"))
    assert logs and all((mirror / p.relative_to(nights["raw"])).read_bytes() == p.read_bytes() for p in logs)


def test_a_rerun_on_s3_replaces_and_collect_garbage_removes_the_superseded(nights):
    """Building the day's marts again writes new objects and moves the manifests to them: the
    same visible files and bytes, the old objects kept for the retention (a day), then collected."""
    s3, store = nights["s3"], nights["store"]
    inventory = load_inventory(nights["raw"] / "inventory.yaml")
    manifests = [k for k in store.keys("lake/") if k.endswith(MANIFEST)]
    before = {k for k in store.keys("lake/") if TOKEN.search(k)}
    assert marts_status(s3, DAY, inventory) == "current"
    build_day_marts(s3, DAY, inventory)
    after = {k for k in store.keys("lake/") if TOKEN.search(k)}
    assert [k for k in store.keys("lake/") if k.endswith(MANIFEST)] == manifests  # replaced, never doubled
    assert len(after - before) == len(DAILY) and before <= after  # one new object per mart, the old kept
    assert day_digests(s3) == nights["local_digests"] and marts_status(s3, DAY, inventory) == "current"
    assert ObjectLake(s3.root, retention_s=3600).collect_garbage() == []  # younger than the retention
    gone = ObjectLake(s3.root, retention_s=0).collect_garbage()
    assert len(gone) == len(DAILY) and {g.split("/", 3)[3] for g in gone} <= before  # the superseded only
    assert len({k for k in store.keys("lake/") if TOKEN.search(k)}) == len(manifests)
    assert day_digests(s3) == nights["local_digests"]


KILLED_WRITER = """
import os, signal, sys
import polars as pl
from datetime import date
from lake.objects import ObjectLake
ObjectLake.commit = lambda self, target, data: os.kill(os.getpid(), signal.SIGKILL)  # dies before its manifest
ObjectLake(sys.argv[1]).write(pl.DataFrame({"x": [10, 20, 30]}), "totals", date(2030, 1, 1))
"""


def test_a_writer_killed_before_its_manifest_leaves_nothing_visible(s3_server, tmp_path):
    lake = Lake(s3_server.uri())
    day = date(2030, 1, 1)
    lake.write(pl.DataFrame({"x": [1, 2, 3]}), "totals", day)  # committed: 1 + 2 + 3 = 6
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER, lake.root], env={**os.environ, "PYTHONPATH": str(ROOT)},
                          cwd=ROOT, capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    data = [k for k in s3_server.keys("lake/totals/") if TOKEN.search(k)]
    assert len(data) == 2  # the killed writer's object is in the bucket...
    assert pl.read_parquet(lake.partition_file("totals", day))["x"].sum() == 6  # ...and no reader sees it
    assert pl.read_parquet(lake.day_files("totals", day))["x"].to_list() == [1, 2, 3]
    # The rerun completes: 10 + 20 + 30 = 60, the bytes a local lake writes for the same frame.
    uri = lake.write(pl.DataFrame({"x": [10, 20, 30]}), "totals", day)
    # The committed object (its local copy in this worker's cache: `stamp` names the object).
    assert [lake.stamp(p) for p in lake.day_files("totals", day)] == [lake.stamp(uri)]
    assert pl.read_parquet(uri)["x"].sum() == 60
    local = Lake(tmp_path).write(pl.DataFrame({"x": [10, 20, 30]}), "totals", day)
    assert lake_sha(lake, uri) == hashlib.sha256(local.read_bytes()).hexdigest()
    # The orphan and the superseded object go once past the retention; the committed one stays.
    assert len(ObjectLake(lake.root, retention_s=0).collect_garbage()) == 2
    assert [k for k in s3_server.keys("lake/totals/") if TOKEN.search(k)] == [uri.split("/", 3)[3]]


def test_listings_on_s3_match_the_local_lake(s3_server, tmp_path):
    """The same writes into a local lake and an S3 lake list the same partitions, sites and days."""
    lakes = Lake(tmp_path), Lake(s3_server.uri())
    d1, d2 = date(2030, 1, 1), date(2030, 1, 2)
    frame = pl.DataFrame({"dataset": ["assets"], "status": ["read"]})
    for lake in lakes:
        lake.write(frame, "requests", d1, "east")
        lake.write(frame, "requests", d1, "west")
        lake.write(frame, "requests", d2, "west")
        lake.write(frame, "ingest_audit", d2, "_fleet", name="assets")
        lake.write(frame, "totals", d2)
    local, s3 = lakes
    assert [s3.relative(p) for p in s3.day_files("requests", d1)] == [local.relative(p) for p in local.day_files(
        "requests", d1)] == ["requests/date=2030-01-01/site=east/part-0.parquet",
                             "requests/date=2030-01-01/site=west/part-0.parquet"]
    for ask in (lambda lk: lk.sites("requests", d1), lambda lk: lk.days("requests"), lambda lk: lk.days_with("totals"),
                lambda lk: lk.audited("assets", d2), lambda lk: lk.delivered_days("assets"),
                lambda lk: [lk.relative(p) for p in lk.all_files("requests")],
                lambda lk: (lk.has_partition("totals", d2), lk.has_partition("totals", d1))):
        assert ask(s3) == ask(local)
    assert s3.sites("requests", d1) == ["east", "west"] and s3.days_with("totals") == [d2]
    assert not s3.exists(s3.partition_file("totals", d1)) and s3.exists(s3.partition_file("totals", d2))


def test_a_missing_bucket_is_an_error_not_an_empty_lake(s3_server):
    with pytest.raises(FileNotFoundError, match="s3://no-such-bucket-here/lake: the object store has no bucket"):
        Lake("s3://no-such-bucket-here/lake")


def test_the_lake_setting_takes_an_object_store_uri():
    assert resolve({"INFERLEDGER_LAKE": "s3://bucket/prefix/"}).lake == "s3://bucket/prefix"
    assert resolve({"INFERLEDGER_LAKE": "/srv/lake"}).lake == Path("/srv/lake")
    with pytest.raises(ValueError, match="gs://.*no object store speaks gs"):
        Lake("gs://bucket/lake")


def test_the_s3_endpoint_variable_alone_reaches_the_store(s3_server, monkeypatch):
    """`AWS_ENDPOINT_URL_S3` without `AWS_ENDPOINT_URL` nor `AWS_ALLOW_HTTP`, plain http: Polars
    and PyArrow both find the store."""
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.delenv("AWS_ALLOW_HTTP")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.endpoint)
    lake = Lake(s3_server.uri("other"))
    uri = lake.write(pl.DataFrame({"x": [4, 5]}), "totals", date(2030, 1, 1))  # 4 + 5 = 9
    assert pl.read_parquet(lake.partition_file("totals", date(2030, 1, 1)))["x"].sum() == 9
    assert s3_server.keys("other/") == sorted([uri.split("/", 3)[3], "other/totals/date=2030-01-01/part-0" + MANIFEST])


def test_planner_runs_kept_on_s3_are_published_only_when_committed(s3_server):
    """`lake.plans` on an object store: a run is listed once its plan_runs file is written; written
    again, it replaces (one file per table and run); removed, it is gone."""
    root = s3_server.uri()
    frames = {"plan_hours": pl.DataFrame({"x": [1, 2]}), "plan_runs": pl.DataFrame({"run_id": ["r1"]})}
    write_plan_run(root, "r1", frames)
    write_plan_run(root, "r1", {**frames, "plan_hours": pl.DataFrame({"x": [3, 4]})})  # 3 + 4 = 7
    found = plan_files(root, "plan_hours")
    assert len(found) == 1 and pl.read_parquet(found)["x"].sum() == 7
    write_plan_run(root, "r2", frames)
    assert [Lake(root).relative(p) for p in plan_files(root, "plan_hours")] == [
        "plans/plan_hours/run=r1.parquet", "plans/plan_hours/run=r2.parquet"]
    Lake(root).remove(plan_file(root, "plan_runs", "r2"))  # an interrupted run: its plan_runs file gone
    assert [Lake(root).relative(p) for p in plan_files(root, "plan_hours")] == ["plans/plan_hours/run=r1.parquet"]
