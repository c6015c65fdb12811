from contextlib import contextmanager
from pathlib import Path

import pytest

from transforms.inventory import Inventory, load_inventory

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def _forget_dagster_state_storage():
    """A Dagster instance registers its definitions-state storage in a context variable that
    outlives the instance; a later definitions load in the same worker would then read a dead
    instance. Forget it around each test."""
    from dagster._core.storage.defs_state.base import _current_storage

    _current_storage.set(None)
    yield
    _current_storage.set(None)


@contextmanager
def fast_instance():
    """`dg.instance_for_test` in memory-backed storage when the machine has it: SQLite commits
    on this disk take ~20 ms, and a run with its quality checks writes hundreds of events."""
    import tempfile

    import dagster as dg

    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None, prefix="inferledger-test-") as d:
        with dg.instance_for_test(temp_dir=d) as instance:
            yield instance


@pytest.fixture(scope="session")
def small_inventory() -> Inventory:
    return load_inventory(DATA / "inventory_small.yaml")


@pytest.fixture(scope="session")
def demo_warehouse(tmp_path_factory):
    """The demo of `make demo` (50,000 requests, seed 7, the demo day), run once per test session
    through the real CLI into a shared temporary folder: raw files, lake and published warehouse.
    Tests that change it work on copies (`copy_demo`)."""
    import fcntl
    import os

    from pipelines.cli import DEMO_DAY, main

    base = tmp_path_factory.getbasetemp()
    # One per test session: under xdist the workers' folders share the session's parent.
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "demo-warehouse"
    shared.mkdir(exist_ok=True)
    paths = {"raw": shared / "raw", "lake": shared / "lake", "warehouse": shared / "warehouse" / "inferledger.duckdb",
             "day": DEMO_DAY}
    with open(shared / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (shared / "DONE").exists():
            saved = os.environ.pop("DAGSTER_HOME", None)  # an ephemeral instance: tests leave no runs behind
            try:
                assert main(["demo", "--raw", str(paths["raw"]), "--lake", str(paths["lake"]),
                             "--warehouse", str(paths["warehouse"])]) == 0
            finally:
                if saved is not None:
                    os.environ["DAGSTER_HOME"] = saved
            (shared / "DONE").write_text("ok\n")
    return paths
