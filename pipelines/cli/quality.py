"""`inferledger check-data`: every quality suite on a lake day (and on real samples when their
folder is given), and the warehouse checks (pipelines/checkdata.py)."""

from pathlib import Path

from lake.inventory import inventory_path, load_inventory
from lake.store import Lake
from pipelines.checkdata import check_data, print_report, write_json
from pipelines.cli.output import console
from settings import Settings
from transforms.inventory import InventoryError
from warehouse.connection import DuckDBLimits
from warehouse.marts import attributed_days


def cmd_check_data(args, settings: Settings) -> int:
    out = console()
    try:
        inventory = load_inventory(inventory_path(settings.raw, settings.inventory))
        real = None if args.no_real or not args.real else Path(args.real)
        real_inventory = load_inventory(args.real_inventory) if real and args.real_inventory else None
    except InventoryError as e:
        out.print(f"[red]error:[/red] {e}")
        return 2
    day = args.date or (attributed_days(Lake(settings.lake)) or [None])[-1]
    if day is None:
        out.print(f"[red]error:[/red] {settings.lake}: no attributed day to check; run `make demo` or pass --date")
        return 2
    warehouse = settings.warehouse if settings.warehouse.exists() else None
    if warehouse is None:
        out.print(f"[yellow]no warehouse at {settings.warehouse}: its checks are skipped[/yellow]")
    out.rule(f"check-data: lake {settings.lake} day {day}" + (f", real samples {real}" if real else ""))
    report = check_data(settings.lake, day, inventory, warehouse, real_root=real, real_inventory=real_inventory,
                        max_age_days=settings.max_age_days, batch_rows=settings.quality_batch_rows,
                        limits=DuckDBLimits(settings.duckdb_memory_limit, settings.duckdb_temp))
    print_report(report, out)
    out.print(f"results: {write_json(report, Path(args.json)).resolve()}")
    return 1 if report.errors else 0
