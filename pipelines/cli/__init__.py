"""`inferledger`: the command line.

    inferledger simulate --date D [--out DIR] [--requests N] [--seed S]
    inferledger ingest   --date D [--raw DIR] [--lake DIR] [--inventory FILE]
    inferledger attribute --date D [--raw DIR] [--lake DIR]
    inferledger run      --date D [--raw DIR] [--lake DIR] [--warehouse FILE] [--no-publish] [--parallel N]
    inferledger backfill --from D1 --to D2 [--parallel N] [--restart]
    inferledger check-data [--date D] [--lake DIR] [--warehouse FILE] [--real DIR] [--json FILE]
    inferledger publish  [--lake DIR] [--warehouse FILE] [--keep N] | --list | --rollback VERSION
    inferledger sql      [-c SQL | FILE.sql] [--warehouse FILE] [--out FILE.csv|.parquet [--force]] [--timeout S]
    inferledger demo     [--date D] [--requests N] | --real [--samples DIR] [--real-data DIR]
    inferledger import-trace azure|mooncake FILE... --node N --date D [--start HH:MM] [--model M --tier T
                         --tenant X --raw DIR --inventory FILE --force]
    inferledger report   [--date D] [--days N] [--out FILE.html] [--warehouse FILE]
    inferledger import-profile mlenergy|splitwise FILE [--out CSV] [--raw DIR]
    inferledger plan     --date D | --window D1..D2 [--horizon day|fleet] [--options FILE] [--what-if "..."]
                         [--no-publish]
    inferledger plan     --train D1..D2 --test D3..D4 [--options FILE] [--no-publish]

The settings are resolved once, here (settings/): the environment's, else the declared defaults,
then the command's flags. One module per group of commands: `pipeline` (simulate, ingest,
attribute, demo, run), `backfill`, `quality` (check-data), `publishing` (publish, report), `sql`,
`traces` (import-trace), `planning` (plan);
`parser` declares the flags, `runs` runs the Dagster jobs, `output` prints.

`ingest` materializes the real Dagster ingest assets for one day (every site of the
inventory, then the fleet-wide asset register and market prices) in-process, without the UI, and exits
non-zero naming the failed step. Runs are recorded in the instance of $DAGSTER_HOME when
it is set (the Makefile sets it; created with the project's settings when missing, its storage
paths absolute: pipelines/instance.py), so `dg dev` shows them from any working directory.
"""

import os
import sys
from importlib import import_module

from lake.files import NoSpaceLeft, is_no_space
from pipelines.cli.parser import DEFAULT_PARALLEL, DEMO_DAY, build_parser
from pipelines.instance import InstanceError
from settings import SETTINGS, SettingError, resolve

__all__ = ["DEFAULT_PARALLEL", "DEMO_DAY", "main"]


def _say(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    try:
        settings = resolve(os.environ)
    except SettingError as e:
        _say(f"{e} (docs/operations.md, \"Settings\")")
        return 2
    args = build_parser(settings).parse_args(argv)
    names = {s.name for s in SETTINGS}
    settings = settings.override(**{k: v for k, v in vars(args).items() if k in names})
    # Only the command's module is imported: `inferledger sql` and `--help` load neither Dagster
    # nor GX (start-up time).
    module, function = args.run.split(":")
    run = getattr(import_module(f"pipelines.cli.{module}"), function)
    try:
        return run(args, settings)
    except InstanceError as e:  # $DAGSTER_HOME unusable (pipelines/instance.py)
        _say(str(e))
        return 2
    except Exception as e:  # a full disk outside a pipeline step (simulated raw files, a backfill's state)
        if not is_no_space(e):
            raise
        where = getattr(e, "filename", None) or next(
            (f"under {v}" for v in (getattr(args, a, None) for a in ("out", "raw", "lake")) if v), "a file")
        _say(str(e) if isinstance(e, NoSpaceLeft) else
             f"no space left on device writing {where}: free space on that disk, then run the same command again")
        return 1
