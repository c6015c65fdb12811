"""The DuckDB warehouse: marts, publish, access and checks."""

import transforms  # noqa: F401  (first: it sets Polars's allocator before Polars is loaded)
