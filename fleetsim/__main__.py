"""python -m fleetsim --out DIR --date YYYY-MM-DD [--days N] [--requests N] [--seed S] [--compress zstd|gzip]"""

import argparse
import sys
import time
from datetime import date, timedelta
from pathlib import Path

from fleetsim.simulate import FAMILIES, simulate
from fleetsim.spec import FleetSpec


def _day(s: str) -> date:
    try:
        return date.fromisoformat(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a date; write YYYY-MM-DD") from None


def _count(s: str) -> int:
    n = int(float(s.replace("_", "")))  # 1e6 and 1_000_000 both work
    if n < 1:
        raise argparse.ArgumentTypeError("--requests must be at least 1")
    return n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fleetsim", description="Write raw exports of the demo inference fleet.")
    p.add_argument("--out", required=True, type=Path, help="raw directory to write (created)")
    p.add_argument("--date", required=True, type=_day, help="first UTC day, YYYY-MM-DD")
    p.add_argument("--days", type=int, default=1, help="consecutive days to simulate (default 1)")
    p.add_argument("--requests", type=_count, default=50_000, help="requests per day (default 50000; up to 1e8)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--no-defects", action="store_true", help="write clean data, no injected defects")
    inv = p.add_mutually_exclusive_group()
    inv.add_argument("--invoices", dest="invoices", action="store_true", default=None,
                     help="write the month's invoices in every simulated day's folder")
    inv.add_argument("--no-invoices", dest="invoices", action="store_false",
                     help="never write invoices (default: only on the last day of a month)")
    p.add_argument("--compress", choices=("zstd", "gzip"), default=None,
                   help="write the request logs compressed (<node>.jsonl.zst or .jsonl.gz; default plain)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: 1 below 1M requests, else 2)")
    args = p.parse_args(argv)

    spec = FleetSpec(expansion_day=args.date)  # one register and inventory across the days
    show = args.requests >= 1_000_000 or sys.stderr.isatty()
    started = time.perf_counter()
    totals = {"files": 0, "records": 0, "bytes": 0}
    for d in range(args.days):
        day = args.date + timedelta(days=d)
        t0 = time.perf_counter()

        def progress(done: int, total: int, lines: int, day=day, t0=t0) -> None:
            if show:
                print(f"\r{day}: node {done}/{total}, {lines:,} request lines, {time.perf_counter() - t0:.0f} s",
                      end="" if done < total else "\n", file=sys.stderr, flush=True)

        s = simulate(args.out, day, requests=args.requests, seed=args.seed, spec=spec,
                     defects=not args.no_defects, invoices=args.invoices, workers=args.workers, progress=progress,
                     compress=args.compress)
        print(s.describe())
        totals["files"] += sum(s.files.values())
        totals["records"] += sum(s.records.values())
        totals["bytes"] += s.bytes
    if args.days > 1:
        print(f"{args.days} days: {totals['files']:,} files, {totals['records']:,} records, "
              f"{totals['bytes'] / 1e6:,.1f} MB in {time.perf_counter() - started:.1f} s")
    print(f"raw directory: {args.out.resolve()}  (families: {', '.join(FAMILIES)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
