"""Where the data lives and how it is processed: raw inputs, the Parquet lake, the warehouse and
the attribution's settings, as Dagster resources.

Their values come from the settings (`settings.resolve`), through `resources(settings)`: a path
the environment set is a `dg.EnvVar`, read by Dagster where the step runs; every other value is
the resolved one. A resource built without values (a test's) has the declared defaults.
"""

from datetime import date
from functools import cached_property
from pathlib import Path

import dagster as dg
from pydantic import Field, PrivateAttr

from lake.inventory import InventoryError, inventory_path, load_inventory
from lake.raw_store import RawMirror, is_uri, mirrored
from lake.store import Lake
from settings import BY_NAME, Settings, default
from transforms.ingest.market_prices import market_price_files
from transforms.inventory import Inventory
from warehouse.connection import DuckDBLimits


def _default(name: str) -> dict:
    """A field's default and description from the setting `name` (settings/__init__.py)."""
    value = default(name)
    return {"default": "" if value is None else str(value) if isinstance(value, Path) else value,
            "description": f"{BY_NAME[name].doc} (${BY_NAME[name].env})"}


class RawInputs(dg.ConfigurableResource):
    """Raw exports as delivered: `<root>/<YYYY-MM-DD>/<site>/<family>/...` (docs/raw-formats.md)."""

    root: str = Field(**_default("raw"))
    inventory_path: str = Field(**_default("inventory"))
    late_days: int = Field(**_default("late_days"))
    _inventory: Inventory | None = PrivateAttr(default=None)

    @property
    def path(self) -> Path:
        """The raw directory; for a drop on an object store, this worker's mirror of it (the
        inventory only: `local` mirrors what an ingest reads)."""
        return mirrored(self.root)

    def local(self, day: date, site: str | None) -> Path:
        """The raw directory holding what the ingest of `day` (and `site`) reads (`lake.raw_store`)."""
        if not is_uri(self.root):
            return Path(self.root)
        inv = self.inventory()
        return mirrored(self.root, day, site, sites=inv.site_ids, price_files=sorted(market_price_files(inv)))

    def inventory(self) -> Inventory:
        if self._inventory is None:
            path = inventory_path(self.path, self.inventory_path)
            if is_uri(self.root) and not self.inventory_path and not path.is_file():
                raise InventoryError(f"{self.root}/{path.name}: no inventory file in the raw drop on the object store; "
                                     "upload it there or set INFERLEDGER_INVENTORY (and check the AWS_* variables)")
            self._inventory = load_inventory(path)
        return self._inventory

    def days(self) -> list[date]:
        """Days that have a raw folder."""
        if is_uri(self.root):
            return RawMirror(self.root).days()
        return sorted(date.fromisoformat(p.name) for p in self.path.glob("????-??-??") if p.is_dir())


class ParquetLake(dg.ConfigurableResource):
    """The hive-partitioned Parquet lake (`<root>/<dataset>/date=/site=`), and how many of a
    partition's rows its quality checks validate at once."""

    root: str = Field(**_default("lake"))
    quality_batch_rows: int = Field(**_default("quality_batch_rows"))

    @cached_property
    def lake(self) -> Lake:
        return Lake(self.root)


class AttributionSettings(dg.ConfigurableResource):
    """How a day is cut and shared (docs/attribution.md)."""

    slot_s: int = Field(**_default("slot_s"))
    weight: str = Field(**_default("weight"))
    gap_limit_s: float = Field(**_default("gap_limit_s"))
    morsel_rows: int = Field(**_default("morsel_rows"))


class Warehouse(dg.ConfigurableResource):
    """The published DuckDB file finance queries, DuckDB's memory for building and reading it,
    and the morning report drawn from it."""

    path: str = Field(**_default("warehouse"))
    publish_to: str = Field(**_default("publish_to"))
    keep: int = Field(**_default("keep_versions"))
    max_age_days: int = Field(**_default("max_age_days"))
    duckdb_memory_limit: str = Field(**_default("duckdb_memory_limit"))
    duckdb_temp: str = Field(**_default("duckdb_temp"))
    report_path: str = Field(**_default("report"))
    cache_dir: str = Field(**_default("cache_dir"))

    def limits(self) -> DuckDBLimits:
        return DuckDBLimits(self.duckdb_memory_limit, Path(self.duckdb_temp)) if self.duckdb_temp else \
            DuckDBLimits(self.duckdb_memory_limit)

    def report_file(self) -> Path:
        """The report's HTML file: `report_path`, else report.html beside the warehouse file."""
        return Path(self.report_path) if self.report_path else Path(self.path).with_name("report.html")


def resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """The code location's resources from `settings` (module docstring)."""

    def path(name: str):
        if name in settings.from_environment:
            return dg.EnvVar(BY_NAME[name].env)
        value = getattr(settings, name)
        return "" if value is None else str(value)

    s = settings
    return {
        "raw": RawInputs(root=path("raw"), inventory_path=path("inventory"), late_days=s.late_days),
        "lake": ParquetLake(root=path("lake"), quality_batch_rows=s.quality_batch_rows),
        "warehouse": Warehouse(path=path("warehouse"), keep=s.keep_versions, max_age_days=s.max_age_days,
                               duckdb_memory_limit=s.duckdb_memory_limit, duckdb_temp=path("duckdb_temp"),
                               report_path=path("report"), cache_dir=path("cache_dir"),
                               publish_to=path("publish_to")),
        "settings": AttributionSettings(slot_s=s.slot_s, weight=s.weight, gap_limit_s=s.gap_limit_s,
                                        morsel_rows=s.morsel_rows),
    }
