"""`inferledger publish` (and `--list`, `--rollback`) and `inferledger report`."""

from rich.markup import escape

from pipelines.cli.output import console
from pipelines.cli.runs import run_publish
from settings import Settings
from warehouse.connection import DuckDBLimits
from warehouse.publish import PublishError, complete_versions, current_version, rollback
from warehouse.report import ReportError, write_report


def cmd_report(args, settings: Settings) -> int:
    out = settings.report or settings.warehouse.with_name("report.html")
    try:
        res = write_report(settings.warehouse, out, args.date, args.days, cache_dir=settings.cache_dir,
                           limits=DuckDBLimits(settings.duckdb_memory_limit, settings.duckdb_temp))
    except (ReportError, FileNotFoundError) as e:
        console(stderr=True).print(f"[red]error:[/red] {e}")
        return 1
    window = f"{res.first_day} .. {res.day}" if res.first_day != res.day else f"{res.day}"
    console().print(f"report of {window}: [bold]{res.path.resolve()}[/bold]  ({res.charts} charts, "
                    f"{res.bytes / 1e6:.1f} MB, {res.seconds:.1f} s; opens offline in any browser)")
    return 0


def cmd_publish(args, settings: Settings) -> int:
    out = console()
    path = settings.warehouse
    if args.list:
        current = current_version(path)
        for v in complete_versions(path):
            out.print(f"{v}{'  (published)' if v == current else ''}")
        return 0
    if args.rollback:
        try:
            done = rollback(path, args.rollback)
        except PublishError as e:
            console(stderr=True).print(f"[red]error:[/red] {escape(str(e))}", soft_wrap=True)
            return 1
        if done.warning:
            console(stderr=True).print(f"[yellow]warning:[/yellow] {escape(done.warning)}", soft_wrap=True)
        out.print(f"{path.resolve()} is version {args.rollback} again")
        return 0
    meta = run_publish(settings, out=out)
    out.print(f"published version {meta['version']}: {meta['days']} day(s) {meta['first_day']} .. {meta['last_day']}, "
              f"{meta['dagster/row_count']:,} requests, {meta['seconds']:.1f} s -> {path.resolve()}"
              + (f" and {meta['published_to']}" if meta.get("published_to") else ""), markup=False)
    return 0
