"""Where the data lives: raw inputs, the Parquet lake and the warehouse.

Each path comes from an environment variable, with a default under the working directory
(`data/`), so `make demo` needs no set-up and a deployment sets three variables.
"""

import os
from datetime import date
from functools import cached_property
from pathlib import Path

import dagster as dg
from pydantic import Field, PrivateAttr

from lake.inventory import inventory_path, load_inventory
from lake.store import Lake
from transforms.inventory import Inventory


def _env(name: str, default: str):
    return Field(default_factory=lambda: os.environ.get(name, default))


class RawInputs(dg.ConfigurableResource):
    """Raw exports as delivered: `<root>/<YYYY-MM-DD>/<site>/<family>/...` (docs/raw-formats.md)."""

    root: str = _env("INFERLEDGER_RAW", "data/raw")
    inventory_path: str = Field(default_factory=lambda: os.environ.get("INFERLEDGER_INVENTORY", ""),
                                description="Inventory YAML; default <root>/inventory.yaml.")
    _inventory: Inventory | None = PrivateAttr(default=None)

    @property
    def path(self) -> Path:
        return Path(self.root)

    def inventory(self) -> Inventory:
        if self._inventory is None:
            self._inventory = load_inventory(inventory_path(self.path, self.inventory_path))
        return self._inventory

    def days(self) -> list[date]:
        """Days that have a raw folder."""
        return sorted(date.fromisoformat(p.name) for p in self.path.glob("????-??-??") if p.is_dir())


class ParquetLake(dg.ConfigurableResource):
    """The hive-partitioned Parquet lake (`<root>/<dataset>/date=/site=`)."""

    root: str = _env("INFERLEDGER_LAKE", "data/lake")

    @cached_property
    def lake(self) -> Lake:
        return Lake(self.root)


class AttributionSettings(dg.ConfigurableResource):
    """How a day is cut and shared (docs/attribution.md)."""

    slot_s: int = Field(default_factory=lambda: int(os.environ.get("INFERLEDGER_SLOT_S", "60")),
                        description="Slot length in seconds; a divisor of 86400.")
    weight: str = Field(default_factory=lambda: os.environ.get("INFERLEDGER_WEIGHT", "time"),
                        description="How requests share a slot: 'time' (overlap seconds) or 'tokens'.")
    gap_limit_s: float = Field(default_factory=lambda: float(os.environ.get("INFERLEDGER_GAP_LIMIT_S", "300")),
                               description="Meter gaps up to this length are interpolated; longer ones estimated.")


class Warehouse(dg.ConfigurableResource):
    """The published DuckDB warehouse file finance queries."""

    path: str = _env("INFERLEDGER_WAREHOUSE", "data/warehouse/inferledger.duckdb")
    keep: int = Field(default_factory=lambda: int(os.environ.get("INFERLEDGER_KEEP_VERSIONS", "7")),
                      description="Published versions kept beside the file for rollback.")
    max_age_days: int = Field(default_factory=lambda: int(os.environ.get("INFERLEDGER_MAX_AGE_DAYS", "2")),
                              description="The freshness check warns when the latest published day is older.")


def default_resources() -> dict:
    return {"raw": RawInputs(), "lake": ParquetLake(), "warehouse": Warehouse(), "settings": AttributionSettings()}
