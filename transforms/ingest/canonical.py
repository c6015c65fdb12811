"""The canonical CSV/Parquet form of every contract (docs/data-contracts.md): a file with the
contract's own column names, of any column types, read into a parsed frame (`common.py`).
"""

import polars as pl

from transforms.contracts import Contract
from transforms.ingest.common import first_reason, parse_utc


# The contract columns a canonical file (CSV or Parquet in a `canonical` folder) may leave out,
# and what takes their place; every other column the contract says is not nullable must be in
# each file's header (else its rows are `missing_required_field`, naming the column and the file).
# Nullable columns may always be left out (null). docs/data-contracts.md shows this table.
MAY_OMIT: dict[str, dict[str, str]] = {
    "requests": {"site_id": "the node's site (inventory)", "pool_id": "the node's pool (inventory)",
                 "cached_input_tokens": "0"},
    "power_readings": {"scope": "the meter's (inventory)", "site_id": "the meter's (inventory)",
                       "node_id": "the meter's (inventory)", "gpu_index": "the meter's (inventory)",
                       "source": "`canonical`", "counter_reset": "false"},
    "cost_lines": {"site_id": "the site folder's", "source": "`canonical`"},
    "assets": {"site_id": "the node's site (inventory)", "method": "`straight_line`"},
}


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
    file lacks are null, unless `defaults` fills them (e.g. `site_id` from the inventory); a
    required column missing from a file's header (not only empty) is `missing_required_field`
    naming the column to add and the file."""
    schema = raw.collect_schema()
    defaults = defaults or {}
    cols, checks = [], []
    may_omit = set(defaults) | set(MAY_OMIT.get(contract.name, {}))
    absent = [(c.name, pl.col(f"_absent_{c.name}").fill_null(False) if c.name in schema else pl.lit(True))
              for c in contract.columns if c.name in contract.required and c.name not in may_omit
              and (c.name not in schema or f"_absent_{c.name}" in schema)]
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
    missing = [(missing, "missing_required_field",
                pl.format(f"column `{n}` is missing from {{}} (its header or schema): add the column (the "
                          f"`{contract.name}` contract, docs/data-contracts.md)", "_source_file"))
               for n, missing in absent]
    parsed = parsed.with_columns(first_reason(missing + [
        (pl.col(f"_present_{n}") & pl.col(n).is_null(), code,
         f"`{n}` is not a valid {'RFC 3339 timestamp with offset' if code == 'bad_timestamp' else str(dt)}; "
         f"write it as the contract in docs/data-contracts.md says")
        for _, code, n, dt in checks
    ]))
    return parsed.select(*contract.names, "_source_file", pl.col("_source_row").cast(pl.Int64), "_reason", "_detail")
