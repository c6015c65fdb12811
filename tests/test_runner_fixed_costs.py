"""The fixed costs of a night, cut without changing what is recorded: the inventory parsed once
per process and text (every step builds the `raw` resource afresh), and a run's step spans read
from the step events alone (not every event of the run)."""

import dagster as dg
import pytest

from lake.inventory import load_inventory
from pipelines.runner import step_spans
from tests.conftest import DATA
from transforms.inventory import InventoryError


def test_the_same_inventory_text_is_parsed_once_and_an_edited_one_again(tmp_path):
    path = tmp_path / "inventory.yaml"
    text = (DATA / "inventory_small.yaml").read_text()
    path.write_text(text)
    first = load_inventory(path)
    assert load_inventory(path) is first  # the same file, the same text: the same (frozen) Inventory
    # Edited in place (same path): parsed again. The currency changed, so the new object says so.
    path.write_text(text.replace(f"currency: {first.currency}", "currency: XTS", 1))
    edited = load_inventory(path)
    assert edited is not first and edited.currency == "XTS" and first.currency != "XTS"
    # An invalid edit still raises, naming the file, and is not cached.
    path.write_text(text.replace(f"currency: {first.currency}", "currency: euros", 1))
    with pytest.raises(InventoryError, match="inventory.yaml"):
        load_inventory(path)
    path.unlink()
    with pytest.raises(InventoryError, match="inventory file not found"):
        load_inventory(path)


@dg.asset
def _a() -> int:
    return 1


@dg.asset
def _b(_a: int) -> int:
    return _a + 1


@dg.multi_asset_check(specs=[dg.AssetCheckSpec(f"c{i}", asset="_b") for i in range(3)])
def _b_checks():
    for i in range(3):
        yield dg.AssetCheckResult(asset_key="_b", check_name=f"c{i}", passed=True, metadata={"i": i})


def _spans_from_every_event(inst: dg.DagsterInstance, run_id: str) -> dict[str, tuple[float, float]]:
    """The reference: step spans found by reading every event of the run (the code before)."""
    started, spans = {}, {}
    for rec in inst.all_logs(run_id):
        ev = rec.dagster_event
        if ev is None or ev.step_key is None:
            continue
        if ev.event_type == dg.DagsterEventType.STEP_START:
            started[ev.step_key] = rec.timestamp
        elif ev.event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
            spans[ev.step_key] = (started[ev.step_key], rec.timestamp)
    return spans


def test_step_spans_from_the_step_events_equal_those_from_every_event():
    inst = dg.DagsterInstance.ephemeral()
    defs = dg.Definitions(assets=[_a, _b], asset_checks=[_b_checks], jobs=[dg.define_asset_job("j")])
    result = defs.resolve_job_def("j").execute_in_process(instance=inst)
    assert result.success
    # Three steps (_a, _b, the check step), three check evaluations: the spans are those of the
    # three steps, the same epoch timestamps as the full read of the event log gives.
    spans = step_spans(inst, result.run_id)
    assert len(spans) == 3 and len(result.get_asset_check_evaluations()) == 3
    assert spans == _spans_from_every_event(inst, result.run_id)
    assert all(start <= end for start, end in spans.values())
