"""Digests of one simulated day's marts and facts: the proof that a change which must not move
a number (a restructuring, a faster path) moved no bit.

    .venv/bin/python bench/marts_digest.py                    # the demo day (`make demo`'s inputs)
    .venv/bin/python bench/marts_digest.py --bench            # the 1 M-request day of bench_e2e.py
    .venv/bin/python bench/marts_digest.py --requests 200000 --seed 3 --date 2026-11-24 --json out.json

The day is simulated with `fleetsim.simulate` (invoices included, as `make demo` and the
end-to-end benchmark do), then `inferledger run --date D --no-publish` runs the nightly graph on
it (every check included) into a fresh lake under `--work` (default: a temporary folder,
removed). Printed: the SHA-256 of every mart's Parquet file of the day
(`<lake>/marts/<table>/date=D/`), of the day's request facts, and one digest over all of them.
Two runs of the same code print the same digests; compare before and after a change.
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import fleetsim

REPO = Path(__file__).resolve().parent.parent
DEMO = {"requests": 800_000, "seed": 7, "date": "2026-11-24"}  # pipelines.cli's demo defaults
BENCH = {"requests": 1_000_000, "seed": 7, "date": "2026-10-31"}  # bench_e2e.py's day at 1 M


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def day_digests(lake: Path, day: date) -> dict[str, str]:
    """`<table>` -> SHA-256 of each Parquet file of the day's marts, and `request_costs`."""
    out = {}
    for f in sorted((lake / "marts").glob(f"*/date={day.isoformat()}/*.parquet")):
        out[f.relative_to(lake / "marts").parts[0] + ("" if f.name == "part-0.parquet" else f"/{f.name}")] = sha256(f)
    for f in sorted((lake / "request_costs" / f"date={day.isoformat()}").glob("*.parquet")):
        out[f"request_costs/{f.name}"] = sha256(f)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bench", action="store_true", help=f"the benchmark day: {BENCH}")
    p.add_argument("--requests", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--date")
    p.add_argument("--work", type=Path, help="keep the raw day and lake here (default: a temporary folder)")
    p.add_argument("--json", type=Path, help="write the digests here too")
    args = p.parse_args()
    preset = BENCH if args.bench else DEMO
    n = args.requests or preset["requests"]
    seed = args.seed if args.seed is not None else preset["seed"]
    day = date.fromisoformat(args.date or preset["date"])

    with tempfile.TemporaryDirectory(prefix="marts-digest-") as tmp:
        work = args.work or Path(tmp)
        raw, lake = work / "raw", work / "lake"
        started = time.perf_counter()
        if not (raw / day.isoformat()).is_dir():
            fleetsim.simulate(raw, day, requests=n, seed=seed, invoices=True)
        simulated = time.perf_counter() - started
        env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}  # an ephemeral Dagster instance
        run = subprocess.run([str(Path(sys.executable).parent / "inferledger"), "run", "--date", day.isoformat(),
                              "--raw", str(raw), "--lake", str(lake), "--warehouse", str(work / "wh.duckdb"),
                              "--no-publish"], capture_output=True, text=True, env=env, cwd=REPO)
        if run.returncode != 0:
            print(run.stdout[-4000:], run.stderr[-4000:], sep="\n", file=sys.stderr)
            print(f"inferledger run failed (exit {run.returncode})", file=sys.stderr)
            return 1
        digests = day_digests(lake, day)
    overall = hashlib.sha256("".join(f"{k}\0{v}\n" for k, v in digests.items()).encode()).hexdigest()
    print(f"{n:,} requests, seed {seed}, {day}: simulated in {simulated:.1f} s, run in "
          f"{time.perf_counter() - started - simulated:.1f} s")
    for name, digest in digests.items():
        print(f"  {digest[:16]}  {name}")
    print(f"all: {overall}")
    if args.json:
        args.json.write_text(json.dumps({"requests": n, "seed": seed, "date": day.isoformat(), "files": digests,
                                         "all": overall}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
