"""The planner's plans kept in the lake (docs/planning.md, "Warehouse tables"): what every publish
builds the plan tables from.

    <lake>/plans/<table>/run=<run_id>.parquet     one file per plan table and run

A run is written by `write_plan_run`: its `plan_runs` file is removed first and written last,
after the other tables' files of the run (each written atomically, `lake.files`), so a run whose
write was interrupted has no `plan_runs` file and is not published (`plan_files` lists only the
runs whose `plan_runs` file exists); writing a run again replaces its files, never doubles them.
"""

import re
from pathlib import Path

import polars as pl

from lake import files
from lake.store import PARQUET_OPTIONS

PLANS = "plans"
RUNS = "plan_runs"  # the table whose file commits a run
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


class PlanRunIdError(ValueError):
    """A run id that cannot name a file."""


def plan_file(lake_root: Path | str, table: str, run_id: str) -> Path:
    if not RUN_ID.match(run_id):
        raise PlanRunIdError(f"plan run id {run_id!r}: use letters, digits, '.', '_' and '-' only "
                             "(it names <lake>/plans/<table>/run=<run_id>.parquet)")
    return Path(lake_root) / PLANS / table / f"run={run_id}.parquet"


def write_plan_run(lake_root: Path | str, run_id: str, frames: dict[str, pl.DataFrame]) -> list[Path]:
    """Write one run's rows of each plan table (`frames`: table name -> rows, `plan_runs` among
    them) under `<lake>/plans/`, replacing the run's earlier files; returns the paths written."""
    if RUNS not in frames:
        raise ValueError(f"plan run {run_id}: no {RUNS} rows; a run is committed by its {RUNS} file")
    commit = plan_file(lake_root, RUNS, run_id)
    commit.unlink(missing_ok=True)  # until the end the run is not published (interrupted: not at all)
    written = []
    with files.staging() as stage:
        for table, frame in frames.items():
            if table != RUNS:
                stage.write(plan_file(lake_root, table, run_id), lambda tmp, f=frame: f.write_parquet(
                    tmp, **PARQUET_OPTIONS))
        written = stage.commit()
    return [*written, files.write_parquet(commit, frames[RUNS], **PARQUET_OPTIONS)]


def plan_files(lake_root: Path | str, table: str) -> list[Path]:
    """The files of `table` of the committed runs (those with a `plan_runs` file), sorted by run id."""
    root = Path(lake_root) / PLANS
    runs = {p.name for p in (root / RUNS).glob("run=*.parquet")}
    return sorted(p for p in (root / table).glob("run=*.parquet") if p.name in runs)
