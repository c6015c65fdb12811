"""The inventory file: `<raw>/inventory.yaml` unless another is named (docs/inventory.md).

The model and its validation are `transforms.inventory` (pure: text in, `Inventory` out); reading
the file is here.
"""

from pathlib import Path

from transforms.inventory import Inventory, InventoryError, parse_inventory

NAME = "inventory.yaml"

# Inventories parsed in this process, by file and text: a night builds the `raw` resource afresh for
# every step (each parsed the same file again: ~15 ms x 6 at 2M, more with more nodes); the text is
# read each time, so an edited file is parsed again. `Inventory` is frozen.
_PARSED: dict[tuple[str, str], Inventory] = {}
_PARSED_MAX = 8


def inventory_path(raw_root: Path | str, path: Path | str | None = None) -> Path:
    """The inventory file: `path` when given, else `inventory.yaml` in the raw directory."""
    return Path(path) if path else Path(raw_root) / NAME


def load_inventory(path: Path | str) -> Inventory:
    """Read and validate the inventory YAML; raises InventoryError naming every problem."""
    path = Path(path)
    if not path.is_file():
        raise InventoryError(f"{path}: inventory file not found (set INFERLEDGER_INVENTORY or put {NAME} in the raw "
                             "directory)")
    text = path.read_text()
    key = (str(path.absolute()), text)
    if key not in _PARSED:
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        _PARSED[key] = parse_inventory(text, path)
    return _PARSED[key]
