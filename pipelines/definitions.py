"""The Dagster code location: every definition under `pipelines/defs`, and the resources."""

import dagster as dg

import pipelines.defs
from pipelines.resources import default_resources

defs = dg.Definitions.merge(
    dg.load_defs(pipelines.defs),
    dg.Definitions(resources=default_resources()),
)
