"""The warehouse: per-day cost marts, and the DuckDB file finance queries, published atomically."""

from datetime import date

import dagster as dg

from pipelines.partitions import daily
from pipelines.resources import ParquetLake, RawInputs, Warehouse
from warehouse.checks import CheckOutcome, checks
from warehouse.marts import MartError, build_day_marts
from warehouse.publish import PublishError, WarehouseCheckError, publish

WAREHOUSE_CHECKS = [dg.AssetCheckSpec(c.name, asset="warehouse", description=c.description,
                                      blocking=c.severity == "error") for c in checks()]


def _check_result(o: CheckOutcome) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=o.name, passed=o.passed,
        severity=dg.AssetCheckSeverity.ERROR if o.severity == "error" else dg.AssetCheckSeverity.WARN,
        metadata={"unexpected_count": o.unexpected_count, "examples": dg.MetadataValue.json(o.examples)})


@dg.asset(
    partitions_def=daily,
    deps=["request_costs", "performance_profiles"],
    kinds={"duckdb", "parquet"},
    group_name="warehouse",
)
def cost_marts(context: dg.AssetExecutionContext, raw: RawInputs, lake: ParquetLake,
               warehouse: Warehouse) -> dg.MaterializeResult:
    """The day's marts (cost by tier, tenant, model and pool; idle; site energy; reconciliation;
    quarantine and audit) as Parquet under `<lake>/marts/`, from the attributed day."""
    day = date.fromisoformat(context.partition_key)
    out = build_day_marts(lake.lake, day, raw.inventory(), limits=warehouse.limits())
    return dg.MaterializeResult(metadata={
        "dagster/row_count": out.rows["cost_by_tier_day"],
        "rows_by_table": dg.MetadataValue.json(out.rows),
        "path": dg.MetadataValue.path(str(lake.lake.marts_dir())),
    })


@dg.asset(
    deps=[cost_marts],
    kinds={"duckdb"},
    group_name="warehouse",
    pool="warehouse",
    check_specs=WAREHOUSE_CHECKS,
)
def warehouse(context: dg.AssetExecutionContext, raw: RawInputs, lake: ParquetLake, warehouse: Warehouse):
    """The published DuckDB file finance queries (docs/data-dictionary.md): every attributed
    day, built as a new version, checked (docs/warehouse.md) and swapped in atomically; the last
    versions kept for rollback. A version failing an error check is not published."""
    try:
        out = publish(lake.root, raw.inventory(), warehouse.path, keep=warehouse.keep,
                      max_age_days=warehouse.max_age_days, progress=context.log.debug, limits=warehouse.limits(),
                      publish_to=warehouse.publish_to or None)
    except WarehouseCheckError as e:
        for o in e.outcomes:
            yield _check_result(o)
        raise dg.Failure(description=str(e)) from None
    except (PublishError, MartError) as e:  # stale marts, nothing attributed, a lock held: said plainly
        raise dg.Failure(description=str(e)) from None
    context.log.info(f"published {out.version} ({len(out.days)} day(s), {out.requests:,} requests) at {out.path}")
    yield dg.MaterializeResult(metadata={
        "dagster/row_count": out.requests,
        "version": out.version,
        "path": dg.MetadataValue.path(str(out.path)),
        "published_to": out.published_to or "",
        "days": len(out.days),
        "first_day": out.days[0].isoformat(),
        "last_day": out.days[-1].isoformat(),
        "rebuilt_days": dg.MetadataValue.json([d.isoformat() for d in out.rebuilt_days]),
        # Days published before whose amounts this version changed (the `restatements` table).
        "restated_days": dg.MetadataValue.json([d.isoformat() for d in out.restated_days]),
        "pruned_versions": dg.MetadataValue.json(out.pruned),
        "rows_by_table": dg.MetadataValue.json(out.tables),
        "seconds": round(out.seconds, 3),
    })
    for o in out.checks:
        yield _check_result(o)
