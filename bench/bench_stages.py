"""CPU seconds of the nightly job's later stages on a kept lake, each over the energy-only Polars
reference on the same lake in the same process (bench/README.md, "Why the marts, attribution and
publish grew"):

    PYTHONPATH=. .venv/bin/python bench/bench_stages.py --raw RAW --lake LAKE --warehouse WH/inferledger.duckdb
        [--date 2026-10-31] [--stages ref,attr,gx,marts,publish,report] [--repeat 1] [--cache-dir DIR]

The lake is one `inferledger run --date D` of the raw day (bench_e2e.py keeps only the raw day):
`attr` attributes the day again (`attribute_partition`, same outputs), `gx` runs the facts' suite
(`validate_partition`), `marts` builds the day's marts (`build_day_marts`), `publish` publishes a
version (keeping one), `report` writes the morning report of the published warehouse (`write_report`,
after `publish` in the same process as `inferledger run` does: the publish's check outcomes are
reused; the Vega bundle kept in `--cache-dir`), `ref` is `references.polars_energy`. CPU seconds
(`time.process_time`) count every thread of the process (Polars', DuckDB's), so a loaded machine
inflates them far less than wall seconds; interleave the code before and after (ABBA) and compare ratios.
"""

import argparse
import time
from datetime import date
from pathlib import Path

from lake.inventory import load_inventory
from lake.store import Lake
from pipelines.attribution import attribute_partition
from pipelines.suites import validate_partition
from warehouse.marts import build_day_marts
from warehouse.publish import publish
from warehouse.report import write_report

from references import polars_energy  # bench/, the script's own folder


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--raw", type=Path, required=True)
    ap.add_argument("--lake", type=Path, required=True)
    ap.add_argument("--warehouse", type=Path, required=True)
    ap.add_argument("--date", type=date.fromisoformat, default=date(2026, 10, 31))
    ap.add_argument("--stages", default="ref,attr,gx,marts,publish")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--cache-dir", type=Path, default=None, help="where the report keeps its Vega bundle")
    args = ap.parse_args()
    day, lake = args.date, Lake(args.lake)
    inventory = load_inventory(args.raw / "inventory.yaml")
    def reference() -> None:
        out = lake.scratch()
        try:
            polars_energy(lake.day_files("requests", day), lake.day_files("power_readings", day), day, out)
        finally:
            out.unlink(missing_ok=True)

    stages = {
        "ref": reference,
        "attr": lambda: attribute_partition(day, lake, inventory),
        "gx": lambda: validate_partition(lake.root, "request_costs", day, inventory),
        "marts": lambda: build_day_marts(lake, day, inventory),
        "publish": lambda: publish(lake.root, inventory, args.warehouse, keep=1),
        "report": lambda: write_report(args.warehouse, args.warehouse.parent / "report.html", cache_dir=args.cache_dir),
    }
    cpu: dict[str, float] = {}
    for _ in range(args.repeat):
        for name in args.stages.split(","):
            wall, started = time.perf_counter(), time.process_time()
            stages[name]()
            cpu[name] = time.process_time() - started
            print(f"{name:8s} wall {time.perf_counter() - wall:7.2f} s  cpu {cpu[name]:7.2f} s", flush=True)
        if cpu.get("ref"):
            print("over the reference: " + ", ".join(f"{k} {v / cpu['ref']:.2f}" for k, v in cpu.items() if k != "ref"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
