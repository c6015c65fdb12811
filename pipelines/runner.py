"""Running the nightly graph without the daemon: the three jobs of `pipelines/defs/jobs/` for a
day, in-process, against the instance of $DAGSTER_HOME (created when missing: pipelines/instance.py;
ephemeral when unset).

`inferledger run`, `ingest`, `attribute`, `publish`, `backfill` and `demo` all come through here,
so the command line runs exactly what the schedule and the UI run: the same jobs, assets and
checks (Great Expectations suites and warehouse SQL checks included). A failed run raises
`RunFailed` naming the failed steps and the failed checks with their counts and examples.
"""

import gc
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import date, timedelta

import dagster as dg

from lake.raw import raw_files
from lake.raw_store import delivered as raw_delivered
from lake.raw_store import is_uri
from lake.store import Lake
from pipelines.adapters.dagster_private import defs_state_storage
from pipelines.instance import ensure_home
from pipelines.location import code_location
from pipelines.midnight import previous_day_stale
from pipelines.partitions import register_sites
from pipelines.resources import RawInputs
from settings import Settings

# Dagster's console logger at WARNING: the CLI shows its own progress; the full event log is
# in the instance (`dg dev`).
QUIET_RUN = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


class RunFailed(RuntimeError):
    """A run of the nightly graph failed; the message names its steps and checks."""

    def __init__(self, message: str, run_id: str | None = None):
        super().__init__(message)
        self.run_id = run_id

    def __reduce__(self):  # crosses process boundaries (parallel runs) with its run id
        return (RunFailed, (str(self), self.run_id))


@dataclass
class RunOutcome:
    job: str
    partition: str | None
    run_id: str
    seconds: float
    materializations: dict[str, dict] = field(default_factory=dict)  # asset -> metadata
    checks: list[tuple[str, str, bool, str]] = field(default_factory=list)  # (asset, check, passed, severity)
    check_counts: dict[tuple[str, str], int | None] = field(default_factory=dict)  # (asset, check) -> unexpected rows
    step_seconds: dict[str, float] = field(default_factory=dict)  # Dagster step -> seconds (start to end)


def instance() -> dg.DagsterInstance:
    """The instance of $DAGSTER_HOME, made absolute (worker processes inherit it so) and created
    with the project's settings when missing (`pipelines.instance.ensure_home`); without
    DAGSTER_HOME, an ephemeral one: the runs are not recorded."""
    home = os.environ.get("DAGSTER_HOME", "").strip()
    if not home:
        return dg.DagsterInstance.ephemeral()
    os.environ["DAGSTER_HOME"] = str(ensure_home(home))
    return dg.DagsterInstance.get()


def where_runs_are() -> str:
    """Where the runs of this process are recorded, and how to see them."""
    home = os.environ.get("DAGSTER_HOME", "").strip()
    if not home:
        return ("runs not recorded (DAGSTER_HOME is not set: an in-memory Dagster instance); set DAGSTER_HOME to a "
                "directory to keep them (`make` sets .dagster_home/ of the checkout)")
    return f"runs recorded in DAGSTER_HOME={home}; see them with `DAGSTER_HOME={home} dg dev` (or `make ui`)"


def _value(v):
    return getattr(v, "value", getattr(v, "data", v))


def _step_error(err) -> str:
    """What failed a step, in the words of the code that raised it: Dagster wraps the asset's own
    error (`Error occurred while executing op ...`), whose first lines are shown without the
    module path. A full disk is one line naming the file written and what to do."""
    chain = []
    while err is not None:
        chain.append(err)
        err = err.cause or err.context
    own = next((e for e in chain if not e.cls_name.startswith("Dagster")), chain[0] if chain else None)
    if own is None:
        return "see the run log"
    lines = own.message.strip().splitlines() or [own.cls_name]
    qualified, _, text = lines[0].partition(": ")
    if qualified.rsplit(".", 1)[-1] == own.cls_name and text:  # `polars.exceptions.ComputeError: ...`
        lines[0] = text if own.cls_name == "NoSpaceLeft" else f"{own.cls_name}: {text}"
    if own.cls_name != "NoSpaceLeft" and any("No space left on device" in e.message for e in chain):
        lines[0] = f"no space left on device ({lines[0]}): free space on that disk, then run the same command again"
    return "\n    ".join(lines[:12])


def _failure_message(result: dg.ExecuteInProcessResult, job: str, partition: str | None,
                     planned: set[str] | None = None) -> str:
    where = f"{job}" + (f" [{partition}]" if partition else "")
    lines = []
    for ev in result.get_asset_check_evaluations():
        if not ev.passed and ev.severity == dg.AssetCheckSeverity.ERROR:
            meta = {k: _value(v) for k, v in ev.metadata.items()}
            count = meta.get("unexpected_count", "?")
            examples = meta.get("examples") or meta.get("partial_unexpected_list") or []
            lines.append(f"check {ev.check_name} on {ev.asset_key.to_user_string()} failed: {count} unexpected"
                         + (f", e.g. {str(examples)[:300]}" if examples else ""))
    for ev in result.get_step_failure_events():
        lines.append(f"step {ev.step_key} failed: " + _step_error(ev.event_specific_data.error))
    done = {e.event_specific_data.materialization.asset_key.to_user_string()
            for e in result.get_asset_materialization_events()}
    not_run = sorted((planned or set()) - done)
    if not_run:
        lines.append(f"not run (upstream failed): {', '.join(not_run)}")
    return f"{where} failed (run {result.run_id}):\n  " + "\n  ".join(lines or ["see the run log"])


def run_job(defs: dg.Definitions, name: str, partition: str | None, inst: dg.DagsterInstance, *,
            tags: dict | None = None, assets: list[str] | None = None) -> RunOutcome:
    """Execute one run of job `name` in-process; raises RunFailed naming what failed."""
    started = time.perf_counter()
    # The imports (Dagster, GX, pandas, Polars) leave millions of long-lived objects that every
    # full garbage collection would walk again, and GX's validations trigger many: collect once,
    # then freeze what is left out of later collections (~10 % of a GX validation's time).
    gc.collect()
    gc.freeze()
    # Loading definitions reads the "current" definitions-state storage, a context variable an
    # instance sets when entered and that can outlive it (an instance collected since): point
    # it at this run's instance while the job is resolved and run.
    with defs_state_storage(inst.defs_state_storage):
        job = defs.resolve_job_def(name)
        result = job.execute_in_process(
            partition_key=partition, instance=inst, raise_on_error=False, run_config=QUIET_RUN,
            tags={"inferledger/job": name, **(tags or {})},
            asset_selection=[dg.AssetKey(a) for a in assets] if assets else None)
    if not result.success:
        planned = set(assets) if assets else {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
        raise RunFailed(_failure_message(result, name, partition, planned), result.run_id)
    out = RunOutcome(name, partition, result.run_id, time.perf_counter() - started)
    for ev in result.get_asset_materialization_events():
        mat = ev.event_specific_data.materialization
        out.materializations[mat.asset_key.to_user_string()] = {k: _value(v) for k, v in mat.metadata.items()}
    out.checks = [(e.asset_key.to_user_string(), e.check_name, e.passed, e.severity.value)
                  for e in result.get_asset_check_evaluations()]
    out.check_counts = {(e.asset_key.to_user_string(), e.check_name): _value(e.metadata.get("unexpected_count"))
                        for e in result.get_asset_check_evaluations()}
    out.step_seconds = step_seconds(inst, result.run_id)
    return out


_STEP_EVENTS = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}


def step_spans(inst: dg.DagsterInstance, run_id: str) -> dict[str, tuple[float, float]]:
    """(STEP_START, STEP_SUCCESS or STEP_FAILURE) epoch timestamps of each step of a run that
    ended, from its event log."""
    started: dict[str, float] = {}
    spans: dict[str, tuple[float, float]] = {}
    # Only the step events, filtered in the event log's query: not every check evaluation's
    # metadata deserialized (~600 a night) to find the ~40 step starts and ends.
    for record in inst.get_records_for_run(run_id, of_type=_STEP_EVENTS).records:
        rec = record.event_log_entry
        ev = rec.dagster_event
        if ev is None or ev.step_key is None:
            continue
        if ev.event_type == dg.DagsterEventType.STEP_START:
            started[ev.step_key] = rec.timestamp
        elif ev.event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE) \
                and ev.step_key in started:
            spans[ev.step_key] = (started[ev.step_key], rec.timestamp)
    return spans


def step_seconds(inst: dg.DagsterInstance, run_id: str) -> dict[str, float]:
    """Seconds from STEP_START to STEP_SUCCESS (or STEP_FAILURE) of each step of a run, from its event log."""
    return {k: round(end - start, 3) for k, (start, end) in step_spans(inst, run_id).items()}


def check_first_day(settings: Settings, day: date) -> None:
    """RunFailed, one line naming the setting, when `day` is before the first partition day."""
    if day < settings.first_day:
        raise RunFailed(f"{day} is before the first day the pipeline has partitions for, {settings.first_day} "
                        f"(INFERLEDGER_FIRST_DAY): set INFERLEDGER_FIRST_DAY={day} or earlier to run it "
                        "(docs/operations.md, \"Settings\")")


def prepare(settings: Settings, day: date | None, inst: dg.DagsterInstance, *, delivered: bool = True) -> list[str]:
    """Load the inventory (clear error when invalid), check the day is not before the first
    partition day and (`delivered`) that it was delivered, register the inventory's sites as
    partitions; returns the site ids."""
    if day is not None:
        check_first_day(settings, day)
    inv = RawInputs(root=str(settings.raw), inventory_path=str(settings.inventory or "")).inventory()
    if day is not None and delivered and not raw_delivered(settings.raw, day):
        raise RunFailed(f"no raw folder {settings.raw}/{day.isoformat()}: nothing delivered for {day}. "
                        f"Simulate one with `inferledger simulate --date {day} --out {settings.raw}`.")
    register_sites(inst, inv.site_ids)
    return inv.site_ids


Step = tuple[str, str | None, list[str] | None]  # job, partition, asset subset


# A step that attributes the day before its partition again, when the partition's request log
# reveals requests in flight at that midnight (`pipelines.midnight.previous_day_stale`); nothing
# otherwise. `run_steps` needs `settings` (the lake) for it.
PREVIOUS_DAY = "attribute_previous_day_if_stale"


def day_steps(day: date, sites: list[str], *, ingest: bool = True, attribute: bool = True) -> list[Step]:
    steps: list[Step] = []
    if ingest:
        steps += [("ingest_day_site", f"{day.isoformat()}|{s}", None) for s in sites]
    if attribute:
        steps.append(("attribute_day", day.isoformat(), None))
        if ingest:
            steps.append((PREVIOUS_DAY, day.isoformat(), None))
    elif ingest:
        steps.append(("attribute_day", day.isoformat(), list(FLEET_INGEST_ASSETS)))
    return steps


def _leading_ingest(steps: list[Step]) -> int:
    """How many steps at the head of `steps` are ingest runs."""
    return next((i for i, s in enumerate(steps) if s[0] != "ingest_day_site"), len(steps))


# The assets of one `ingest_day_site` run, which parallel runs take one at a time.
INGEST_ASSETS = ("requests", "power_readings", "cost_lines")
# The fleet-wide ingest assets of `attribute_day`, run alone by `inferledger ingest`.
FLEET_INGEST_ASSETS = ("asset_register", "market_prices", "fx_rates", "performance_profiles")


def expand_steps(steps: list[Step], settings: Settings, parallel: int) -> list[Step]:
    """The runs `run_steps` makes of `steps`: with `parallel` > 1, the leading `ingest_day_site`
    steps become one run per site and dataset (so a site's requests and its power readings can
    run at once), largest raw input first, so that the longest runs start first."""
    if parallel <= 1:
        return list(steps)
    n = _leading_ingest(steps)
    if n == 0:
        return list(steps)

    def raw_bytes(step: Step) -> int:
        day, site = step[1].split("|")
        if is_uri(settings.raw):  # on an object store: not mirrored yet, in the order given
            return 0
        return sum(p.stat().st_size for _src, ps in raw_files(step[2][0], settings.raw, date.fromisoformat(day), site)
                   for p in ps)

    split = [(job, part, [a]) for job, part, assets in steps[:n] for a in (assets or INGEST_ASSETS)]
    return sorted(split, key=raw_bytes, reverse=True) + list(steps[n:])


_WORKER: dict = {}


def _run_in_worker(settings: Settings, step: Step, tags: dict | None,
                   dagster_home: str | None) -> RunOutcome | RunFailed:
    """One run in a worker process of `run_steps` (definitions and instance made once per process)."""
    if dagster_home:
        os.environ["DAGSTER_HOME"] = dagster_home
    if "defs" not in _WORKER:
        _WORKER["inst"] = instance()
        prepare(settings, None, _WORKER["inst"])  # an ephemeral instance needs the sites registered too
        _WORKER["defs"] = code_location(settings)
    job, partition, assets = step
    try:
        return run_job(_WORKER["defs"], job, partition, _WORKER["inst"], tags=tags, assets=assets)
    except RunFailed as e:
        return e


def _ingests(step: Step) -> bool:
    """Whether `step` only ingests (a site's inputs, or the fleet-wide inputs alone): such runs are
    independent of each other, so one failing does not keep the others from running."""
    job, _, assets = step
    return job == "ingest_day_site" or (job == "attribute_day" and bool(assets)
                                        and set(assets) <= set(FLEET_INGEST_ASSETS))


def run_steps(defs: dg.Definitions, steps: list[Step], inst: dg.DagsterInstance, *,
              on_step: Callable[[Step, RunOutcome | None], None] | None = None, tags: dict | None = None,
              parallel: int = 1, settings: Settings | None = None) -> list[RunOutcome]:
    """Run `steps` in order; `on_step(step, None)` before and `on_step(step, outcome)` after each.

    With `parallel` > 1 (and `settings`, which the worker processes load the location with), the
    leading ingest steps run as `expand_steps` splits them, `parallel` at a time, each in a worker
    process (spawned: Polars, DuckDB and GX each hold threads and caches of their own); every one
    of them finishes before the steps after them (attribution, publish) start, in this process. A
    failed ingest run (a blocking check on one site's inputs, say) does not stop the other ingest
    runs: every site and the asset register are still ingested and checked, then RunFailed names
    every failure, and no step after them (attribution, publish) runs."""
    outcomes: list[RunOutcome] = []
    failures: list[str] = []
    todo = expand_steps(steps, settings, parallel) if settings is not None else list(steps)
    n = _leading_ingest(todo) if parallel > 1 and settings is not None else 0
    if n:
        try:
            outcomes += _run_parallel(todo[:n], settings, parallel, on_step, tags)
        except RunFailed as e:
            failures.append(str(e))
        todo = todo[n:]
    for step in todo:
        if failures and not _ingests(step):
            break
        if on_step:
            on_step(step, None)
        job, partition, assets = step
        if job == PREVIOUS_DAY:
            job, partition = "attribute_day", _stale_previous_day(partition, settings)
            if partition is None:  # nothing to do: the step is done
                if on_step:
                    on_step(step, RunOutcome(PREVIOUS_DAY, None, "", 0.0))
                continue
        try:
            out = run_job(defs, job, partition, inst, tags=tags, assets=assets)
        except RunFailed as e:
            if not _ingests(step):
                raise
            failures.append(str(e))
            continue
        outcomes.append(out)
        if on_step:
            on_step(step, out)
    if failures:
        raise RunFailed("\n".join(failures))
    return outcomes


def _stale_previous_day(partition: str, settings: Settings | None) -> str | None:
    """The day before `partition` when its attribution must be redone (`previous_day_stale`)."""
    if settings is None:
        raise ValueError(f"{PREVIOUS_DAY} needs the settings (the lake) to look at; pass settings= to run_steps")
    day = date.fromisoformat(partition)
    return (day - timedelta(days=1)).isoformat() if previous_day_stale(Lake(settings.lake), day) else None


def _run_parallel(steps: list[Step], settings: Settings, parallel: int,
                  on_step: Callable[[Step, RunOutcome | None], None] | None, tags: dict | None) -> list[RunOutcome]:
    home = os.environ.get("DAGSTER_HOME")
    done: dict[int, RunOutcome] = {}
    failures: list[str] = []
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(parallel, len(steps)), mp_context=spawn) as pool:
        futures = {}
        for i, step in enumerate(steps):
            futures[pool.submit(_run_in_worker, settings, step, tags, home)] = i
            if on_step:
                on_step(step, None)
        for fut in as_completed(futures):
            i = futures[fut]
            result = fut.result()
            if isinstance(result, RunFailed):
                failures.append(str(result))
                continue
            done[i] = result
            if on_step:
                on_step(steps[i], result)
    if failures:
        raise RunFailed("\n".join(failures))
    return [done[i] for i in sorted(done)]
