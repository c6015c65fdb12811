"""The canonical CSV/Parquet form of every contract (docs/data-contracts.md): a file with the
contract's own column names, of any column types, read into a parsed frame (`common.py`).
"""

import polars as pl

from transforms.contracts import Contract
from transforms.ingest.common import first_reason, parse_utc


def _typed(name: str, dtype: pl.DataType, source_dtype: pl.DataType) -> pl.Expr:
    """Column `name` of any incoming type as `dtype`; unreadable values become null."""
    col = pl.col(name)
    if source_dtype == pl.Null:
        return pl.lit(None, dtype).alias(name)
    if source_dtype != pl.String:
        if isinstance(dtype, pl.Datetime) and isinstance(source_dtype, pl.Datetime):
            tz = col.dt.replace_time_zone("UTC") if source_dtype.time_zone is None else col.dt.convert_time_zone("UTC")
            return tz.dt.cast_time_unit("us").alias(name)
        if dtype.is_integer() and source_dtype.is_float():
            # 12.7 tokens is not 12 tokens: a fractional value is unreadable, not truncated.
            return pl.when(col == col.floor()).then(col.cast(dtype, strict=False)).alias(name)
        return col.cast(dtype, strict=False).alias(name)
    if isinstance(dtype, pl.Datetime):
        return parse_utc(col).alias(name)
    if dtype == pl.Date:
        return col.str.strip_chars().str.to_date("%Y-%m-%d", strict=False).alias(name)
    if dtype == pl.Boolean:
        return col.str.strip_chars().str.to_lowercase().replace_strict(
            {"true": True, "1": True, "false": False, "0": False}, default=None, return_dtype=pl.Boolean).alias(name)
    if dtype == pl.String:
        return pl.when(col.str.strip_chars() != "").then(col.str.strip_chars()).alias(name)
    return col.str.strip_chars().cast(dtype, strict=False).alias(name)


def parse_canonical(raw: pl.LazyFrame, contract: Contract, *,
                    defaults: dict[str, pl.Expr] | None = None) -> pl.LazyFrame:
    """The canonical CSV/Parquet form of a contract (its own column names) to a parsed frame.

    Text columns are parsed to their contract type (timestamps must carry an offset); a value
    present but unreadable rejects the row as `bad_timestamp` or `invalid_value`. Columns the
    file lacks are null, unless `defaults` fills them (e.g. `site_id` from the inventory)."""
    schema = raw.collect_schema()
    defaults = defaults or {}
    cols, checks = [], []
    for c in contract.columns:
        if c.name in schema:
            cols.append(_typed(c.name, c.dtype, schema[c.name]))
            present = pl.col(c.name).is_not_null() & (pl.col(c.name).cast(pl.String).str.strip_chars() != "")
            code = "bad_timestamp" if isinstance(c.dtype, pl.Datetime) else "invalid_value"
            checks.append((present, code, c.name, c.dtype))
        elif c.name in defaults:
            cols.append(defaults[c.name].alias(c.name))
        else:
            cols.append(pl.lit(None, c.dtype).alias(c.name))
    flags = [(p.alias(f"_present_{n}")) for p, _, n, _ in checks]
    parsed = raw.with_columns(flags).with_columns(cols)
    parsed = parsed.with_columns(pl.lit(None, pl.String).alias("_reason"), pl.lit(None, pl.String).alias("_detail"))
    parsed = parsed.with_columns(first_reason([
        (pl.col(f"_present_{n}") & pl.col(n).is_null(), code,
         f"`{n}` is not a valid {'RFC 3339 timestamp with offset' if code == 'bad_timestamp' else str(dt)}; "
         f"write it as the contract in docs/data-contracts.md says")
        for _, code, n, dt in checks
    ]))
    return parsed.select(*contract.names, "_source_file", pl.col("_source_row").cast(pl.Int64), "_reason", "_detail")
