"""What the power parsers share: inventory meter lookups, their checks, the parsed-frame shape."""

import polars as pl

from transforms.contracts import POWER_READINGS
from transforms.inventory import Inventory

J_PER_KWH = 3.6e6  # joules in a kilowatt-hour


def host_from_file(prefix: str, extension: str) -> pl.Expr:
    """The host named by a file `<prefix><host>_<anything>.<extension>`; null when the name
    does not follow that pattern. Host names hold no `_` (RFC 952), so the first `_` ends it."""
    return pl.col("_source_file").str.extract(rf"(?:^|/){prefix}([^_/]+)(?:_[^/]*)?\.{extension}$", 1)


def node_meters(inventory: Inventory, source: str) -> pl.LazyFrame:
    """Every node of the inventory (`_host`) with its node meter read from `source`:
    meter_id, scope, site_id, node_id and `_sensor` (null when the node has no such meter)."""
    meters = (
        inventory.meters_frame()
        .filter((pl.col("source") == source) & (pl.col("scope") == "node"))
        .unique("node_id", keep="first", maintain_order=True)
        .select(pl.col("node_id").alias("_host"), "meter_id", "scope", "site_id", "node_id",
                pl.col("sensor").alias("_sensor"))
    )
    nodes = inventory.nodes_frame().select(pl.col("node_id").alias("_host"), pl.lit(True).alias("_is_node"))
    return nodes.join(meters, on="_host", how="left")


def other_site(site_id: str) -> tuple[pl.Expr, str, pl.Expr]:
    """Check: the row's meter (`meter_id`, inventory `site_id`) belongs to another site than the
    raw folder it was delivered in."""
    site = pl.col("site_id")
    return (site.is_not_null() & (site != site_id), "unknown_meter",
            pl.format(f"meter {{}} belongs to site {{}}, not {site_id}; deliver its file in the raw folder "
                      "of site {}", pl.col("meter_id"), site, site))


def host_checks(source: str, site_id: str, file_pattern: str) -> list[tuple[pl.Expr, str, pl.Expr | str]]:
    """Checks of a per-host file joined with `node_meters`: the host is named, is a node, has a
    meter of `source`, and that meter is of this site."""
    host = pl.col("_host")
    return [
        (host.is_null(), "unknown_node", f"the file name names no host; name the file {file_pattern}"),
        (pl.col("_is_node").is_null(), "unknown_node",
         pl.format("host {} is not a node of the inventory; add it under `nodes:` (and its meter under `meters:`)",
                   host)),
        (pl.col("meter_id").is_null(), "unknown_meter",
         pl.format(f"node {{}} has no meter with source {source}; add one under `meters:` (scope node, node {{}})",
                   host, host)),
        other_site(site_id),
    ]


def unjudged(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Start the bookkeeping: no reason yet."""
    return lf.with_columns(pl.lit(None, pl.String).alias("_reason"), pl.lit(None, pl.String).alias("_detail"))


def finish(lf: pl.LazyFrame, *, measure: bool = False, in_order: bool = False) -> pl.LazyFrame:
    """The parsed frame: POWER_READINGS columns in order and type, the bookkeeping columns and,
    for formats with one measure per record, `_measure`; in file and row order. `in_order`: the
    parser kept its input's order (`scan_text_lines`: files by name, then lines; joins with
    `maintain_order="left"`), so the rows are in that order already and are not sorted again
    (DCGM: the sort was 20% of the parse, 0.13 CPU-s per 230,000 samples)."""
    parsed = lf.select(
        *(pl.col(c.name).cast(c.dtype) for c in POWER_READINGS.columns),
        "_source_file", pl.col("_source_row").cast(pl.Int64), "_reason", "_detail",
        *(["_measure"] if measure else []),
    )
    return parsed if in_order else parsed.sort("_source_file", "_source_row")
