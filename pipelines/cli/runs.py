"""The commands' runs of the nightly graph (pipelines.runner): the code location built from the
command's settings, a progress bar, and what failed said plainly (exit 1) when a run fails."""

from datetime import date

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from pipelines.cli.output import StepResult, console
from pipelines.location import code_location
from pipelines.runner import (RunFailed, RunOutcome, Step, day_steps, expand_steps, instance, prepare, run_steps,
                              where_runs_are)
from settings import Settings


def execute_steps(steps: list[Step], settings: Settings, *, out: Console, title: str, tags: dict | None = None,
                  inst=None, parallel: int = 1) -> list[RunOutcome]:
    """Run `steps` (pipelines.runner) with a progress bar; on failure print what failed (steps,
    checks with counts and examples) and raise SystemExit(1). `parallel` > 1 runs the leading
    ingest steps that many at a time, in worker processes."""
    defs = code_location(settings)
    inst = inst or instance()
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=out, transient=False) as progress:
        task = progress.add_task(title, total=len(expand_steps(steps, settings, parallel)))
        running: list[str] = []

        def on_step(step, outcome):
            job, partition, assets = step
            name = f"{job}" + (f" {partition}" if partition else "") + (f" {','.join(assets)}" if assets else "")
            if outcome is None:
                running.append(name)
            else:
                if name in running:
                    running.remove(name)
                progress.advance(task)
            progress.update(task, description=f"{title}: {running[0] if len(running) == 1 else f'{len(running)} runs'}"
                            if running else title)

        try:
            return run_steps(defs, steps, inst, on_step=on_step, tags=tags, parallel=parallel, settings=settings)
        except RunFailed as e:
            progress.stop()
            out.print(f"[red]failed:[/red] {escape(str(e))}", soft_wrap=True)
            out.print(where_runs_are(), markup=False, soft_wrap=True)
            raise SystemExit(1) from None


def prepare_or_exit(settings: Settings, day: date | None, out: Console, inst, *, delivered: bool = True) -> list[str]:
    """`pipelines.runner.prepare`; an invalid inventory, a day before the first partition day or
    a missing day is one line and exit 2."""
    try:
        return prepare(settings, day, inst, delivered=delivered)
    except (RunFailed, ValueError) as e:
        out.print(f"[red]error:[/red] {escape(str(e))}", soft_wrap=True)
        raise SystemExit(2) from None


def check_rows(outcomes: list[RunOutcome]) -> list[dict]:
    """The asset checks of runs, one row each as the report's `expectations` reads them (suite:
    the asset and partition)."""
    return [{"suite": f"{asset} [{o.partition}]" if o.partition else asset, "name": name, "severity": severity,
             "success": passed, "unexpected_count": o.check_counts.get((asset, name))}
            for o in outcomes for asset, name, passed, severity in o.checks]


def run_ingest(settings: Settings, day: date, *, out: Console | None = None,
               checks: list[dict] | None = None) -> list[StepResult]:
    """Run the ingest of `day` (every site, the asset register and market prices); raises SystemExit naming
    the failed step or check. The runs' asset checks are added to `checks` (`check_rows`)."""
    out = out or console(stderr=True)
    inst = instance()
    sites = prepare_or_exit(settings, day, out, inst)
    outcomes = execute_steps(day_steps(day, sites, attribute=False), settings, out=out, title=f"ingest {day}",
                             tags={"inferledger/command": "ingest"}, inst=inst)
    if checks is not None:
        checks += check_rows(outcomes)
    return [StepResult(asset, o.partition, meta) for o in outcomes for asset, meta in o.materializations.items()]


def run_attribution(settings: Settings, day: date, *, out: Console | None = None,
                    checks: list[dict] | None = None) -> dict:
    """Attribute `day` and build its marts (conservation and quality checks included); returns
    the request_costs metadata. Raises SystemExit(1) naming the failed step or check. The run's
    asset checks are added to `checks` (`check_rows`)."""
    out = out or console(stderr=True)
    inst = instance()
    prepare_or_exit(settings, day, out, inst, delivered=False)
    (outcome,) = execute_steps([("attribute_day", day.isoformat(), None)], settings, out=out, title=f"attribute {day}",
                               tags={"inferledger/command": "attribute"}, inst=inst)
    if checks is not None:
        checks += check_rows([outcome])
    return outcome.materializations["request_costs"]


def run_publish(settings: Settings, *, out: Console | None = None) -> dict:
    """Publish every attributed day of the lake (the `warehouse` asset and its checks, then the
    report); returns the warehouse's metadata. Raises SystemExit(1) naming the failure."""
    out = out or console(stderr=True)
    (outcome,) = execute_steps([("publish_warehouse", None, None)], settings, out=out, title="publish",
                               tags={"inferledger/command": "publish"})
    meta = dict(outcome.materializations["warehouse"])
    if "report" in outcome.materializations:  # the publish job also writes the morning report
        meta["report_path"] = outcome.materializations["report"]["path"]
    return meta
