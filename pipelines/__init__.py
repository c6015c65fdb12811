"""Dagster assets, jobs, sensors and the command line of the nightly pipeline."""

import transforms  # noqa: F401  (first: it sets Polars's allocator before Polars is loaded)
