"""Asset register parsers: the ERP export and the canonical `assets` form.

Both give a parsed `assets` frame (see `common.py`) judged by the same checks (`asset_checks`):
the node is in the inventory and gives the site; the currency is ISO 4217; the method is known
(straight line when the register leaves it empty); costs are not negative, salvage does not
exceed cost, the useful life is at least a month; disposal is not before in-service. The
register is fleet-wide (`<day>/_fleet/`): it is partitioned by delivery day only.
"""

import polars as pl

from transforms.bounds import MAX_ASSET_COST, MAX_USEFUL_LIFE_MONTHS, out_of_range
from transforms.contracts import ASSETS, DEPRECIATION_METHODS
from transforms.ingest.canonical import parse_canonical
from transforms.ingest.common import column_missing, currency_check, decimal, field, first_reason, raw_text, unreadable
from transforms.inventory import Inventory

REGISTER_COLUMNS = ("asset_id", "description", "node_id", "acquisition_cost", "currency", "in_service_date",
                    "useful_life_months", "salvage_value", "depreciation_method", "disposal_date")
# The register's columns an asset cannot do without (`depreciation_method`, `description` and
# `disposal_date` may be left out of the header: straight line, none, in service).
REGISTER_REQUIRED = ("asset_id", "node_id", "acquisition_cost", "currency", "in_service_date", "useful_life_months",
                     "salvage_value")
ERP_METHODS = {"sl": "straight_line", "db": "declining_balance"}
DEFAULT_METHOD = "straight_line"


def asset_checks(parsed: pl.LazyFrame, inventory: Inventory) -> pl.LazyFrame:
    """The judgements every asset row gets, after its format's own, in priority order. Sets
    `site_id` to the node's site from the inventory (a row stating another site is
    `invalid_value`) and `method` to straight line where empty. Keeps the parsed-frame columns."""
    nodes = inventory.nodes_frame().select("node_id", pl.col("site_id").alias("_node_site"))
    judged = parsed.join(nodes, on="node_id", how="left", maintain_order="left")
    checks = [
        (pl.col("node_id").is_not_null() & pl.col("_node_site").is_null(), "unknown_node",
         pl.format("node {} is not in the inventory; add it to inventory.yaml or correct the register",
                   pl.col("node_id"))),
        (pl.col("site_id").is_not_null() & (pl.col("site_id") != pl.col("_node_site")), "invalid_value",
         pl.format("site_id {} is not the site of node {} ({}) in the inventory; correct one of them",
                   pl.col("site_id"), pl.col("node_id"), pl.col("_node_site"))),
        currency_check(),
        (~pl.col("method").is_in(list(DEPRECIATION_METHODS)), "invalid_value",
         pl.format(f"depreciation method {{}} is not one of {', '.join(DEPRECIATION_METHODS)}", pl.col("method"))),
        *(out_of_range(pl.col(c), MAX_ASSET_COST, pl.lit(f"`{c}`"), "per asset",
                       "check the amount's unit (cents read as units?)")
          for c in ("acquisition_cost", "salvage_value")),
        out_of_range(pl.col("useful_life_months"), MAX_USEFUL_LIFE_MONTHS, pl.lit("`useful_life_months`"), "months",
                     "write the depreciation life in months"),
        (pl.col("acquisition_cost") < 0, "negative_value",
         pl.format("acquisition_cost {} is negative", pl.col("acquisition_cost"))),
        (pl.col("salvage_value") < 0, "negative_value",
         pl.format("salvage_value {} is negative", pl.col("salvage_value"))),
        (pl.col("salvage_value") > pl.col("acquisition_cost"), "invalid_value",
         pl.format("salvage_value {} exceeds acquisition_cost {}; the asset cannot depreciate to more than it cost",
                   pl.col("salvage_value"), pl.col("acquisition_cost"))),
        (pl.col("useful_life_months") < 1, "invalid_value",
         pl.format("useful_life_months {} is not a positive number of months", pl.col("useful_life_months"))),
        (pl.col("disposal_date") < pl.col("in_service_date"), "end_before_start",
         pl.format("disposal_date {} is before in_service_date {}; correct the dates",
                   pl.col("disposal_date"), pl.col("in_service_date"))),
    ]
    return (
        judged.with_columns(pl.col("method").fill_null(DEFAULT_METHOD))
        .with_columns(first_reason(checks))
        .with_columns(pl.col("_node_site").alias("site_id"))
        .select(*ASSETS.names, "_source_file", "_source_row", "_reason", "_detail")
    )


def parse_asset_register(raw: pl.LazyFrame, inventory: Inventory, site_id: str | None = None) -> pl.LazyFrame:
    """The ERP asset register (`asset_id,description,node_id,acquisition_cost,currency,
    in_service_date,useful_life_months,salvage_value,depreciation_method,disposal_date`; dates
    `YYYY-MM-DD`; method `SL` straight line or `DB` declining balance, case-insensitive, empty
    meaning straight line) to a parsed `assets` frame. Costs in `currency`; life in months.
    `site_id` is unused (the register is fleet-wide; a node's site comes from the inventory);
    it keeps the signature of every parser."""
    t = raw_text(raw, REGISTER_COLUMNS, required=REGISTER_REQUIRED)
    parsed = t.with_columns(
        field("asset_id").alias("asset_id"),
        field("node_id").alias("node_id"),
        decimal(field("acquisition_cost")).alias("acquisition_cost"),
        field("currency").str.to_uppercase().alias("currency"),
        field("in_service_date").str.to_date("%Y-%m-%d", strict=False).alias("in_service_date"),
        field("useful_life_months").cast(pl.Int32, strict=False).alias("useful_life_months"),
        decimal(field("salvage_value")).alias("salvage_value"),
        field("depreciation_method").str.to_lowercase()
        .replace_strict(ERP_METHODS, default=None, return_dtype=pl.String).alias("method"),
        field("disposal_date").str.to_date("%Y-%m-%d", strict=False).alias("disposal_date"),
        pl.lit(None, pl.String).alias("site_id"),
        pl.lit(None, pl.String).alias("_reason"),
        pl.lit(None, pl.String).alias("_detail"),
    )
    checks = [
        *[(unreadable(c, pl.col(c)), "invalid_value",
           pl.format(f"`{c}` {{}} is not a date YYYY-MM-DD", field(c))) for c in ("in_service_date", "disposal_date")],
        *[(unreadable(c, pl.col(c)), "invalid_value",
           pl.format(f"`{c}` {{}} is not a number; write a plain decimal (e.g. 1234.56)", field(c)))
          for c in ("acquisition_cost", "salvage_value")],
        (unreadable("useful_life_months", pl.col("useful_life_months")), "invalid_value",
         pl.format("`useful_life_months` {} is not a whole number of months", field("useful_life_months"))),
        (unreadable("depreciation_method", pl.col("method")), "invalid_value",
         pl.format("depreciation_method {} is not SL (straight line) or DB (declining balance)",
                   field("depreciation_method"))),
        *(column_missing(c, "the asset register's header, docs/raw-formats.md") for c in REGISTER_REQUIRED),
    ]
    return asset_checks(parsed.with_columns(first_reason(checks)), inventory)


def parse_canonical_assets(raw: pl.LazyFrame, inventory: Inventory, site_id: str | None = None) -> pl.LazyFrame:
    """Canonical asset rows (the contract's own columns, CSV text or typed Parquet) to a parsed
    `assets` frame, judged like the ERP register; `site_id` may be left out (the node's site is
    used) and `method` empty means straight line. `site_id` (argument) is unused, as above."""
    parsed = parse_canonical(raw, ASSETS).with_columns(pl.col("currency").str.to_uppercase())
    return asset_checks(parsed, inventory)
