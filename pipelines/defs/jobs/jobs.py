"""The nightly graph as three jobs, one per partitioning: a Dagster run targets one partition
key, and the graph mixes day x site, day, and unpartitioned assets.

    ingest_day_site   requests, power_readings, cost_lines     one run per (date, site); sites in parallel
    attribute_day     asset_register, market_prices, fx_rates,   one run per date
                      performance_profiles, request_costs, cost_marts
    publish_warehouse warehouse, report                       one run for every attributed day

Each job carries its assets' checks; a failing blocking check stops the assets downstream of it.

`publish_warehouse` runs its steps in the run's own process, whatever the code location's executor
(Celery workers, Kubernetes step pods): the warehouse is one DuckDB file with its versions on one
disk (one writer, the `warehouse` pool), and the report reads the file the publish has just
written. On workers that share no disk, two steps on two machines would publish on one and look
for the file on the other (docs/deploy.md, "Workers on separate machines").
"""

import dagster as dg

from pipelines.partitions import daily, daily_by_site

ingest_day_site = dg.define_asset_job(
    "ingest_day_site", selection=dg.AssetSelection.assets("requests", "power_readings", "cost_lines"),
    partitions_def=daily_by_site, description="Ingest one site's raw files of one day into the lake.")

attribute_day = dg.define_asset_job(
    "attribute_day", selection=dg.AssetSelection.assets("asset_register", "market_prices", "fx_rates",
                                                        "performance_profiles", "request_costs", "cost_marts"),
    partitions_def=daily, description="Attribute one day's costs (all sites) and build its marts.")

publish_warehouse = dg.define_asset_job(
    "publish_warehouse", selection=dg.AssetSelection.assets("warehouse", "report"),
    description="Publish every attributed day as a new version of the warehouse, after its checks; write the report.",
    executor_def=dg.in_process_executor)
