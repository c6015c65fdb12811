"""The Dagster code location, assembled in one place: every definition under `pipelines/defs`,
the nightly schedule at the settings' time, the resources from the settings, and daily
partitions from the settings' first day (`pipelines.partitions.with_first_day`).

`pipelines/definitions.py` calls `code_location` with the environment's settings (`dg dev`,
`dg check defs`, a deployment); the CLI and `pipelines/runner.py` with theirs (flags, paths).
"""

from pathlib import Path

import dagster as dg

import pipelines.defs
from pipelines.adapters.dagster_private import defs_state_storage
from pipelines.defs.automation.nightly import nightly_schedule
from pipelines.partitions import with_first_day
from pipelines.resources import resources
from settings import Settings


def code_location(settings: Settings) -> dg.Definitions:
    """The assets, checks, jobs, schedule, sensors and resources of the pipeline, configured by
    `settings`."""
    with defs_state_storage(None):  # no state-backed components here (pipelines/adapters/dagster_private.py)
        loaded = dg.load_from_defs_folder(path_within_project=Path(pipelines.defs.__file__).parent)
    return with_first_day(dg.Definitions.merge(loaded, dg.Definitions(
        schedules=[nightly_schedule(settings.nightly_cron, settings.nightly_tz)], resources=resources(settings))),
        settings.first_day)
