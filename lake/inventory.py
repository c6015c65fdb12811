"""The inventory file: `<raw>/inventory.yaml` unless another is named (docs/inventory.md).

The model and its validation are `transforms.inventory` (pure: text in, `Inventory` out); reading
the file is here.
"""

from pathlib import Path

from transforms.inventory import Inventory, InventoryError, parse_inventory

NAME = "inventory.yaml"


def inventory_path(raw_root: Path | str, path: Path | str | None = None) -> Path:
    """The inventory file: `path` when given, else `inventory.yaml` in the raw directory."""
    return Path(path) if path else Path(raw_root) / NAME


def load_inventory(path: Path | str) -> Inventory:
    """Read and validate the inventory YAML; raises InventoryError naming every problem."""
    path = Path(path)
    if not path.is_file():
        raise InventoryError(f"{path}: inventory file not found (set INFERLEDGER_INVENTORY or put {NAME} in the raw "
                             "directory)")
    return parse_inventory(path.read_text(), path)
