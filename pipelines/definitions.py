"""The Dagster code location as `dg dev`, `dg check defs` and a deployment load it
(`pipelines.location.code_location`), with the settings of the environment, resolved when
Dagster loads the location, not when this module is imported."""

import os

import dagster as dg

from pipelines.location import code_location
from settings import resolve


@dg.definitions
def defs() -> dg.Definitions:
    return code_location(resolve(os.environ))
