"""The morning report: one self-contained HTML page from the published warehouse (docs/report.md)."""

from pathlib import Path

import dagster as dg
from pydantic import Field

from pipelines.resources import Warehouse
from warehouse.report import write_report


class ReportConfig(dg.Config):
    days: int = Field(default=7, description="Days the charts cover, ending on the last published day.")
    path: str = Field(default="", description="HTML file to write; default the warehouse resource's report file "
                                              "($INFERLEDGER_REPORT, else report.html beside the warehouse file).")


def report_path(config: ReportConfig, warehouse: Warehouse) -> Path:
    return Path(config.path) if config.path else warehouse.report_file()


@dg.asset(deps=["warehouse"], kinds={"duckdb", "html"}, group_name="warehouse")
def report(context: dg.AssetExecutionContext, config: ReportConfig, warehouse: Warehouse) -> dg.MaterializeResult:
    """The morning report of the last published day: headline figures, cost, idle, energy, margin,
    tenants, reconciliation and data quality over the last days, charts rendered offline."""
    out = write_report(warehouse.path, report_path(config, warehouse), days=config.days, limits=warehouse.limits(),
                       cache_dir=Path(warehouse.cache_dir) if warehouse.cache_dir else None)
    context.log.info(f"report of {out.day} ({out.charts} charts, {out.bytes:,} bytes) at {out.path}")
    return dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(str(out.path.resolve())),
        "day": out.day.isoformat(),
        "first_day": out.first_day.isoformat(),
        "charts": out.charts,
        "bytes": out.bytes,
        "seconds": round(out.seconds, 3),
        "headlines": dg.MetadataValue.json({h.key: h.value for h in out.headlines}),
    })
