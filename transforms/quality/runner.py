"""Run a suite on a Polars frame with Great Expectations and return plain results.

The frame is converted to pandas (GX's SQL datasource fails on DuckDB, see STYLE.md) with
nullable integer and boolean dtypes, so a null in an Int16 column stays an integer column.
GX runs in an ephemeral context with analytics and progress bars off. Results are keyed by
the check's name (kept in each expectation's `meta`), never by position: GX does not keep
the suite's order.
"""

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from functools import cache
from typing import Any

import great_expectations as gx
import great_expectations.expectations as gxe
import pandas as pd
import polars as pl
import pyarrow as pa
from great_expectations.expectations.row_conditions import (AndCondition, ComparisonCondition, NullityCondition,
                                                            OrCondition)

from transforms.inventory import Inventory
from transforms.quality import gx_private
from transforms.quality.suites import SUITES, Check, SuiteContext, prepare

EXAMPLES = 5  # unexpected values kept per failed expectation
_NULLABLE = {pa.int16(): pd.Int16Dtype(), pa.int32(): pd.Int32Dtype(), pa.int64(): pd.Int64Dtype(),
             pa.bool_(): pd.BooleanDtype()}


@dataclass(frozen=True)
class ExpectationResult:
    """One expectation on one batch. `unexpected_count` is None for table-level expectations
    (schema, row count), whose `observed` value says what was seen; `error` holds the message
    when GX could not evaluate the expectation (a missing column, say): that counts as a failure."""

    name: str
    severity: str
    success: bool
    unexpected_count: int | None
    examples: list
    observed: Any
    description: str
    error: str | None = None


@dataclass
class SuiteResult:
    """A suite run on one batch (a lake partition, a file or a frame)."""

    suite: str
    partition: str
    rows: int
    seconds: float
    results: list[ExpectationResult] = field(default_factory=list)

    @property
    def errors(self) -> list[ExpectationResult]:
        """Failed expectations of error severity: these stop the run."""
        return [r for r in self.results if not r.success and r.severity == "error"]

    @property
    def warnings(self) -> list[ExpectationResult]:
        return [r for r in self.results if not r.success and r.severity == "warning"]

    @property
    def success(self) -> bool:
        return not self.errors

    def result(self, name: str) -> ExpectationResult:
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(f"{name!r} is not an expectation of suite {self.suite!r}")

    def as_dict(self) -> dict:
        return {"suite": self.suite, "partition": self.partition, "rows": self.rows, "seconds": round(self.seconds, 3),
                "success": self.success, "results": [asdict(r) for r in self.results]}


@cache
def _batch_definition():
    context = gx.get_context(mode="ephemeral")
    gx_private.progress_bars_off(context)
    datasource = context.data_sources.add_pandas("inferledger")
    gx_private.frames_taken_as_they_are(datasource)
    return datasource.add_dataframe_asset("frame").add_batch_definition_whole_dataframe("whole")


def _fits_ns(dates: pl.Series) -> bool:
    lo, hi = dates.min(), dates.max()
    return lo is None or (date(1678, 1, 1) <= lo and hi <= date(2262, 4, 11))


# Polars types whose `to_pandas` is `to_arrow` then pyarrow's `to_pandas` (Categorical, Enum, Object,
# nested and others go through Polars's own).
_ARROW_AS_IS = (pl.String, pl.Boolean, pl.Date, pl.Datetime, pl.Duration, pl.Null)


def _arrow_to_pandas(frame: pl.DataFrame, **kwargs) -> pd.DataFrame:
    """`frame.to_pandas(**kwargs)`, the same frame (dtypes and values), without the copy Polars
    makes first: its `to_pandas` rechunks every column into one chunk (`as_single_chunk_par`), then
    calls pyarrow's `Table.to_pandas(date_as_object=False, ...)`; `to_arrow` hands pyarrow the
    chunks as they are, and pandas copies numbers once anyway and keeps strings as Arrow. A batch
    sliced from a scan has a chunk per row group: 0.57 -> 0.37 CPU-s for a 2 M-row batch of the
    facts (bench/README.md). Any other than plain numbers, strings, booleans, dates and times goes
    through Polars."""
    if not frame.width or not all(t.is_numeric() and not t.is_decimal() or isinstance(t, _ARROW_AS_IS)
                                  for t in frame.schema.dtypes()):
        return frame.to_pandas(**kwargs)
    return frame.to_arrow().to_pandas(date_as_object=False, **kwargs)


def to_pandas(frame: pl.DataFrame, *, nullable: set[str] | None = None,
              ns_dates: set[str] | None = None) -> pd.DataFrame:
    """Polars -> pandas for GX. Integer and boolean columns holding nulls become pandas' nullable
    dtypes (a null would otherwise turn them float or object); the others stay numpy, which GX
    scans several times faster. A batch of a larger partition passes `nullable` (the columns
    with a null anywhere in the partition) and `ns_dates` (the Date columns whose whole range
    fits nanoseconds), so every batch gets the dtypes the whole partition would."""
    if nullable is None:
        nullable = {c for c, t in frame.schema.items() if (t.is_integer() or t == pl.Boolean) and frame[c].null_count()}
    nullable_cols = [c for c in frame.columns if c in nullable]
    pdf = _arrow_to_pandas(frame)
    # GX compares naive datetimes vectorized only at nanosecond unit; a Date column (pandas
    # datetime64[ms]) would go through a Python call per row. GX observes the same type name
    # (`datetime64`) at either unit; dates outside the nanosecond range stay as they are.
    for c, t in frame.schema.items():
        if t == pl.Date and str(pdf[c].dtype) != "datetime64[ns]" and (
                _fits_ns(frame[c]) if ns_dates is None else c in ns_dates):
            pdf[c] = pdf[c].astype("datetime64[ns]")
    if nullable_cols:
        fixed = _arrow_to_pandas(frame.select(nullable_cols), types_mapper=_NULLABLE.get)
        for c in nullable_cols:
            pdf[c] = fixed[c]
    return pdf


def _plain(v: Any) -> Any:
    """A JSON-able copy of a GX example value (numpy scalars, timestamps, pairs, NA)."""
    if isinstance(v, (tuple, list)):
        return [_plain(x) for x in v]
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, (pd.Timestamp, datetime, date)):
        return v.isoformat()
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v if isinstance(v, (str, int, float, bool)) else str(v)


def _observed(result: dict) -> Any:
    obs = result.get("observed_value")
    details = (result.get("details") or {}).get("mismatched")
    if details:  # column set: say what is missing and what is extra, not the whole list
        return {"missing": sorted(details.get("missing", [])), "unexpected": sorted(details.get("unexpected", []))}
    return _plain(obs)


# GX fingerprints every pandas batch for a marker nothing reads (1.5 s of 2.6 s on a 1 M-row
# batch): skipped, same results (tests/test_quality_suites.py).
gx_private.skip_pandas_fingerprints()


def _gx_validate(suite: str, expectations: list, pdf: pd.DataFrame) -> dict[str, Any]:
    """GX's results of `expectations` on `pdf`, by check name."""
    gx_suite = gx.ExpectationSuite(name=suite, expectations=expectations)
    batch = _batch_definition().get_batch(batch_parameters={"dataframe": pdf})
    try:
        with (gx_private.configurations_built_once(), gx_private.plain_ids_fast(),
              gx_private.domain_objects_built_once()):
            run = batch.validate(gx_suite,
                                 result_format={"result_format": "BASIC", "partial_unexpected_count": EXAMPLES})
    finally:
        gx_private.release_batch(_batch_definition())
    return {r.expectation_config.meta["name"]: r for r in run.results}


# Expectations GX judges on their own columns alone (and those of their row condition). Before each
# of them GX's pandas engine drops the column's nulls from the whole frame (`df[df[column].notnull()]`:
# a copy of every column), so a large batch is given to GX a few columns at a time, with the same
# results: on the 5.75 M requests of a site that copy was 1.1 s of GX's 4.7 s, and the batch is
# never whole in pandas (bench/README.md).
_COLUMN_LEVEL = (gxe.ExpectColumnValuesToBeBetween, gxe.ExpectColumnValuesToBeInSet, gxe.ExpectColumnValuesToNotBeNull,
                 gxe.ExpectColumnValuesToBeOfType, gxe.ExpectColumnPairValuesAToBeGreaterThanB,
                 gxe.ExpectColumnValuesToBeUnique, gxe.ExpectCompoundColumnsToBeUnique)


def _condition_columns(condition) -> set[str] | None:
    """The columns a GX row condition reads; None when that cannot be told (a condition string)."""
    if isinstance(condition, (NullityCondition, ComparisonCondition)):
        return {condition.column.name}
    if isinstance(condition, (AndCondition, OrCondition)):
        parts = [_condition_columns(c) for c in condition.conditions]
        return None if any(p is None for p in parts) else set().union(*parts)
    return None


def _own_columns(expectation) -> tuple[str, ...] | None:
    """The columns a column-level expectation reads; None for any other kind."""
    if not isinstance(expectation, _COLUMN_LEVEL):
        return None
    cols = {getattr(expectation, a, None) for a in ("column", "column_A", "column_B")} - {None}
    cols |= set(getattr(expectation, "column_list", None) or [])
    condition = getattr(expectation, "row_condition", None)
    if condition:
        read = _condition_columns(condition)
        if read is None:
            return None
        cols |= read
    return tuple(sorted(cols)) or None


def gx_validate_by_columns(suite: str, expectations: list, frame: pl.DataFrame,
                           convert: Callable[[pl.DataFrame], pd.DataFrame]) -> dict[str, Any]:
    """`_gx_validate` of `expectations` on `convert(frame)`, run on a few columns at a time: each
    column-level expectation sees `convert` of its own columns (one GX run per set of columns),
    the others (and any whose columns the frame lacks) the whole frame converted."""
    groups: dict[tuple[str, ...] | None, list] = {}
    for e in expectations:
        cols = _own_columns(e)
        groups.setdefault(cols if cols is not None and set(cols) <= set(frame.columns) else None, []).append(e)
    out: dict[str, Any] = {}
    for cols, group in groups.items():
        out.update(_gx_validate(suite, group, convert(frame if cols is None else _columns(frame, cols))))
    return out


def _columns(frame: pl.DataFrame, cols: tuple[str, ...]) -> pl.DataFrame:
    """`frame.select(cols)` as the columns are: an eager `select` may rechunk them first (on the
    power readings after `prepare`'s join, 12 chunks: 10-23 ms a column of 612,096 rows)."""
    return pl.DataFrame([frame.get_column(c) for c in cols])


def _expectation_result(c: Check, r) -> ExpectationResult:
    err = ((r.exception_info or {}).get("exception_message") if (r.exception_info or {}).get("raised_exception")
           else None)
    return ExpectationResult(
        name=c.name, severity=c.severity, success=bool(r.success), unexpected_count=r.result.get("unexpected_count"),
        examples=[_plain(v) for v in r.result.get("partial_unexpected_list") or []][:EXAMPLES],
        observed=_observed(r.result), description=c.description, error=err)


def validate_frame(suite: str, frame: pl.DataFrame | pl.LazyFrame, ctx: SuiteContext,
                   partition: str = "") -> SuiteResult:
    """Run `suite` (a key of SUITES) on every row of `frame`; `ctx` supplies the inventory, the
    partition's day and the previous day's row count."""
    started = time.perf_counter()
    checks: list[Check] = SUITES[suite](ctx)
    df = prepare(suite, frame.lazy(), ctx).collect()
    rows, pdf = df.height, to_pandas(df)
    del df  # GX holds the pandas copy; the Polars one would only double the peak
    by_name = _gx_validate(suite, [c.expectation for c in checks], pdf)
    results = [_expectation_result(c, by_name[c.name]) for c in checks]
    return SuiteResult(suite, partition, rows, time.perf_counter() - started, results)


def validate_inventory(inventory: Inventory, day: date | None = None) -> SuiteResult:
    """The `inventory` suite on the inventory's nodes."""
    return validate_frame("inventory", inventory.nodes_frame(), SuiteContext(inventory=inventory, day=day),
                          partition="nodes")


def format_report(results: list[SuiteResult], *, verbose: bool = False) -> str:
    """A readable report: one line per batch, then each failed expectation with its count and
    examples (every expectation with `verbose`)."""
    lines = []
    for s in results:
        status = "FAIL" if s.errors else ("WARN" if s.warnings else "ok")
        lines.append(f"{status:4}  {s.suite} {s.partition}: {s.rows:,} rows, {len(s.results)} checks, "
                     f"{len(s.errors)} error(s), {len(s.warnings)} warning(s), {s.seconds:.2f} s")
        for r in s.results:
            if r.success and not verbose:
                continue
            tag = "pass" if r.success else r.severity.upper()
            what = (f"{r.unexpected_count:,} unexpected" if r.unexpected_count is not None
                    else f"observed {r.observed}")
            if r.error:
                what = f"could not run: {r.error.splitlines()[0][:200]}"
            eg = f", e.g. {r.examples}" if r.examples and not r.success else ""
            lines.append(f"      {tag:7} {r.name}: {what}{eg}")
    n_err = sum(len(s.errors) for s in results)
    n_warn = sum(len(s.warnings) for s in results)
    lines.append(f"{len(results)} batch(es), {sum(len(s.results) for s in results)} expectations: "
                 f"{n_err} error(s), {n_warn} warning(s)")
    return "\n".join(lines)
