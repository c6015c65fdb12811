"""The data-quality suites (`transforms/quality`) as Dagster asset checks.

One `@multi_asset_check` per suite and asset: every expectation of the suite is an
`AssetCheckSpec` named like the expectation (`requests.output_tokens.non_negative`), so the
UI, the report of `python -m transforms.quality` and the tests say the same name. The check
validates the partition the run materialized; each result carries its unexpected count and a
few example values. Error-severity expectations are `blocking` where asked: when one fails,
the assets downstream in the run do not execute. Warnings fail with severity WARN and block
nothing.
"""

from datetime import date

import dagster as dg

from pipelines.resources import ParquetLake, RawInputs
from transforms.quality import ExpectationResult, catalog
from transforms.quality.lake import validate_partition


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
        res = validate_partition(lake.lake.root, suite, date.fromisoformat(day), raw.inventory(), site)
        context.log.info(f"{suite} {res.partition}: {res.rows} rows, {len(res.errors)} error(s), "
                         f"{len(res.warnings)} warning(s) in {res.seconds:.2f} s")
        for r in res.results:
            yield check_result(asset, r, res.partition, res.rows)

    return quality
