import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest
from hypothesis import settings

from lake.inventory import load_inventory
from pipelines.adapters.dagster_private import forget_defs_state_storage
from pipelines.cli import DEMO_DAY, main
from tests.postgres import postgres_server  # noqa: F401  (a fixture: a real PostgreSQL server)
from tests.servers import S3Store, moto_server, new_bucket
from transforms.inventory import Inventory

DATA = Path(__file__).parent / "data"

# Hypothesis profiles (Makefile: `test`, `test-deep`). `ci`: the same examples on every run
# (derandomized, no example database), the budget each test asks for; `dev` (a local `make
# test`): random examples at the same budget, failures replayed from .hypothesis/; `deep`
# (`make test-deep`): random, twenty times the examples, for hunting counterexamples.
# INFERLEDGER_HYPOTHESIS names one; otherwise `ci` when the CI variable is set, else `dev`.
settings.register_profile("ci", max_examples=100, derandomize=True, database=None, deadline=None, print_blob=True)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.register_profile("deep", max_examples=2000, deadline=None)
HYPOTHESIS_PROFILE = os.environ.get("INFERLEDGER_HYPOTHESIS") or (
    "ci" if os.environ.get("CI", "").lower() not in ("", "0", "false") else "dev")
settings.load_profile(HYPOTHESIS_PROFILE)


def examples(n: int) -> int:
    """A property test's example count: `n` at the `ci`/`dev` budget (100), scaled by the loaded
    profile (`deep`: 20 n). A decorator's own `max_examples` overrides any profile, so every
    `@settings` in tests/ asks through this."""
    return max(1, n * settings.default.max_examples // 100)


# The order modules are handed to the two workers (`--dist loadfile`): the heaviest first, so that
# the last modules to start are short ones and both workers finish together. xdist would otherwise
# order modules by their number of tests, which sent the slow modules of one or two tests (Celery,
# crash safety, backfill: a pipeline day each) last, one worker idle while the other ran them. By a
# full run's `--durations` on 2026-12-07 (docs/operations.md, "Test suite time"); the modules
# reading the session's demo day (`demo_warehouse`) alternate with modules that do not, so one
# worker builds it while the other works. A module not listed runs after these, in file order.
# test_celery_hosts (137 s of set-up in the fresh-clone CI of 2026-12-07, the heaviest by far) and
# test_lake_object_store (47 s) were missing, so they started after every listed module; so was
# test_lake_commits (real processes killed on moto and on disk: 6 min 20 s at a load of 15, by its
# commit; not measured here).
HEAVY_FIRST = (
    "test_celery_hosts", "test_automation", "test_warehouse_publish", "test_late_bills", "test_crash_safety",
    "test_lake_object_store", "test_lake_commits",
    "test_instance_and_inventory", "test_quality_cross_day", "test_pipeline_midnight", "test_quality_gate",
    "test_sql_access_attacks", "test_demo_day_acceptance", "test_asset_register_in_force",
    "test_quality_sources", "test_check_data", "test_run_parallel", "test_backfill", "test_pipeline_ingest",
    "test_definitions", "test_import_trace", "test_quality_pipeline", "test_attribution_properties",
    "test_ingest_json_files", "test_settings", "test_demo_real", "test_planning_ledger", "test_first_day",
    "test_cloud_only_fleet", "test_pipeline_attribution", "test_fx_day", "test_allocator",
    "test_ingest_awkward_files", "test_report_power_below_idle", "test_market_price_formats",
)


def pytest_configure(config):
    """xdist's `--dist loadfile` sorts modules by their number of tests unless told not to
    (`--no-loadscope-reorder`); the order of HEAVY_FIRST is kept instead."""
    if getattr(config.option, "loadscopereorder", None) is not None:
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config, items):
    """Modules of HEAVY_FIRST first, in its order; a module's own tests keep their order."""
    rank = {name: i for i, name in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(Path(item.nodeid.split("::", 1)[0]).stem, len(rank)))


@pytest.fixture(autouse=True, scope="session")
def _no_dagster_home():
    """`make test` exports DAGSTER_HOME (the checkout's .dagster_home/, Makefile): every command a
    test ran without unsetting it first (a module fixture runs before the test's monkeypatch)
    recorded its runs there, SQLite on disk at ~20 ms a commit, both workers in one storage.
    The session runs on ephemeral instances; a test wanting recorded runs names its own home."""
    saved = os.environ.pop("DAGSTER_HOME", None)
    yield
    if saved is not None:
        os.environ["DAGSTER_HOME"] = saved


@pytest.fixture(autouse=True)
def _forget_dagster_state_storage():
    """A Dagster instance registers its definitions-state storage in a context variable that
    outlives the instance; a later definitions load in the same worker would then read a dead
    instance. Forget it around each test."""
    forget_defs_state_storage()
    yield
    forget_defs_state_storage()


@pytest.fixture(autouse=True, scope="module")
def _forget_dagster_state_storage_per_module():
    """The same before a module's own fixtures: an instance a previous module's fixture closes
    restores, on exit, whatever storage was current when it opened (possibly a dead instance's),
    after the last per-test forget; a module fixture loading definitions would read it."""
    forget_defs_state_storage()
    yield
    forget_defs_state_storage()


@contextmanager
def fast_instance():
    """`dg.instance_for_test` in memory-backed storage when the machine has it: SQLite commits
    on this disk take ~20 ms, and a run with its quality checks writes hundreds of events."""
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None, prefix="inferledger-test-") as d:
        with dg.instance_for_test(temp_dir=d) as instance:
            yield instance


@pytest.fixture(scope="session")
def small_inventory() -> Inventory:
    return load_inventory(DATA / "inventory_small.yaml")


DEMO_FIXTURE_REQUESTS = 50_000


def built_once(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """A folder `name` built once per test session by `build(folder)`, in the session's shared
    temporary folder: under xdist (`--dist loadfile`) each module runs in one of two worker
    processes, and the first worker to ask builds it while the other waits on a file lock. A build
    that failed half-way is started again from an empty folder by the next one to ask. Tests that
    change what is inside work on copies."""
    base = tmp_path_factory.getbasetemp()
    # One per test session: under xdist the workers' folders share the session's parent.
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / name
    shared.mkdir(exist_ok=True)
    with open(shared / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (shared / "DONE").exists():
            for leftover in shared.iterdir():
                if leftover.name != ".lock":
                    shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
            saved = os.environ.pop("DAGSTER_HOME", None)  # an ephemeral instance: tests leave no runs behind
            try:
                build(shared)
            finally:
                if saved is not None:
                    os.environ["DAGSTER_HOME"] = saved
            (shared / "DONE").write_text("ok\n")
    return shared


@pytest.fixture(scope="session")
def demo_warehouse(tmp_path_factory):
    """The demo fleet's day as `make demo` runs it, on a light day (50,000 requests, seed 7, the
    demo day; `make demo` itself runs 800,000: tests/test_demo_day_acceptance.py), once per test
    session through the real CLI into a shared temporary folder: raw files, lake and published
    warehouse. Light, so the tests that copy it and rerun the pipeline stay quick. Tests that
    change it work on copies (`copy_demo`)."""
    def build(shared: Path) -> None:
        assert main(["demo", "--raw", str(shared / "raw"), "--lake", str(shared / "lake"),
                     "--warehouse", str(shared / "warehouse" / "inferledger.duckdb"),
                     "--requests", str(DEMO_FIXTURE_REQUESTS)]) == 0

    shared = built_once(tmp_path_factory, "demo-warehouse", build)
    return {"raw": shared / "raw", "lake": shared / "lake", "warehouse": shared / "warehouse" / "inferledger.duckdb",
            "day": DEMO_DAY}


@pytest.fixture(scope="session")
def _moto_endpoint():
    """One moto S3 server per test process (tests/servers.py); each test gets its own bucket."""
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def s3_server(_moto_endpoint, monkeypatch) -> S3Store:
    """A local S3-compatible server (moto, on 127.0.0.1) with a new bucket, and the standard AWS
    variables of this test pointing at it (`S3Store.env`: pass them to processes the test starts);
    `s3_server.uri("lake")` is a lake URI. Stopped when the test process ends."""
    store = new_bucket(_moto_endpoint)
    for k, v in store.env.items():
        monkeypatch.setenv(k, v)
    return store
