"""The nightly schedule and the sensors that carry each day downstream (pipelines/automation.py).

    nightly     at INFERLEDGER_NIGHTLY_CRON (default 02:30) in INFERLEDGER_NIGHTLY_TZ (default UTC):
                ingest the previous UTC day, one run per site
    downstream  every minute: attribute each day whose inputs are complete and newer than its
                attribution, then publish the warehouse once nothing upstream is running
    late_data   every 5 minutes: re-ingest exactly the (asset, day, site) partitions whose raw
                files changed since they were ingested (INFERLEDGER_LATE_DAYS, default 62 days back)

The cron and time zone are settings of the code location (`pipelines/location.py` makes the
schedule with them, `nightly_schedule`); the look-back is the raw inputs' resource's; everything
else is decided at each tick.
"""

from datetime import UTC, datetime

import dagster as dg

from pipelines.automation import (Cursor, changed_raw_partitions, downstream_requests, late_data_run_requests,
                                  nightly_run_requests)
from pipelines.defs.jobs.jobs import attribute_day, ingest_day_site, publish_warehouse
from pipelines.partitions import register_sites
from pipelines.resources import RawInputs
from settings import default


def nightly_schedule(cron: str = default("nightly_cron"),
                     timezone: str = default("nightly_tz")) -> dg.ScheduleDefinition:
    """The `nightly` schedule, ticking at `cron` in `timezone`."""

    @dg.schedule(job=ingest_day_site, cron_schedule=cron, execution_timezone=timezone,
                 default_status=dg.DefaultScheduleStatus.RUNNING,
                 description="Ingest the previous UTC day, every site; the downstream sensor attributes and publishes.")
    def nightly(context: dg.ScheduleEvaluationContext, raw: RawInputs):
        sites = raw.inventory().site_ids
        register_sites(context.instance, sites)
        return nightly_run_requests(context.scheduled_execution_time, sites)

    return nightly


@dg.sensor(jobs=[attribute_day, publish_warehouse], minimum_interval_seconds=60,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Attribute days whose inputs changed, then publish the warehouse once.")
def downstream(context: dg.SensorEvaluationContext, raw: RawInputs):
    requests, cursor = downstream_requests(context.instance, Cursor.parse(context.cursor), raw.inventory().site_ids)
    context.update_cursor(cursor.dump())
    return requests or dg.SkipReason("nothing newer to attribute or publish "
                                     f"(waiting on {sorted(cursor.pending) or 'nothing'})")


@dg.sensor(job=ingest_day_site, minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Re-ingest partitions whose raw files changed after they were ingested "
                       "(late or corrected data).")
def late_data(context: dg.SensorEvaluationContext, raw: RawInputs):
    changed = changed_raw_partitions(context.instance, raw.path, raw.inventory().site_ids, datetime.now(UTC).date(),
                                     raw.late_days)
    return late_data_run_requests(changed) or dg.SkipReason("no raw file changed since it was ingested")
