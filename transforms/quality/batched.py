"""Run a suite on a partition too large for one pandas frame: in bounded row batches, with the
same results as validating the whole partition at once (`runner.validate_frame`).

GX sees one batch at a time (at most `batch_rows` rows as pandas); what a batch cannot judge
alone is computed over the whole partition, exactly:

- row-level expectations (values between, in a set, not null, pair A >= B, with or without a
  row condition) run on every batch: the unexpected count is the sum, the examples the first
  `EXAMPLES` unexpected values in file order, success as GX decides it on the whole (every
  batch succeeds, or `mostly` from the summed counts);
- the column set and the column types run on one row of the first batch (GX reads the names
  and the pandas dtypes only); every batch has the columns and, through one conversion plan,
  the pandas dtypes the whole partition would get (a nullable integer dtype when the column has
  a null anywhere, Date columns at nanoseconds when the whole range fits);
- the row count is the sum of the batches' rows, judged by GX on a column-less frame of that
  many rows;
- key uniqueness (`<suite>.key.unique` and any other uniqueness expectation) is a Polars
  streaming group-by on the key over the whole partition: the unexpected count is every row of
  a duplicated key (GX's `duplicated(keep=False)`, rows GX ignores left out), the examples are
  the first duplicated rows in file order, formatted by GX itself (with no duplicate, GX
  formats its passing result on the first row of the first batch).

A suite holding any other kind of expectation is validated whole (`validate_frame`).
"""

import tempfile
import time
from collections.abc import Iterable
from functools import partial
from pathlib import Path

import great_expectations.expectations as gxe
import pandas as pd
import polars as pl

from transforms.quality.runner import (
    EXAMPLES,
    ExpectationResult,
    SuiteResult,
    _expectation_result,
    _fits_ns,
    _gx_validate,
    gx_validate_by_columns,
    to_pandas,
    validate_frame,
)
from transforms.quality.suites import SUITES, Check, SuiteContext, prepare

# Evaluated on every batch and merged (row-level), or on the first batch (same on every batch).
ROW_LEVEL = (gxe.ExpectColumnValuesToBeBetween, gxe.ExpectColumnValuesToBeInSet, gxe.ExpectColumnValuesToNotBeNull,
             gxe.ExpectColumnPairValuesAToBeGreaterThanB)
# Judged on the column names and pandas dtypes alone (GX reports the type check on a dtype as an
# observed value, no row count), which every batch shares: one row of the first batch is enough.
FIRST_BATCH = (gxe.ExpectTableColumnsToMatchSet, gxe.ExpectColumnValuesToBeOfType)
ROW_COUNT = (gxe.ExpectTableRowCountToBeBetween,)
UNIQUE = (gxe.ExpectColumnValuesToBeUnique, gxe.ExpectCompoundColumnsToBeUnique)
_ROW = "__quality_row"
# Keys grouped at once by the uniqueness check (`_clashing_hashes`): about 0.2 GB of Polars's group-by.
PARTITION_KEYS = 2_000_000


def _mostly(exp) -> float:
    m = getattr(exp, "mostly", None)
    return 1.0 if m is None else float(m)


def _key(exp) -> list[str]:
    return [exp.column] if isinstance(exp, gxe.ExpectColumnValuesToBeUnique) else list(exp.column_list)


def batchable(checks: list[Check]) -> bool:
    """Whether every check of the suite can be judged exactly batch by batch."""
    for c in checks:
        e = c.expectation
        if isinstance(e, UNIQUE):
            # Exact over the whole file for a plain key; a missing key column fails the same on any batch.
            if getattr(e, "row_condition", None) or _mostly(e) != 1.0:
                return False
        elif not isinstance(e, (*ROW_LEVEL, *FIRST_BATCH, *ROW_COUNT)):
            return False
    return True


def conversion_plan(whole: pl.LazyFrame) -> tuple[set[str], set[str]]:
    """(integer/boolean columns with a null anywhere, Date columns whose whole range fits
    nanoseconds): what `to_pandas` decides from the whole frame, from one streaming pass."""
    schema = whole.collect_schema()
    ints = [c for c, t in schema.items() if t.is_integer() or t == pl.Boolean]
    dates = [c for c, t in schema.items() if t == pl.Date]
    if not ints and not dates:
        return set(), set()
    exprs = [pl.col(c).null_count().alias(f"n:{c}") for c in ints]
    exprs += [e for c in dates for e in (pl.col(c).min().alias(f"lo:{c}"), pl.col(c).max().alias(f"hi:{c}"))]
    row = whole.select(exprs).collect(engine="streaming").row(0, named=True)
    nullable = {c for c in ints if row[f"n:{c}"]}
    ns_dates = {c for c in dates if _fits_ns(pl.Series([row[f"lo:{c}"], row[f"hi:{c}"]], dtype=pl.Date))}
    return nullable, ns_dates


def _considered(whole: pl.LazyFrame, exp) -> pl.LazyFrame:
    """The key columns (and file position) of the rows GX judges for uniqueness: a single column
    ignores nulls; compound columns follow `ignore_row_if`."""
    key = _key(exp)
    lf = whole.select(key).with_row_index(_ROW)
    if isinstance(exp, gxe.ExpectColumnValuesToBeUnique):
        return lf.filter(pl.col(key[0]).is_not_null())
    ignore = getattr(exp, "ignore_row_if", "all_values_are_missing")
    if ignore == "all_values_are_missing":
        return lf.filter(~pl.all_horizontal([pl.col(k).is_null() for k in key]))
    if ignore == "any_value_is_missing":
        return lf.filter(pl.all_horizontal([pl.col(k).is_not_null() for k in key]))
    return lf


def _clashing_hashes(hashed: pl.LazyFrame, rows: int, spill_dir: Path | None = None) -> pl.DataFrame:
    """The `__hash` values held by more than one row of `hashed`. Up to PARTITION_KEYS rows, one
    streaming group-by; beyond, the hashes are spilled (8 bytes a row, a temporary folder in
    `spill_dir`, the system's when None) in
    K = rows / PARTITION_KEYS partitions on `__hash % K`, and each is grouped alone: equal keys
    share a hash, hence a partition, so memory follows PARTITION_KEYS, not the partition's rows.
    A Polars without `PartitionBy` (its partitioned sinks are marked unstable) groups in one pass:
    more memory, the same result."""
    parts = -(-rows // PARTITION_KEYS)
    if parts <= 1 or not hasattr(pl, "PartitionBy"):
        return (hashed.group_by("__hash").agg(pl.len().alias("__n")).filter(pl.col("__n") > 1).select("__hash")
                .collect(engine="streaming"))
    with tempfile.TemporaryDirectory(prefix="inferledger-quality-", dir=spill_dir) as spill:
        (hashed.select("__hash", (pl.col("__hash") % parts).alias("__part"))
         .sink_ipc(pl.PartitionBy(spill, key="__part", include_key=False)))
        found = [pl.scan_ipc(sorted(d.glob("*.ipc"))).group_by("__hash").agg(pl.len().alias("__n"))
                 .filter(pl.col("__n") > 1).select("__hash").collect(engine="streaming")
                 for d in sorted(Path(spill).iterdir()) if any(d.glob("*.ipc"))]
    return pl.concat(found) if found else pl.DataFrame(schema={"__hash": pl.UInt64})


def duplicates(whole: pl.LazyFrame, exp, spill_dir: Path | None = None) -> tuple[int, pl.DataFrame]:
    """(rows whose key occurs more than once, the first EXAMPLES of them in file order).

    A 64-bit hash of the key finds the candidate rows (each key's rows share a hash), grouped in
    bounded hash partitions (`_clashing_hashes`); the exact group-by on the key then runs on
    those candidates alone, so hash collisions cost time, never correctness, and memory follows
    the duplicated rows and PARTITION_KEYS, not the partition's keys."""
    key = _key(exp)
    rows = _considered(whole, exp)
    hashed = rows.with_columns(pl.struct(key).hash().alias("__hash"))
    clash = _clashing_hashes(hashed, whole.select(pl.len()).collect().item(), spill_dir)
    if clash.height == 0:
        return 0, whole.select(key).clear().collect()
    cand = hashed.join(clash.lazy(), on="__hash", how="semi").drop("__hash").collect(engine="streaming")
    dup_keys = cand.group_by(key).agg(pl.len().alias("__n")).filter(pl.col("__n") > 1).select(key)
    dup = cand.join(dup_keys, on=key, how="semi", nulls_equal=True).sort(_ROW)
    return dup.height, dup.head(EXAMPLES).drop(_ROW)


def _merge(c: Check, parts: list[tuple[ExpectationResult, dict]]) -> ExpectationResult:
    """One expectation's batch results as GX would report it on the whole partition."""
    for r, _ in parts:
        if r.error is not None:
            return r
    first = parts[0][0]
    if first.unexpected_count is None:  # judged on the table, the same on every batch
        return first
    unexpected = sum(r.unexpected_count or 0 for r, _ in parts)
    examples = [v for r, _ in parts for v in r.examples][:EXAMPLES]
    mostly = _mostly(c.expectation)
    if mostly == 1.0:
        success = all(r.success for r, _ in parts)
    else:  # GX: vacuously true without a non-missing row, else (nonnull - unexpected) / nonnull >= mostly
        total = sum(raw.get("element_count") or 0 for _, raw in parts)
        nonnull = total - sum(raw.get("missing_count") or 0 for _, raw in parts)
        success = total == 0 or nonnull == 0 or (nonnull - unexpected) / nonnull >= mostly
    return ExpectationResult(name=c.name, severity=c.severity, success=success, unexpected_count=unexpected,
                             examples=examples, observed=first.observed, description=c.description, error=None)


def validate_batches(suite: str, whole: pl.LazyFrame, batches: Iterable[pl.DataFrame], ctx: SuiteContext,
                     partition: str = "") -> SuiteResult:
    """Run `suite` on a partition given twice: `whole`, a lazy scan of it (streamed for the
    conversion plan and the key uniqueness), and `batches`, its rows in file order as bounded
    frames with `whole`'s schema. Same SuiteResult as `validate_frame(suite, whole, ctx)`."""
    started = time.perf_counter()
    checks: list[Check] = SUITES[suite](ctx)
    prepared = prepare(suite, whole, ctx)
    schema = prepared.collect_schema()
    if not batchable(checks):
        return validate_frame(suite, whole, ctx, partition)
    nullable, ns_dates = conversion_plan(prepared)

    done: dict[str, ExpectationResult] = {}
    unique_first: list[Check] = []  # judged on the first batch: no duplicate anywhere
    for c in checks:
        if isinstance(c.expectation, UNIQUE) and set(_key(c.expectation)) <= set(schema.names()):
            count, first = duplicates(prepared, c.expectation, ctx.spill_dir)
            if count == 0:
                unique_first.append(c)
                continue
            # GX formats the examples: the first duplicated rows, each given its twin so GX
            # reports them, in file order; the count is the whole partition's.
            k = min(count, EXAMPLES)
            pdf = to_pandas(pl.concat([first, first]), nullable=nullable, ns_dates=ns_dates)
            r = _expectation_result(c, _gx_validate(suite, [c.expectation], pdf)[c.name])
            done[c.name] = ExpectationResult(
                name=c.name, severity=c.severity, success=False, unexpected_count=count, examples=r.examples[:k],
                observed=r.observed, description=c.description, error=r.error)
    skip = {*done, *(c.name for c in unique_first)}
    per_batch = [c for c in checks if c.name not in skip and not isinstance(c.expectation, ROW_COUNT)]
    first_only = [*unique_first, *(c for c in per_batch if isinstance(c.expectation, FIRST_BATCH))]
    every = [c for c in per_batch if not isinstance(c.expectation, FIRST_BATCH)]

    parts: dict[str, list[tuple[ExpectationResult, dict]]] = {c.name: [] for c in [*first_only, *every]}
    rows, n = 0, 0
    convert = partial(to_pandas, nullable=nullable, ns_dates=ns_dates)
    for raw in batches:
        df = prepare(suite, raw.lazy(), ctx).collect()
        del raw
        rows += df.height
        todo = every if n else [*first_only, *every]
        by_name = gx_validate_by_columns(suite, [c.expectation for c in every], df, convert)
        if not n and first_only:
            # The column set and types are judged on the names and dtypes alone; and Polars found no
            # duplicate in the whole partition, so GX only formats the passing uniqueness result.
            # All are the same on any non-empty frame: GX sees one row, not a million to scan.
            by_name.update(_gx_validate(suite, [c.expectation for c in first_only], convert(df.head(1))))
        del df
        for c in todo:
            r = by_name[c.name]
            parts[c.name].append((_expectation_result(c, r), dict(r.result)))
        n += 1
    if n == 0:  # no batch at all: the whole (empty) frame
        return validate_frame(suite, whole, ctx, partition)
    for c in [*first_only, *every]:
        done[c.name] = _merge(c, parts[c.name])
    counted = [c for c in checks if isinstance(c.expectation, ROW_COUNT)]
    if counted:
        by_name = _gx_validate(suite, [c.expectation for c in counted], pd.DataFrame(index=pd.RangeIndex(rows)))
        done.update({c.name: _expectation_result(c, by_name[c.name]) for c in counted})
    return SuiteResult(suite, partition, rows, time.perf_counter() - started, [done[c.name] for c in checks])

