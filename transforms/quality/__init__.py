"""Data quality: Great Expectations suites in code, run on Polars frames (docs/data-quality.md).

`run_suites(lake_root, day, inventory)` validates a lake day and returns one `SuiteResult`
per batch; `format_report` prints them; `python -m transforms.quality LAKE DAY` does both and
exits non-zero on an error-severity failure.
"""

from transforms.quality.lake import run_suite_on_files, run_suites, validate_inventory, validate_partition
from transforms.quality.runner import ExpectationResult, SuiteResult, format_report, validate_frame
from transforms.quality.suites import SUITES, Check, SuiteContext, catalog

__all__ = ["SUITES", "Check", "ExpectationResult", "SuiteContext", "SuiteResult", "catalog", "format_report",
           "run_suite_on_files", "run_suites", "validate_frame", "validate_inventory", "validate_partition"]
