"""Ingest assets: one per canonical dataset, raw files -> Parquet lake, nothing lost."""

from datetime import date

import dagster as dg
import polars as pl

from pipelines.ingest import IngestOutcome, ingest_partition
from pipelines.midnight import started_before
from pipelines.partitions import daily, daily_by_site, day_and_site
from pipelines.resources import ParquetLake, RawInputs
from transforms.contracts import CANONICAL


def _periods(out: IngestOutcome) -> dict:
    """First and last day the cost lines cover: a re-delivered bill changes the attribution of
    those days (the `downstream` sensor re-runs them)."""
    if out.dataset != "cost_lines" or not out.canonical_rows:
        return {}
    first, last = pl.scan_parquet(out.paths["canonical"]).select(
        pl.col("period_start").min().dt.date(),
        (pl.col("period_end").max() - pl.duration(microseconds=1)).dt.date()).collect().row(0)
    return {"period_first_day": first.isoformat(), "period_last_day": last.isoformat()}


def _in_flight(out: IngestOutcome) -> dict:
    """Requests of the log that started before its day (in flight at midnight): the day before
    is attributed again (the `downstream` sensor, `pipelines.midnight`)."""
    if out.dataset != "requests" or not out.canonical_rows:
        return {}
    return {"started_before_day": started_before([out.paths["canonical"]], out.day)}


def outcome_metadata(out: IngestOutcome) -> dict:
    return {
        "raw_fingerprint": out.raw_fingerprint,
        **_periods(out),
        **_in_flight(out),
        "dagster/row_count": out.canonical_rows,
        "rows_read": out.rows_read,
        "rows_accepted": out.rows_accepted,
        "rows_quarantined": out.rows_quarantined,
        "quarantined_by_reason": dg.MetadataValue.json(out.by_reason),
        "raw_files": len(out.files),
        "files_unreadable": len(out.unreadable),
        "files_ignored": len(out.ignored),
        # Why each file was not read (the audit has them all; 50 here, for the CLI and the UI).
        "files_not_read": dg.MetadataValue.json(dict(list({**out.unreadable, **out.ignored}.items())[:50])),
        "path": dg.MetadataValue.path(out.paths["canonical"]),
        "seconds": round(out.seconds, 3),
    }


def _ingest_asset(dataset: str, *, per_site: bool, name: str | None = None) -> dg.AssetsDefinition:
    contract = CANONICAL[dataset]

    @dg.asset(
        name=name or dataset,
        description=contract.description,
        partitions_def=daily_by_site if per_site else daily,
        kinds={"polars", "parquet"},
        group_name="ingest",
        metadata={"contract": dg.MetadataValue.md(f"docs/data-contracts.md#{dataset}")},
    )
    def ingest(context: dg.AssetExecutionContext, raw: RawInputs, lake: ParquetLake) -> dg.MaterializeResult:
        day, site = day_and_site(context) if per_site else (context.partition_key, None)
        out = ingest_partition(dataset, date.fromisoformat(day), site, raw.local(date.fromisoformat(day), site),
                              lake.lake, raw.inventory())
        context.log.info(f"{dataset} {day} {site or ''}: read {out.rows_read}, accepted {out.rows_accepted}, "
                         f"quarantined {out.rows_quarantined} {out.by_reason}")
        return dg.MaterializeResult(metadata=outcome_metadata(out))

    return ingest


requests = _ingest_asset("requests", per_site=True)
power_readings = _ingest_asset("power_readings", per_site=True)
cost_lines = _ingest_asset("cost_lines", per_site=True)
asset_register = _ingest_asset("assets", per_site=False, name="asset_register")
market_prices = _ingest_asset("market_prices", per_site=False)
fx_rates = _ingest_asset("fx_rates", per_site=False)
performance_profiles = _ingest_asset("performance_profiles", per_site=False)
