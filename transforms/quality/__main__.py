"""`python -m transforms.quality LAKE DAY [--inventory FILE] [--suite S ...] [--json FILE] [--verbose]`

Runs the data-quality suites on one day of the lake, prints the report and exits 1 when any
error-severity expectation fails (2 on a usage error), 0 otherwise. Warnings are printed and
do not change the exit code.
"""

import argparse
import json
import os
import sys
from datetime import date
from pathlib import Path

from transforms.inventory import InventoryError, load_inventory
from transforms.quality.lake import ALL_SUITES, run_suites
from transforms.quality.runner import format_report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m transforms.quality", description=__doc__.split("\n\n")[1])
    p.add_argument("lake", type=Path, help="lake root, e.g. data/lake")
    p.add_argument("day", type=date.fromisoformat, help="UTC day, YYYY-MM-DD")
    p.add_argument("--inventory", type=Path, default=None,
                   help="inventory YAML (default $INFERLEDGER_INVENTORY, else <lake>/../raw/inventory.yaml)")
    p.add_argument("--suite", action="append", choices=ALL_SUITES, help="run only these suites (repeatable)")
    p.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    p.add_argument("--verbose", action="store_true", help="list passing expectations too")
    args = p.parse_args(argv)

    inv_path = args.inventory or Path(os.environ.get("INFERLEDGER_INVENTORY") or args.lake.parent / "raw" / "inventory.yaml")
    if not args.lake.is_dir():
        print(f"error: no lake at {args.lake}; run `inferledger demo` or pass the lake root", file=sys.stderr)
        return 2
    try:
        inventory = load_inventory(inv_path)
    except InventoryError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    results = run_suites(args.lake, args.day, inventory, args.suite or ALL_SUITES)
    print(format_report(results, verbose=args.verbose))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([r.as_dict() for r in results], indent=1, default=str))
    return 1 if any(r.errors for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
