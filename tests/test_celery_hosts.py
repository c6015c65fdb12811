"""Workers on separate machines (issue 20): two Celery workers that share no disk run the demo
night, with Dagster's run, event and schedule storage on a real PostgreSQL server and the
production instance file, deploy/dagster.yaml, as every process's instance.

"Separate machines" on one box: each worker runs in a Linux mount namespace of its own (`unshare
--mount`, root only; skipped otherwise) in which

- every directory of the test but `<root>/store` is hidden under an empty tmpfs: the test's own
  Dagster home and warehouse, the other worker's disk, the reference run, /dev/shm (where the
  PostgreSQL server keeps its data: the workers reach it, and Redis, over TCP only);
- its own directory is mounted at one path, `<root>/host`, that every worker's settings name
  (DAGSTER_HOME, TMPDIR, the DuckDB spill directory, the cache, its working directory): the same
  configuration on every machine, a different disk behind it.

What the workers share is Redis (the broker), PostgreSQL (Dagster's storage) and the lake on a
local S3 server (moto, tests/servers.py), reached over TCP; and the raw drop, `<root>/store/raw`,
the one directory of the test they see (read-only by use: the raw drop on the store is not done,
docs/deploy.md).

One night: the three sites' ingest, the day's attribution with the worker that runs it killed
mid-step (its Celery pool process, SIGKILL), the retry from the failure, then the publish (in the
run's own process: pipelines/defs/jobs/jobs.py). The marts are byte-identical to an in-process
run of the same jobs on the same raw files, and so is every table of the published warehouse.

Where a worker cannot have a mount namespace (not root, or no `unshare`), the same night runs with
each worker's settings naming its own directory but nothing hidden: workers sharing one disk.
This night is the suite's one Celery night: tests/test_celery.py ran a second one (workers on one
disk, SQLite storage) whose assertions are all made here (it was folded in on 2026-12-08).
"""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from lake.objects import TOKEN
from lake.store import Lake
from pipelines.attribution import OUTPUTS
from pipelines.partitions import register_sites
from pipelines.runner import QUIET_RUN
from tests.celery_workers import (
    ROOT,
    WORKERS,
    alarm_after,
    redis_binary,
    start_redis,
    wait_for_workers,
    warehouse_tables,
)
from tests.conftest import built_once
from tests.days import build_reference_night
from tests.servers import free_port, new_bucket, stop_session
from tests.test_pipeline_ingest import DAY, SITES
from warehouse.tables import DAILY

pytestmark = pytest.mark.filterwarnings("ignore:Task name 'execute_plan' is already registered")

INSTANCE = ROOT / "deploy" / "dagster.yaml"
# The day's six runs, one after the other; minutes on a loaded 2-core machine.
CELERY_NIGHT_TIMEOUT_S = 900
# Mounts, then the worker, in the namespace `unshare --mount` gives the shell: hide every other
# disk of the test, put this worker's own directory at the path every worker's settings name.
# Without a namespace (`_can_isolate`), only what follows the mounts (PREPARE), HOST_DIR naming the
# worker's own directory.
PREPARE = """mkdir -p "$HOST_DIR/work" "$HOST_DIR/tmp" "$HOST_DIR/dagster_home"
cp "$INSTANCE" "$HOST_DIR/dagster_home/dagster.yaml"
cd "$HOST_DIR/work"
exec "$@"
"""
ISOLATE = """set -e
mount --make-rprivate /
for d in $HIDE; do mount -t tmpfs -o size=64m,mode=0755 hidden "$d"; done
mount --bind "$OWN" "$HOST_DIR"
""" + PREPARE


def _can_isolate() -> str | None:
    """Why a worker cannot get a mount namespace of its own here, or None when it can."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return "needs root and util-linux's `unshare` to give each worker a mount namespace (a disk) of its own"
    probe = subprocess.run(["unshare", "--mount", "sh", "-c", "mount --make-rprivate / && "
                            "mount -t tmpfs probe /mnt && umount /mnt"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return f"`unshare --mount` cannot mount here ({probe.stderr.strip()[-300:]})"
    return None


def _start_worker(name: str, root: Path, env: dict, log: Path, isolated: bool = True) -> subprocess.Popen:
    own = root / name
    own.mkdir()
    hide = [root / "test", root / "reference", root / "services", *(root / w for w in WORKERS), Path("/dev/shm")]
    if not isolated:  # its settings name its own directory instead of the shared mount point
        env = {k: v.replace(str(root / "host"), str(own)) for k, v in env.items()}
    env = {**env, "OWN": str(own), "HOST_DIR": str(root / "host" if isolated else own), "INSTANCE": str(INSTANCE),
           "HIDE": " ".join(str(d) for d in hide)}
    worker = [str(Path(sys.executable).parent / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app",
              "-y", str(ROOT / "deploy" / "celery.yaml"), "-n", name, "--",
              "--concurrency=1", "--without-gossip", "--without-mingle"]
    with open(log, "wb") as out:
        shell = ["unshare", "--mount", "sh", "-c", ISOLATE] if isolated else ["sh", "-c", "set -e\n" + PREPARE]
        return subprocess.Popen([*shell, "isolate", *worker], stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _leaves(pid: int) -> list[int]:
    """The processes under `pid` with no child: a Celery worker's pool processes."""
    kids = _children(pid)
    return [leaf for k in kids for leaf in _leaves(k)] if kids else [pid]


def _attribution_running(con) -> str | None:
    """The Celery worker (its -n name) running the latest `request_costs` step: started, not ended.
    Read from Dagster's event log tables in Postgres directly: fast enough to poll."""
    with con.cursor() as cur:
        cur.execute("""
            SELECT run_id, string_agg(dagster_event_type, ',' ORDER BY id) FROM event_logs
            WHERE step_key = 'request_costs' AND run_id = (
                SELECT run_id FROM event_logs WHERE step_key = 'request_costs'
                AND dagster_event_type = 'STEP_START' ORDER BY id DESC LIMIT 1)
            AND dagster_event_type IN ('STEP_START', 'STEP_SUCCESS', 'STEP_FAILURE', 'ENGINE_EVENT')
            GROUP BY run_id""")
        row = cur.fetchone()
        if row is None or "STEP_SUCCESS" in row[1] or "STEP_FAILURE" in row[1]:
            return None
        cur.execute("SELECT event FROM event_logs WHERE run_id = %s AND step_key = 'request_costs' "
                    "AND dagster_event_type = 'ENGINE_EVENT' AND event LIKE %s", (row[0], "%Celery worker%"))
        for (event,) in cur.fetchall():
            for worker in WORKERS:
                if f"{worker}@" in event:
                    return worker
    return None


def _celery_run(name: str, key: str | None, reexecute_from: str | None = None,
                on_run=None) -> dict:
    """One run of a job of `pipelines.celery_definitions` planned here, its steps on the workers
    (tests/test_celery.py's `_run_on_celery`, and a retry from a failed run's failure)."""
    job = dg.build_reconstructable_job("pipelines.celery_definitions", "job", (name,),
                                       reconstructor_working_directory=str(ROOT))
    tags = job.get_definition().get_tags_for_partition_key(key, None) if key else {}
    with dg.DagsterInstance.get() as instance:
        options = dg.ReexecutionOptions.from_failure(reexecute_from, instance) if reexecute_from else None
        with dg.execute_job(job, instance, run_config=QUIET_RUN, tags=tags, reexecution_options=options) as res:
            engine = instance.all_logs(res.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
            hosts = {str(md["Celery worker"].value).split("@")[0] for e in engine
                     if "Celery worker" in (md := e.dagster_event.engine_event_data.metadata)}
            return {"job": name, "partition": key, "run_id": res.run_id, "success": res.success,
                    "hosts": sorted(hosts), "steps": sorted({e.step_key for e in res.all_events if e.is_step_success}),
                    "failures": [e.message for e in res.all_events if e.is_step_failure or e.is_run_failure]
                    + [str(e.event_specific_data.error) for e in res.all_events
                       if getattr(e.event_specific_data, "error", None)]}


def _visible(lake: Lake) -> dict:
    """What a reader of the lake sees of the day's attribution (its outputs, request_costs and the
    small frames) and of its marts."""
    return {"attribution": sorted(name for name in OUTPUTS if lake.partition_files(name, DAY)),
            "marts": lake.exists(lake.marts_manifest(DAY))}


def _unreadable(lake: Lake) -> list[str]:
    """The day's attribution files a reader sees but cannot read whole."""
    bad = []
    for name in OUTPUTS:
        for f in lake.partition_files(name, DAY):
            try:
                pl.read_parquet(str(f))
            except Exception as e:  # any failure to read is what is looked for
                bad.append(f"{f}: {e}")
    return bad


def _lake_digest(lake: Lake) -> dict[str, str]:
    """SHA-256 of each daily mart of DAY and of the day's request facts, wherever the lake is."""
    def sha(path) -> str:
        with lake.open_read(path) as f:
            return hashlib.sha256(f.read()).hexdigest()
    return {**{t.name: sha(lake.mart_path(t.name, DAY)) for t in DAILY},
            "request_costs": sha(lake.partition_file("request_costs", DAY))}


def _written(store) -> list[str]:
    """The day's facts objects in the bucket, committed or not (lake/objects.py's unique names)."""
    return [k for k in store.keys(f"lake/request_costs/date={DAY}/") if TOKEN.search(k)]


def _manifest(lake: Lake) -> dict:
    """The day's marts build manifest less what differs by nature between a disk and a store (file
    times, object names): what it was built from (the inventory, each source's size, the columns)
    and each mart's size."""
    m = json.loads(lake.read_text(lake.marts_manifest(DAY)))
    m["built_from"]["sources"] = {f: stamp[0] for f, stamp in m["built_from"]["sources"].items()}
    return {**m, "marts": {name: stamp[0] for name, stamp in m["marts"].items()}}


def _kill_attribution(postgres, store, processes: dict[str, subprocess.Popen], found: dict) -> None:
    """Watch the event log (Postgres) for the attribution step's start, then the store for the
    first object of the day's attribution (its facts, uploaded first, before the seven other
    outputs and the day's commit record); SIGKILL the pool process of the worker running the step
    as soon as it appears: the step has begun writing the day and not committed it."""
    deadline = time.monotonic() + CELERY_NIGHT_TIMEOUT_S
    con = postgres.connect()
    con.autocommit = True
    try:
        while time.monotonic() < deadline:
            if worker := _attribution_running(con):
                while not _written(store) and time.monotonic() < deadline:
                    time.sleep(0.01)
                pool = _leaves(processes[worker].pid)
                for pid in pool:
                    os.kill(pid, signal.SIGKILL)
                found.update(worker=worker, killed=pool, seen=_written(store))
                return
            time.sleep(0.1)
    finally:
        con.close()


@pytest.fixture(scope="module")
def hosts_night(tmp_path_factory, postgres_server, _moto_endpoint):
    why_not = _can_isolate()  # None: each worker on a disk of its own; else workers sharing one disk
    redis_binary()  # or skip, saying why
    root = tmp_path_factory.mktemp("hosts")
    for d in ("test", "reference", "services", "host", "store"):
        (root / d).mkdir()
    raw = root / "store" / "raw"
    store = new_bucket(_moto_endpoint)  # the lake on the local S3 server
    lake = store.uri("lake")
    host = root / "host"
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("INFERLEDGER_", "PYTEST_", "DAGSTER_"))}
    shared = {**postgres_server.dagster_env, **store.env,
              "INFERLEDGER_RAW": str(raw), "INFERLEDGER_LAKE": lake,
              "INFERLEDGER_CELERY_BROKER": f"redis://127.0.0.1:{port}/0",
              "INFERLEDGER_CELERY_BACKEND": f"redis://127.0.0.1:{port}/1",
              "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    # Every worker: the same settings, naming its own disk at `host`.
    worker_env = {**base, **shared, "DAGSTER_HOME": str(host / "dagster_home"), "TMPDIR": str(host / "tmp"),
                  "XDG_CACHE_HOME": str(host / "cache"), "INFERLEDGER_DUCKDB_TEMP": str(host / "duckdb"),
                  "INFERLEDGER_WAREHOUSE": str(host / "warehouse" / "inferledger.duckdb")}
    # The test's process plans every run (a deployment's run worker) and runs the publish.
    home = root / "test" / "dagster_home"
    home.mkdir()
    shutil.copy(INSTANCE, home / "dagster.yaml")
    test_env = {**shared, "DAGSTER_HOME": str(home),
                "INFERLEDGER_WAREHOUSE": str(root / "test" / "warehouse" / "inferledger.duckdb")}
    procs: dict[str, subprocess.Popen] = {}
    logs = [root / "services" / "redis.log", *(root / "services" / f"{w}.log" for w in WORKERS)]
    on_sigterm = signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        with pytest.MonkeyPatch.context() as mp:
            for k, v in test_env.items():
                mp.setenv(k, v)
            # Dagster's schema in Postgres, and the site partitions, before any worker opens it.
            with dg.DagsterInstance.get() as instance:
                register_sites(instance, SITES)
            procs["redis"] = start_redis(port, root / "services", logs[0])
            for worker, log in zip(WORKERS, logs[1:], strict=True):
                procs[worker] = _start_worker(worker, root, worker_env, log, isolated=why_not is None)

            # While the workers start: the same night in-process on local disk (3,000 requests, seed 5,
            # tests/days.py), built once per session (tests/test_lake_object_store.py compares with it
            # too); its raw files to the store, its lake and warehouse beside the test (hidden from the workers).
            started = time.perf_counter()
            night = built_once(tmp_path_factory, "reference-night", build_reference_night)
            shutil.copytree(night / "raw", raw)
            shutil.copytree(night / "lake", root / "reference" / "lake")
            shutil.copy2(night / "warehouse" / "inferledger.duckdb", root / "reference" / "inferledger.duckdb")
            reference = _lake_digest(Lake(root / "reference" / "lake"))
            baseline_s = time.perf_counter() - started

            wait_for_workers(shared["INFERLEDGER_CELERY_BROKER"], list(procs.values()), logs)

            started = time.perf_counter()
            with alarm_after(CELERY_NIGHT_TIMEOUT_S, logs):
                results = [_celery_run("ingest_day_site", f"{DAY}|{site}") for site in SITES]
                killed: dict = {}
                watcher = threading.Thread(target=_kill_attribution, args=(postgres_server, store, procs, killed),
                                           daemon=True)
                watcher.start()
                results.append(_celery_run("attribute_day", str(DAY)))
                watcher.join(10)
                after_kill = {**_visible(Lake(lake)), "unreadable": _unreadable(Lake(lake))}
                results.append(_celery_run("attribute_day", str(DAY), reexecute_from=results[-1]["run_id"]))
                results.append(_celery_run("publish_warehouse", None))
            seconds = time.perf_counter() - started
            on_store = _lake_digest(Lake(lake))
            manifests = {"reference": _manifest(Lake(root / "reference" / "lake")), "on_store": _manifest(Lake(lake))}
    finally:
        known = locals()
        (root / "services" / "night.json").write_text(json.dumps(
            {k: known.get(k) for k in ("results", "killed", "after_kill", "baseline_s", "seconds")},
            indent=1, default=str))
        for p in reversed(procs.values()):
            stop_session(p)
        signal.signal(signal.SIGTERM, on_sigterm)
    return {"root": root, "results": results, "killed": killed, "after_kill": after_kill, "seconds": seconds,
            "baseline_seconds": baseline_s, "logs": logs, "postgres": postgres_server, "store": store,
            "reference": reference, "on_store": on_store, "manifests": manifests}


def test_the_night_succeeds_on_workers_with_no_shared_disk(hosts_night):
    ingest, killed_run, retry, publish = (hosts_night["results"][:3], *hosts_night["results"][3:])
    for r in [*ingest, retry, publish]:
        assert r["success"], f"{r['job']} {r['partition']}: {r['failures']}"
        assert r["steps"], f"{r['job']} ran no step"
    for r in [*ingest, retry]:  # each run's steps on the workers (folded from tests/test_celery.py)
        assert r["hosts"], f"{r['job']} {r['partition']}: no step reported a Celery worker"
    assert {h for r in [*ingest, killed_run, retry] for h in r["hosts"]} == set(WORKERS)
    assert publish["hosts"] == []  # the publish ran in the run's own process, beside its warehouse
    print(f"\nin-process day: {hosts_night['baseline_seconds']:.1f} s; workers' night: "
          f"{hosts_night['seconds']:.1f} s; killed {hosts_night['killed']}")


def test_a_worker_killed_mid_attribution_leaves_nothing_visible_and_the_retry_completes(hosts_night):
    """Killed as the day's first object appeared in the store: the run fails; a reader sees none
    of the day's eight outputs (the day is one commit, lake/commits.py: all eight, had the kill
    come after the commit record), no half file; the day has no marts, so nothing of it can be
    published; the retry from the failure attributes the day and builds its marts."""
    killed_run, retry = hosts_night["results"][3:5]
    killed = hosts_night["killed"]
    assert killed.get("worker") in WORKERS, f"the watcher never saw the attribution start: {killed}"
    assert killed["seen"], "killed before the step began writing the day"
    assert not killed_run["success"]
    assert "request_costs" not in killed_run["steps"]
    after = hosts_night["after_kill"]
    assert after["unreadable"] == []
    assert after["marts"] is False
    assert after["attribution"] in ([], sorted(OUTPUTS)), after  # never part of a day
    assert {"request_costs", "cost_marts"} <= set(retry["steps"])


def test_marts_are_byte_identical_to_the_in_process_run(hosts_night):
    """Every daily mart of the day and its request facts, read from the store, have the bytes of
    the in-process run's on local disk."""
    assert len(hosts_night["reference"]) == len(DAILY) + 1
    assert hosts_night["on_store"] == hosts_night["reference"]
    # Built from the same sources (names and sizes), written the same marts (folded from tests/test_celery.py).
    assert hosts_night["manifests"]["on_store"] == hosts_night["manifests"]["reference"]


def test_published_warehouse_matches_the_in_process_one(hosts_night):
    root = hosts_night["root"]
    expected = warehouse_tables(root / "reference" / "inferledger.duckdb")
    got = warehouse_tables(root / "test" / "warehouse" / "inferledger.duckdb")
    assert sorted(got) == sorted(expected)
    for name, frame in expected.items():
        assert got[name].equals(frame), name


def test_dagster_storage_was_postgres_and_workers_kept_their_own_disks(hosts_night):
    """The runs are in PostgreSQL; each worker wrote only its own disk: its Celery configuration
    and nothing else in its DAGSTER_HOME (no step output, no compute log, no SQLite file)."""
    with hosts_night["postgres"].connect() as con, con.cursor() as cur:
        cur.execute("SELECT pipeline_name, count(*) FROM runs GROUP BY 1 ORDER BY 1")
        runs = dict(cur.fetchall())
    assert runs == {"attribute_day": 2, "ingest_day_site": 3, "publish_warehouse": 1}
    root = hosts_night["root"]
    for worker in WORKERS:
        home = root / worker / "dagster_home"
        written = sorted(p.relative_to(home).parts[0] for p in home.rglob("*") if p.is_file())
        assert set(written) <= {"dagster.yaml", "dagster_celery"}, (worker, written)
        assert not list((root / worker).rglob("*.db")), worker
    assert not list((root / "host").iterdir())  # the mount point stayed empty: each worker's own disk
    assert not list((root / "store").glob("lake*"))  # the lake is on the store only


def test_the_deploy_instance_keeps_each_machine_s_paths_its_own(postgres_server, tmp_path, monkeypatch):
    """deploy/dagster.yaml on the real server, without workers (runs wherever PostgreSQL does): the
    settings a Celery worker receives with a step (the run's instance ref) name no path of the
    planning machine, so a worker opening them with its own DAGSTER_HOME keeps its files there,
    and sees the run the planning machine recorded, in Postgres."""
    for k, v in postgres_server.dagster_env.items():
        monkeypatch.setenv(k, v)
    planner, worker = tmp_path / "planner", tmp_path / "worker"
    for home in (planner, worker):
        home.mkdir()
    shutil.copy(INSTANCE, planner / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(planner))

    @dg.asset
    def one() -> None:
        return None

    with dg.DagsterInstance.get() as instance:
        run_id = dg.materialize([one], instance=instance).run_id
        ref = instance.get_ref()
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert str(planner) not in ref.local_artifact_storage_data.config_yaml  # `{env: DAGSTER_HOME}`, unresolved
    assert ref.compute_logs_data.class_name == "NoOpComputeLogManager"
    monkeypatch.setenv("DAGSTER_HOME", str(worker))
    with dg.DagsterInstance.from_ref(ref) as on_worker:
        assert on_worker.get_run_by_id(run_id).is_success
        assert on_worker.storage_directory() == str(worker / "storage")
