from pathlib import Path

import pytest

from transforms.inventory import Inventory, load_inventory

DATA = Path(__file__).parent / "data"


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
