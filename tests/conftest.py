from pathlib import Path

import pytest

from transforms.inventory import Inventory, load_inventory

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def small_inventory() -> Inventory:
    return load_inventory(DATA / "inventory_small.yaml")
