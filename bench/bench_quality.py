"""Time the requests suite on N rows: `python bench/bench_quality.py [LAKE] [DAY] [N ...]`.

Builds an N-row requests partition by repeating the lake day's requests (request ids made
unique), then times the conversion to pandas and the GX validation of the whole suite, in
one batch, as the nightly run validates one partition.
"""

import sys
import time
from datetime import date
from pathlib import Path

import polars as pl

from lake.inventory import inventory_path, load_inventory
from lake.store import Lake
from transforms.quality.runner import validate_frame
from transforms.quality.suites import SuiteContext


def main(argv: list[str]) -> None:
    lake = Lake(Path(argv[0]) if argv else Path("data/lake"))
    day = date.fromisoformat(argv[1]) if len(argv) > 1 else date(2026, 11, 24)
    sizes = [int(n) for n in argv[2:]] or [1_000_000]
    inventory = load_inventory(inventory_path(lake.root.parent / "raw"))
    base = pl.read_parquet(lake.day_files("requests", day), hive_partitioning=False)
    ctx = SuiteContext(inventory=inventory, day=day, previous_rows=max(sizes))
    validate_frame("requests", base.head(1000), ctx)  # warm-up: imports, GX context
    for n in sizes:
        k = n // base.height + 1
        frame = pl.concat([base.with_columns(pl.col("request_id") + f"-{i}") for i in range(k)]).head(n)
        t = time.perf_counter()
        res = validate_frame("requests", frame, ctx)
        total = time.perf_counter() - t
        print(f"requests suite, {n:,} rows, {len(res.results)} expectations: {total:.2f} s "
              f"({n / total / 1e6:.2f} M rows/s), {len(res.errors)} error(s), {len(res.warnings)} warning(s)")


if __name__ == "__main__":
    main(sys.argv[1:])
