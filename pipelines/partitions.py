"""Partitions: one per UTC day, and per site for inputs that are per site.

Sites are a dynamic dimension: the inventory names them, and `register_sites` (called by
the CLI and by the inventory sensor) adds them to the Dagster instance.

Days start at the setting `first_day` (INFERLEDGER_FIRST_DAY). The assets and jobs under
`pipelines/defs` are declared, when their modules are imported, with the default first day
(`daily`, `daily_by_site`); `with_first_day` gives the code location another one, its assets,
jobs, schedule and sensors rebuilt on partitions that start there (`pipelines/location.py`).
"""

import warnings
from datetime import date

import dagster as dg

from settings import default

FIRST_DAY = default("first_day").isoformat()

daily = dg.DailyPartitionsDefinition(start_date=FIRST_DAY, timezone="UTC")
sites = dg.DynamicPartitionsDefinition(name="site")
daily_by_site = dg.MultiPartitionsDefinition({"date": daily, "site": sites})


def _job(job):
    """An asset job like `job` (every attribute define_asset_job takes but its partitions, which
    Dagster infers from the selected assets)."""
    return dg.define_asset_job(job.name, selection=job.selection, config=job.config, description=job.description,
                               tags=job.tags, run_tags=job.run_tags, metadata=job.metadata,
                               executor_def=job.executor_def, hooks=job.hooks, op_retry_policy=job.op_retry_policy)


def with_first_day(defs: dg.Definitions, first_day: date) -> dg.Definitions:
    """`defs` with its daily partitions starting on `first_day` (unchanged at the default): every
    asset, asset job, schedule and sensor on `daily` or `daily_by_site` rebuilt on partitions
    starting there. Asset checks run inside their asset's run and have no partitions of their own."""
    if first_day.isoformat() == FIRST_DAY:
        return defs
    start = dg.DailyPartitionsDefinition(start_date=first_day.isoformat(), timezone="UTC")
    swap = {daily: start, daily_by_site: dg.MultiPartitionsDefinition({"date": start, "site": sites})}

    def spec(s: dg.AssetSpec) -> dg.AssetSpec:
        return s.replace_attributes(partitions_def=swap[s.partitions_def]) if s.partitions_def in swap else s

    with warnings.catch_warnings():  # public API, marked preview or beta in Dagster 1.13
        warnings.simplefilter("ignore", dg.PreviewWarning)
        warnings.simplefilter("ignore", dg.BetaWarning)
        assets = [a.map_asset_specs(spec) if isinstance(a, dg.AssetsDefinition) else a for a in defs.assets or []]
        jobs = {j.name: _job(j) for j in defs.jobs or []}
        sensors = [s.with_attributes(jobs=[jobs[j.name] for j in s.jobs]) if s.has_jobs else s
                   for s in defs.sensors or []]
        schedules = [s.with_attributes(job=jobs[s.job_name]) for s in defs.schedules or []]
    return dg.Definitions(assets=assets, asset_checks=defs.asset_checks, jobs=list(jobs.values()), sensors=sensors,
                          schedules=schedules, resources=defs.resources)


def register_sites(instance: dg.DagsterInstance, site_ids: list[str]) -> list[str]:
    """Add the inventory's sites to the instance; returns the ones that were new."""
    known = set(instance.get_dynamic_partitions(sites.name))
    new = [s for s in site_ids if s not in known]
    if new:
        instance.add_dynamic_partitions(sites.name, new)
    return new


def day_and_site(context: dg.AssetExecutionContext) -> tuple[str, str]:
    key = context.partition_key
    assert isinstance(key, dg.MultiPartitionKey), key
    return key.keys_by_dimension["date"], key.keys_by_dimension["site"]
