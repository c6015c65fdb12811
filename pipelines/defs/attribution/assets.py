"""Attribution: every cost of a day to its requests and idle capacity, conserved to the cent."""

import warnings
from datetime import date

import dagster as dg

from pipelines.attribution import attribute_partition
from pipelines.midnight import in_flight_rows
from pipelines.partitions import daily
from pipelines.resources import AttributionSettings, ParquetLake, RawInputs

# A day reads every site's inputs of that day (and, for bills and the register, what was
# delivered up to it).
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.BetaWarning)  # the mapping is beta; its behaviour here is tested
    _ALL_SITES_OF_THE_DAY = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="date")


@dg.asset(
    partitions_def=daily,
    kinds={"polars", "parquet"},
    group_name="attribution",
    ins={
        "requests": dg.AssetIn(partition_mapping=_ALL_SITES_OF_THE_DAY, dagster_type=dg.Nothing),
        "power_readings": dg.AssetIn(partition_mapping=_ALL_SITES_OF_THE_DAY, dagster_type=dg.Nothing),
        "cost_lines": dg.AssetIn(partition_mapping=_ALL_SITES_OF_THE_DAY, dagster_type=dg.Nothing),
        "asset_register": dg.AssetIn(dagster_type=dg.Nothing),
        "market_prices": dg.AssetIn(dagster_type=dg.Nothing),
        "fx_rates": dg.AssetIn(dagster_type=dg.Nothing),
    },
    check_specs=[dg.AssetCheckSpec("conservation", asset="request_costs", blocking=True,
                                   description="Every source line of the day: requests + idle + unattributed = "
                                               "its amount, to the cent (1e-9 relative for energy).")],
)
def request_costs(context: dg.AssetExecutionContext, raw: RawInputs, lake: ParquetLake,
                  settings: AttributionSettings):
    """Per-request cost facts of the day, with idle, reconciliation and energy by site-hour
    (docs/attribution.md). A day that does not conserve fails here and writes nothing."""
    day = date.fromisoformat(context.partition_key)
    out = attribute_partition(day, lake.lake, raw.inventory(), slot_s=settings.slot_s, weight=settings.weight,
                              gap_limit_s=settings.gap_limit_s, morsel_rows=settings.morsel_rows)
    money = {t["component"]: round(t["source_amount"], 2) for t in out.totals if t["unit"] != "J"}
    yield dg.MaterializeResult(metadata={
        "dagster/row_count": out.requests,
        "sources_by_component": dg.MetadataValue.json(money),
        "unattributed": round(out.unattributed, 2),
        # rows of the next day's requests in flight at midnight, charged their part of this day
        "in_flight_from_next_day": in_flight_rows(lake.lake, day),
        "path": dg.MetadataValue.path(out.paths["request_costs"]),
        "seconds": round(out.seconds, 3),
    })
    yield dg.AssetCheckResult(check_name="conservation", passed=True, metadata={
        "components": dg.MetadataValue.json({t["component"]: {
            "source": t["source_amount"], "requests": t["in_requests"], "idle": t["in_idle"],
            "unattributed": t["unattributed"]} for t in out.totals})})
