"""The commands and their flags. A flag's default is the setting in force (settings/: the
environment, else the declared default); a flag whose `dest` names a setting replaces it for the
command (`main`). Each command names the module and function that run it, imported only then."""

import argparse
from datetime import date

from settings import BY_NAME, Settings

DEMO_DAY = date(2026, 11, 24)
DEMO_REQUESTS = 800_000  # the demo fleet's day: each pool's peak hour at 54-74% of its capacity (fleetsim/spec.py)
# `inferledger run --parallel` default: ingest runs one at a time. Each run's Polars and DuckDB
# already use every core; on the 2-core machine, two at once took the 10 M-request day from
# 88.9 s to 86.6 s for 47 % more peak memory (bench/README.md). More cores, more to gain.
DEFAULT_PARALLEL = 1


def _day(s: str) -> date:
    try:
        return date.fromisoformat(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a date; write YYYY-MM-DD") from None


def _paths(p: argparse.ArgumentParser, s: Settings, *names: str) -> None:
    helps = {"raw": "raw exports", "lake": "Parquet lake", "warehouse": "published DuckDB file",
             "inventory": "inventory YAML"}
    for name in names:
        value = getattr(s, name)
        shown = f"${BY_NAME[name].env}, else {BY_NAME[name].shown or BY_NAME[name].default}".replace("`", "")
        p.add_argument(f"--{name}", default=None if value is None else str(value),
                       help=f"{helps[name]} (default {shown})")


def _command(sub, name: str, run: str, help: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help)
    p.set_defaults(run=run)
    return p


def _step_by_step(sub, s: Settings) -> None:
    p = _command(sub, "simulate", "pipeline:cmd_simulate", "write raw exports of the demo fleet for a day")
    p.add_argument("--date", type=_day, default=DEMO_DAY)
    p.add_argument("--out", default=str(s.raw), help="raw exports folder (default $INFERLEDGER_RAW, else data/raw)")
    p.add_argument("--requests", type=int, default=DEMO_REQUESTS)
    p.add_argument("--seed", type=int, default=7)

    p = _command(sub, "ingest", "pipeline:cmd_ingest", "ingest one day's raw files into the Parquet lake")
    p.add_argument("--date", type=_day, required=True)
    _paths(p, s, "raw", "lake", "inventory")

    p = _command(sub, "attribute", "pipeline:cmd_attribute", "attribute one ingested day's costs to its requests")
    p.add_argument("--date", type=_day, required=True)
    _paths(p, s, "raw", "lake")

    p = _command(sub, "demo", "pipeline:cmd_demo", "simulate the default fleet's day and run the pipeline on it")
    p.add_argument("--date", type=_day, default=DEMO_DAY)
    p.add_argument("--requests", type=int, default=DEMO_REQUESTS)
    p.add_argument("--seed", type=int, default=7)
    _paths(p, s, "raw", "lake", "warehouse")
    p.add_argument("--real", action="store_true",
                   help="instead of the simulated fleet, the day of the real public samples, 2025-06-03 "
                        "(docs/real-data.md), under --real-data (its raw/, lake/ and warehouse/; --date, --requests, "
                        "--seed, --raw, --lake and --warehouse are not used)")
    p.add_argument("--samples", default="tests/data/real",
                   help="with --real: the samples folder (default tests/data/real)")
    p.add_argument("--real-data", dest="real_data", default="data/real",
                   help="with --real: data folder (default data/real)")


def _nightly(sub, s: Settings) -> None:
    p = _command(sub, "run", "pipeline:cmd_run",
                 "the whole nightly graph for one day: ingest, attribute, marts, publish")
    p.add_argument("--date", type=_day, required=True)
    _paths(p, s, "raw", "lake", "warehouse", "inventory")
    p.add_argument("--no-publish", action="store_true", help="stop after the day's marts")
    p.add_argument("--parallel", type=int, default=DEFAULT_PARALLEL,
                   help="ingest runs at once (with N > 1: one run per site and dataset, each in its own "
                        f"process; default {DEFAULT_PARALLEL}); more memory, faster on machines with many cores")

    p = _command(sub, "backfill", "backfill:cmd_backfill", "run a range of days (resumable), then publish once")
    p.add_argument("--from", dest="date_from", type=_day, required=True)
    p.add_argument("--to", dest="date_to", type=_day, required=True)
    p.add_argument("--parallel", type=int, default=1, help="days run at once, each in its own process (default 1)")
    p.add_argument("--restart", action="store_true", help="redo every day, not only those an earlier run left")
    _paths(p, s, "raw", "lake", "warehouse", "inventory")
    p.add_argument("--no-publish", action="store_true")

    p = _command(sub, "check-data", "quality:cmd_check_data",
                 "run every data-quality suite and warehouse check; exit 1 on an error")
    p.add_argument("--date", type=_day, default=None, help="lake day to check (default: the latest attributed day)")
    _paths(p, s, "raw", "lake", "warehouse", "inventory")
    p.add_argument("--real", default=None, metavar="DIR",
                   help="also check the real public samples in DIR (the repository's: tests/data/real)")
    p.add_argument("--real-inventory", default=None,
                   help="inventory placing the FOCUS and trace samples (default: the checked day's)")
    p.add_argument("--no-real", action="store_true", help="skip the real samples, even with --real")
    p.add_argument("--max-age-days", dest="max_age_days", type=int, default=s.max_age_days,
                   help="freshness warning threshold (default $INFERLEDGER_MAX_AGE_DAYS, else 2)")
    p.add_argument("--json", default="data/check-data.json", help="results file (default data/check-data.json)")


def _warehouse(sub, s: Settings) -> None:
    p = _command(sub, "publish", "publishing:cmd_publish",
                 "publish every attributed day as a new version of the warehouse")
    _paths(p, s, "raw", "lake", "warehouse")
    p.add_argument("--keep", dest="keep_versions", type=int, default=s.keep_versions,
                   help="versions kept for rollback (default $INFERLEDGER_KEEP_VERSIONS, else 7)")
    p.add_argument("--list", action="store_true", help="list the kept versions")
    p.add_argument("--rollback", metavar="VERSION", help="publish a kept version again")

    p = _command(sub, "sql", "sql:cmd_sql", "query the published warehouse, read-only")
    p.add_argument("file", nargs="?", help="a .sql file to run")
    p.add_argument("-c", dest="command_sql", metavar="SQL", help="statement(s) to run")
    _paths(p, s, "warehouse")
    p.add_argument("--out", help="write the last result to a new .csv or .parquet file")
    p.add_argument("--force", action="store_true", help="let --out replace an existing file")
    p.add_argument("--export-dir", dest="export_dir", default=str(s.export_dir),
                   help="the only directory COPY ... TO may write into "
                        "(default $INFERLEDGER_EXPORT_DIR, else ./exports)")
    p.add_argument("--timeout", default=None, metavar="SECONDS",
                   help="stop a statement after this long (default $INFERLEDGER_SQL_TIMEOUT_S, else 300)")
    p.add_argument("--lake", default=str(s.lake), help="(--out never writes inside it)")
    p.add_argument("--raw", default=str(s.raw), help="(--out never writes inside it)")
    p.add_argument("--max-rows", type=int, default=50, help="rows printed per result (default 50)")

    p = _command(sub, "import-profile", "profiles:cmd_import_profile",
                 "write a public performance profile (ML.ENERGY v3 JSON, Splitwise CSV) as a canonical profile CSV")
    p.add_argument("format", choices=("mlenergy", "splitwise"))
    p.add_argument("file", help="the ML.ENERGY leaderboard task JSON, or Splitwise's perf_model.csv")
    p.add_argument("--out", default=None, help="canonical CSV to write (default <raw>/profiles/<format>.csv)")
    _paths(p, s, "raw")

    p = _command(sub, "report", "publishing:cmd_report",
                 "write the morning report (one self-contained HTML file) from the warehouse")
    p.add_argument("--date", type=_day, default=None, help="the report day (default: the last published day)")
    p.add_argument("--days", type=int, default=7, help="days the charts cover, ending on --date (default 7)")
    p.add_argument("--out", dest="report", default=None if s.report is None else str(s.report),
                   help="HTML file (default $INFERLEDGER_REPORT, else report.html beside the warehouse)")
    _paths(p, s, "warehouse")


def _planning(sub, s: Settings) -> None:
    p = _command(sub, "plan", "planning:cmd_plan",
                 "least-cost routing and nodes (day) or fleet (fleet) of published days, calibrated on the ledger")
    p.add_argument("--horizon", choices=("day", "fleet"), default="day")
    when = p.add_mutually_exclusive_group(required=True)
    when.add_argument("--date", type=_day, help="one published day")
    when.add_argument("--window", help="published days D1..D2 (inclusive)")
    when.add_argument("--train", help="backtest: plan on the days D1..D2, score on --test")
    p.add_argument("--test", help="backtest: the later days D3..D4 the plan is scored on")
    p.add_argument("--options", default=None, help="plan options YAML (default: the demo fleet's example, "
                   "fleetsim/plan_options.yaml; docs/planning.md, \"Options\")")
    p.add_argument("--what-if", dest="what_if", default=None, help='e.g. "standard -> pool cloud-h100"')
    p.add_argument("--no-publish", dest="no_publish", action="store_true", help="keep the plan in the lake "
                   "without publishing the warehouse again (the next publish carries it)")
    _paths(p, s, "raw", "lake", "warehouse", "inventory")


def _import_trace(sub, s: Settings) -> None:
    p = _command(sub, "import-trace", "traces:cmd_import_trace",
                 "write a public LLM trace (Azure 2023 CSV, Mooncake JSONL) as a node's request logs for a day")
    p.add_argument("kind", choices=["azure", "mooncake"])
    p.add_argument("files", nargs="+", metavar="FILE", help="the trace file(s) (Azure: code and/or conv CSV)")
    p.add_argument("--node", required=True, help="the serving node (the inventory's node id)")
    p.add_argument("--date", type=_day, required=True, help="the day the trace is replayed on (UTC)")
    p.add_argument("--start", default=None, metavar="HH:MM[:SS]",
                   help="UTC time of the first arrival (default: Azure keeps its time of day, Mooncake 00:00)")
    p.add_argument("--model", default="llama-3.1-70b-instruct", help="model (default llama-3.1-70b-instruct)")
    p.add_argument("--tier", default="standard", help="SLA tier (default standard)")
    p.add_argument("--tenant", default=None, help="tenant (default <kind>-replay)")
    p.add_argument("--id-prefix", dest="id_prefix", default=None,
                   help="request id prefix (default <kind>-<YYYYMMDD>-<node>)")
    p.add_argument("--prefill-tokens-per-s", dest="prefill_tokens_per_s", type=float, default=10_000.0)
    p.add_argument("--decode-tokens-per-s", dest="decode_tokens_per_s", type=float, default=40.0)
    p.add_argument("--force", action="store_true", help="replace request logs of the same name")
    _paths(p, s, "raw", "inventory")


def build_parser(settings: Settings) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="inferledger", description="Per-query cost of AI inference.")
    sub = p.add_subparsers(dest="command", required=True)
    _step_by_step(sub, settings)
    _nightly(sub, settings)
    _warehouse(sub, settings)
    _planning(sub, settings)
    _import_trace(sub, settings)
    return p
