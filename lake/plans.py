"""The planner's plans kept in the lake (docs/planning.md, "Warehouse tables"): what every publish
builds the plan tables from.

    <lake>/plans/<table>/run=<run_id>.parquet     one file per plan table and run

A run is written by `write_plan_run`: its `plan_runs` file is removed first and written last,
after the other tables' files of the run (each written atomically: `Lake.staging`, on disk or on
an object store), so a run whose
write was interrupted has no `plan_runs` file and is not published (`plan_files` lists only the
runs whose `plan_runs` file exists); writing a run again replaces its files, never doubles them.
"""

import re
from pathlib import Path

import polars as pl

from lake.store import PARQUET_OPTIONS, Lake

PLANS = "plans"
RUNS = "plan_runs"  # the table whose file commits a run
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


class PlanRunIdError(ValueError):
    """A run id that cannot name a file."""


def plan_file(lake_root: Path | str, table: str, run_id: str) -> Path:
    if not RUN_ID.match(run_id):
        raise PlanRunIdError(f"plan run id {run_id!r}: use letters, digits, '.', '_' and '-' only "
                             "(it names <lake>/plans/<table>/run=<run_id>.parquet)")
    return Lake(lake_root).path(PLANS, table, f"run={run_id}.parquet")


def write_plan_run(lake_root: Path | str, run_id: str, frames: dict[str, pl.DataFrame]) -> list[Path]:
    """Write one run's rows of each plan table (`frames`: table name -> rows, `plan_runs` among
    them) under `<lake>/plans/`, replacing the run's earlier files; returns the paths written."""
    if RUNS not in frames:
        raise ValueError(f"plan run {run_id}: no {RUNS} rows; a run is committed by its {RUNS} file")
    lake = Lake(lake_root)
    commit = plan_file(lake_root, RUNS, run_id)
    lake.remove(commit)  # until the end the run is not published (interrupted: not at all)
    written = []
    for tables in ([t for t in frames if t != RUNS], [RUNS]):  # the run's plan_runs file last
        with lake.staging() as stage:
            for table in tables:
                stage.write(plan_file(lake_root, table, run_id), lambda tmp, f=frames[table]: f.write_parquet(
                    tmp, **PARQUET_OPTIONS))
            written += stage.commit()
    return written


def plan_files(lake_root: Path | str, table: str) -> list[Path]:
    """The files of `table` of the committed runs (those with a `plan_runs` file), sorted by run id."""
    lake = Lake(lake_root)
    runs = {_name(lake, p) for p in lake.files_under(PLANS, RUNS, pattern="run=*.parquet")}
    return [p for p in lake.files_under(PLANS, table, pattern="run=*.parquet") if _name(lake, p) in runs]


def _name(lake: Lake, path: Path | str) -> str:
    """`run=<id>.parquet` (on an object store too, whose objects have longer names)."""
    return lake.relative(path).rpartition("/")[2]
