"""The Dagster code location: every definition under `pipelines/defs`, and the resources."""

from pathlib import Path

import dagster as dg

import pipelines.defs
from pipelines.resources import default_resources

defs = dg.Definitions.merge(
    dg.load_from_defs_folder(path_within_project=Path(pipelines.defs.__file__).parent),
    dg.Definitions(resources=default_resources()),
)
