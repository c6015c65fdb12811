"""The private APIs the code uses, each behind one adapter (pipelines/adapters/dagster_private.py,
transforms/quality/gx_private.py), are still there in the installed libraries, and each library
is the release series its adapter was checked on. A failure names what to re-check."""

import pytest

from pipelines.adapters import dagster_private
from transforms.quality import gx_private
from transforms.quality.runner import _batch_definition, validate_frame
from transforms.quality.suites import SuiteContext

def _series(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".")[:2])

@pytest.mark.parametrize("adapter", [dagster_private, gx_private], ids=["dagster", "great_expectations"])
def test_each_library_is_the_series_its_adapter_was_checked_on(adapter):
    installed = adapter.installed_version()
    assert _series(installed) == _series(adapter.CHECKED_ON), (
        f"{adapter.__name__} was checked on {adapter.CHECKED_ON}, {installed} is installed: re-check each use its "
        "docstring lists (its `problems()` and the tests named there), then set CHECKED_ON")

def test_dagster_still_has_what_the_adapter_uses():
    assert dagster_private.problems() == [], f"dagster {dagster_private.installed_version()}"

def test_great_expectations_still_has_what_the_adapter_uses(small_inventory):
    # A validation first: the execution engine and its caches exist once a batch was loaded.
    validate_frame("inventory", small_inventory.nodes_frame(), SuiteContext(inventory=small_inventory))
    assert gx_private.problems(_batch_definition()) == [], f"great_expectations {gx_private.installed_version()}"
