"""The planner's inputs read from the ledger (docs/planning.md, "Inputs from the ledger").

Reads, for every day of a window, the nightly products in the lake that the warehouse publishes
(the mart `capacity_by_pool_hour`, the facts `request_costs` and the attributed `node_slots`
behind them: the energy price actually paid and the PUE are read from the node-slots' cost and
energy, the same amounts the marts sum, so the prices and the ledger's energy cost agree)
and the inventory (pools, nodes' idle and nameplate power, tiers); the capacity of each (pool, model,
tier, request-size bucket) is learned from each day's facts and performance profiles as the capacity
marts learn it (`transforms.planning.buckets`). It hands them to the pure conversion
`transforms.planning.ledger.from_ledger`. A day of the window
without its marts is refused, naming the file and the command that builds it.
"""

from datetime import date, timedelta
from pathlib import Path

import polars as pl

from lake.store import Lake
from transforms.inventory import Inventory
from transforms.planning import PlanInputError, Tier
from transforms.planning.buckets import (BUCKET_FACT_COLUMNS, DEFAULT_BUCKETS, Bucket, day_bucket_capacity,
                                         request_bucket, window_capacity)
from transforms.planning.ledger import (POOL_DIMS_SCHEMA, POOL_HOURS_SCHEMA, SITE_HOURS_SCHEMA, TRAFFIC_SCHEMA,
                                        LedgerFrames)
from warehouse.capacity import profiles_frame

MARTS = ("capacity_by_pool_hour",)


def days_of(first: date, last: date) -> list[date]:
    if last < first:
        raise PlanInputError(f"window {first}..{last}: the last day is before the first; write D1..D2 with D1 <= D2")
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _files(lake: Lake, days: list[date]) -> dict[str, list[Path]]:
    files: dict[str, list[Path]] = {}
    for day in days:
        for mart in MARTS:
            path = lake.mart_path(mart, day)
            if not lake.exists(path):
                raise PlanInputError(f"{path}: no {mart} for {day}; run `inferledger run --date {day}` first")
            files.setdefault(mart, []).append(path)
        for dataset in ("request_costs", "node_slots"):
            found = lake.day_files(dataset, day)
            if not found:
                raise PlanInputError(f"{lake.root}: no {dataset} for {day}; run `inferledger run --date {day}` first")
            files.setdefault(dataset, []).extend(found)
    return files


def _pool_hours(files: dict[str, list[Path]]) -> pl.LazyFrame:
    it = (pl.scan_parquet(files["node_slots"]).group_by("pool_id", hour=pl.col("slot_start").dt.truncate("1h"))
          .agg(it_kwh=pl.col("it_energy_j").sum() / 3.6e6))
    return (pl.scan_parquet(files["capacity_by_pool_hour"]).join(it, on=["pool_id", "hour"], how="left")
            .select(pool="pool_id", hour="hour", nodes_on=pl.col("nodes_powered").cast(pl.Float64),
                    redundancy_min=pl.col("redundancy_min_nodes").cast(pl.Int64),
                    it_kwh=pl.col("it_kwh").fill_null(0.0), energy_cost="pool_energy_cost",
                    rent_cost="pool_cloud_cost", amortization_cost="pool_amortization_cost")
            .cast(dict(POOL_HOURS_SCHEMA)))


def _traffic(files: dict[str, list[Path]], days: list[date], buckets: tuple[Bucket, ...]) -> pl.LazyFrame:
    """Requests by completion hour (a request in flight at midnight is counted on its completion
    day, as the facts count it) and request-size bucket, within the window's days."""
    hour = pl.col("completed_at").dt.truncate("1h")
    return (pl.scan_parquet(files["request_costs"])
            .filter(pl.col("completed_at").dt.date().is_in(days))
            .group_by(hour.alias("hour"), "tier", "model", request_bucket(buckets).alias("bucket"), pool="pool_id")
            .agg(requests=pl.len().cast(pl.Int64), output_tokens=pl.col("output_tokens").sum().cast(pl.Float64),
                 response_bytes=pl.col("response_bytes").sum().cast(pl.Float64),
                 egress_cost=pl.col("egress_cost").sum())
            .select(list(TRAFFIC_SCHEMA)).cast(dict(TRAFFIC_SCHEMA)))


def _capacity(lake: Lake, inventory: Inventory, days: list[date], buckets: tuple[Bucket, ...]) -> pl.LazyFrame:
    """Per (pool, model, tier, bucket): each day's capacity from its facts and profiles, the window's
    the smallest known (`window_capacity`); computed once here (a few rows), not again at every use."""
    return window_capacity([
        day_bucket_capacity(pl.scan_parquet(lake.day_files("request_costs", day)).select(BUCKET_FACT_COLUMNS),
                            profiles_frame(lake.day_files("performance_profiles", day)), inventory, day, buckets)
        for day in days]).collect().lazy()


def ledger_frames(lake_root: Path | str, inventory: Inventory, first: date, last: date,
                  buckets: tuple[Bucket, ...] = DEFAULT_BUCKETS) -> LedgerFrames:
    """The frames of the window first..last (whole UTC days) for `from_ledger`, demand and capacity
    per request-size bucket (`buckets`, the options')."""
    days = days_of(first, last)
    lake = Lake(lake_root)
    files = _files(lake, days)
    slots = pl.scan_parquet(files["node_slots"])
    site_hours = (slots.group_by(site="site_id", hour=pl.col("slot_start").dt.truncate("1h"))
                  .agg(it_kwh=pl.col("it_energy_j").sum() / 3.6e6,
                       facility_kwh=(pl.col("it_energy_j") + pl.col("overhead_j")).sum() / 3.6e6,
                       energy_cost=pl.col("energy_cost").sum())
                  .cast(dict(SITE_HOURS_SCHEMA)))
    nodes = (inventory.nodes_frame().filter(pl.col("role") == "serving").group_by("pool_id")
             .agg(nodes=pl.len().cast(pl.Int64), idle_w=pl.col("idle_w").mean(),
                  nameplate_w=pl.col("nameplate_w").mean()))
    pools = pl.LazyFrame([{"pool_id": p.id, "site": p.site, "gpu_model": p.gpu_model} for p in inventory.pools],
                         schema={"pool_id": pl.String, "site": pl.String, "gpu_model": pl.String})
    dims = (pools.join(nodes, on="pool_id").rename({"pool_id": "pool"}).select(list(POOL_DIMS_SCHEMA))
            .cast(dict(POOL_DIMS_SCHEMA)))
    tiers = tuple(Tier(t.id, t.ttft_p95_s, t.e2e_p95_s, "") for t in inventory.tiers)
    return LedgerFrames(_pool_hours(files), site_hours, _traffic(files, days, buckets), dims, tiers,
                        _capacity(lake, inventory, days, buckets))
