"""Data quality: Great Expectations suites in code, run on Polars frames (docs/data-quality.md).

`validate_frame(suite, frame, ctx)` validates a frame and returns a `SuiteResult`;
`format_report` prints results; `sources.judge_sources` checks what an ingest lost. Running them
on a day of the lake is `pipelines.suites` (`python -m pipelines.suites LAKE DAY`).
"""

from transforms.quality.runner import ExpectationResult, SuiteResult, format_report, validate_frame, validate_inventory
from transforms.quality.suites import SUITES, Check, SuiteContext, catalog

__all__ = ["SUITES", "Check", "ExpectationResult", "SuiteContext", "SuiteResult", "catalog", "format_report",
           "validate_frame", "validate_inventory"]
