"""Partitions: one per UTC day, and per site for inputs that are per site.

Sites are a dynamic dimension: the inventory names them, and `register_sites` (called by
the CLI and by the inventory sensor) adds them to the Dagster instance.
"""

import dagster as dg

FIRST_DAY = "2024-01-01"

daily = dg.DailyPartitionsDefinition(start_date=FIRST_DAY, timezone="UTC")
sites = dg.DynamicPartitionsDefinition(name="site")
daily_by_site = dg.MultiPartitionsDefinition({"date": daily, "site": sites})


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
