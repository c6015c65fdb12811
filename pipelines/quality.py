"""The data-quality suites (`transforms/quality`) as Dagster asset checks.

One `@multi_asset_check` per suite and asset: every expectation of the suite is an
`AssetCheckSpec` named like the expectation (`requests.output_tokens.non_negative`), so the
UI, the report of `python -m pipelines.suites` and the tests say the same name. The check
validates the partition the run materialized; each result carries its unexpected count and a
few example values. Error-severity expectations are `blocking` where asked: when one fails,
the assets downstream in the run do not execute. Warnings fail with severity WARN and block
nothing.
"""

from datetime import date

import dagster as dg

from lake.store import FLEET
from pipelines.resources import ParquetLake, RawInputs
from pipelines.suites import validate_partition, validate_sources
from transforms.quality import ExpectationResult, catalog
from transforms.quality import sources as source_quality


def check_specs(suite: str, asset: str, *, blocking: bool) -> list[dg.AssetCheckSpec]:
    """One spec per expectation of `suite` on `asset`; `blocking` applies to error severity only."""
    return [dg.AssetCheckSpec(c.name, asset=asset, blocking=blocking and c.severity == "error",
                              description=f"[{c.severity}] {c.description}",
                              metadata={"severity": c.severity, "suite": suite})
            for c in catalog(suite)]


def check_result(asset: str, r: ExpectationResult, partition: str, rows: int) -> dg.AssetCheckResult:
    md: dict = {"severity": r.severity, "partition": partition, "rows": rows}
    if r.unexpected_count is not None:
        md["unexpected_count"] = r.unexpected_count
    if r.examples:
        md["examples"] = dg.MetadataValue.json(r.examples)
    if r.observed is not None:
        md["observed"] = dg.MetadataValue.json(r.observed) if isinstance(r.observed, (dict, list)) else str(r.observed)
    if r.error:
        md["error"] = dg.MetadataValue.text(r.error)
    return dg.AssetCheckResult(
        asset_key=asset, check_name=r.name, passed=r.success, metadata=md, description=r.description,
        severity=dg.AssetCheckSeverity.ERROR if r.severity == "error" else dg.AssetCheckSeverity.WARN)


def _day_and_site(context: dg.AssetCheckExecutionContext) -> tuple[str, str | None]:
    key = context.partition_key
    if isinstance(key, dg.MultiPartitionKey):
        return key.keys_by_dimension["date"], key.keys_by_dimension["site"]
    day, _, site = str(key).partition("|")  # dimensions sort by name: date|site
    return day, site or None


def suite_checks(suite: str, asset: str, *, blocking: bool) -> dg.AssetChecksDefinition:
    """The asset checks of `suite` on `asset`, validating the run's partition of the lake."""

    @dg.multi_asset_check(specs=check_specs(suite, asset, blocking=blocking), name=f"{asset}_quality",
                          description=f"Great Expectations suite `{suite}` (docs/data-quality.md).")
    def quality(context: dg.AssetCheckExecutionContext, raw: RawInputs, lake: ParquetLake):
        day, site = _day_and_site(context)
        res = validate_partition(lake.lake.root, suite, date.fromisoformat(day), raw.inventory(), site,
                                 batch_rows=lake.quality_batch_rows)
        context.log.info(f"{suite} {res.partition}: {res.rows} rows, {len(res.errors)} error(s), "
                         f"{len(res.warnings)} warning(s) in {res.seconds:.2f} s")
        for r in res.results:
            yield check_result(asset, r, res.partition, res.rows)

    return quality


def source_checks(dataset: str, asset: str) -> dg.AssetChecksDefinition:
    """The source checks of `dataset` on `asset` (transforms/quality/sources.py: records lost to
    quarantine per file and folder, ignored files, overlapping meter intervals), from the run
    partition's ingest audit and quarantine; error ones block what follows in the run."""
    specs = [dg.AssetCheckSpec(c.name, asset=asset, blocking=c.severity == "error",
                               description=f"[{c.severity}] {c.description}",
                               metadata={"severity": c.severity, "suite": f"{dataset}.sources"})
             for c in source_quality.catalog(dataset)]

    @dg.multi_asset_check(specs=specs, name=f"{asset}_sources",
                          description=f"What the ingest of `{dataset}` lost or ignored (docs/data-quality.md).")
    def sources(context: dg.AssetCheckExecutionContext, lake: ParquetLake):
        day, site = _day_and_site(context)
        res = validate_sources(lake.lake.root, dataset, date.fromisoformat(day), site or FLEET)
        context.log.info(f"{res.suite} {res.partition}: {res.rows} records read, {len(res.errors)} error(s), "
                         f"{len(res.warnings)} warning(s) in {res.seconds:.2f} s")
        for r in res.results:
            yield check_result(asset, r, res.partition, res.rows)

    return sources
