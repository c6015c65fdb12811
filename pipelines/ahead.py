"""A day's marts computed ahead, beside the checks on its facts, in runs the runner executes in
its own process (`pipelines.runner.run_job`).

In `attribute_day` the marts (`cost_marts`) wait for the facts' Great Expectations suite
(`request_costs_quality`, blocking): the marts of facts that fail it must never be current. The
suite runs in pandas on one core; the marts' DuckDB queries would use the other. So, in a run
the runner executes in-process (its steps one after the other, in this process), `request_costs`
starts computing the day's marts in a thread as soon as the facts are written
(`start_marts`: `warehouse.marts.compute_day_marts`, into a private temporary folder, nothing of
the lake touched), while the suite runs; `cost_marts`, which runs only once the suite passed,
installs them (`take_marts`: `install_day_marts`, the manifest last), or builds them as before
when nothing was computed ahead, the computation failed (the build then raises the same error),
or the day's files changed since (`marts_fingerprint`). A run that ends without `cost_marts`
(the suite failed) discards what was computed: nothing reaches the lake. Runs launched by the
daemon, the UI or workers (steps in other processes) compute nothing ahead.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date

from lake.store import Lake
from transforms.inventory import Inventory
from warehouse.connection import DuckDBLimits
from warehouse.marts import ComputedMarts, DayMarts, build_day_marts, compute_day_marts, install_day_marts, \
    marts_fingerprint


@dataclass
class _Ahead:
    thread: threading.Thread
    limits: DuckDBLimits | None
    computed: ComputedMarts | None = None
    error: BaseException | None = None

    def wait(self) -> None:
        self.thread.join()

    def discard(self) -> None:
        self.wait()
        if self.computed is not None:
            self.computed.discard()


# Set by `marts_ahead` for the run the runner executes in this process.
_STATE: dict = {"enabled": False, "pending": {}}


@contextmanager
def marts_ahead() -> Iterator[None]:
    """Within the block (one in-process run that builds `cost_marts`), `start_marts` computes
    ahead; when it ends, whatever was computed and not installed is discarded."""
    _STATE["enabled"] = True
    try:
        yield
    finally:
        _STATE["enabled"] = False
        pending, _STATE["pending"] = _STATE["pending"], {}
        for ahead in pending.values():
            ahead.discard()


def start_marts(lake: Lake, day: date, inventory: Inventory, limits: DuckDBLimits | None) -> bool:
    """Start computing `day`'s marts in a thread (only inside `marts_ahead`); returns whether it started."""
    if not _STATE["enabled"]:
        return False
    key = (str(lake.root), day)
    if key in _STATE["pending"]:
        _STATE["pending"].pop(key).discard()

    def compute() -> None:
        try:
            ahead.computed = compute_day_marts(lake, day, inventory, limits=limits)
        except BaseException as e:  # noqa: BLE001 (kept: `take_marts` builds again, which raises it)
            ahead.error = e

    ahead = _Ahead(threading.Thread(target=compute, name=f"marts-ahead-{day}", daemon=True), limits)
    _STATE["pending"][key] = ahead
    ahead.thread.start()
    return True


def take_marts(lake: Lake, day: date, inventory: Inventory, *, limits: DuckDBLimits | None = None) -> DayMarts:
    """`day`'s marts into the lake: those computed ahead when they were computed from the day's
    current files with the same limits, else built now (`build_day_marts`)."""
    ahead = _STATE["pending"].pop((str(lake.root), day), None)
    if ahead is not None:
        ahead.wait()
        computed = ahead.computed
        try:
            if computed is not None and ahead.limits == limits \
                    and computed.built_from == marts_fingerprint(lake, day, inventory):
                return install_day_marts(lake, computed)
        finally:
            ahead.discard()
    return build_day_marts(lake, day, inventory, limits=limits)
