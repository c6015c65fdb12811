"""`inferledger import-trace azure|mooncake FILE... --node N --date D`: a public trace replayed as
request logs in the raw layout (lake/trace_logs.py; docs/trace-adapter.md, "As request logs")."""

import sys
from datetime import time
from pathlib import Path

from lake.inventory import inventory_path, load_inventory
from lake.trace_logs import Replay, TraceError, replayed_requests, write_request_logs
from settings import Settings
from transforms.ingest.traces import ThroughputModel
from transforms.inventory import InventoryError


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def _start(text: str | None) -> time | None:
    if text is None:
        return None
    try:
        return time.fromisoformat(text)
    except ValueError:
        raise TraceError(f"--start {text!r} is not a time of day; write HH:MM or HH:MM:SS (UTC)") from None


def cmd_import_trace(args, settings: Settings) -> int:
    inventory_file = inventory_path(settings.raw, settings.inventory)
    try:
        throughput = ThroughputModel(args.prefill_tokens_per_s, args.decode_tokens_per_s)
        replay = Replay(args.kind, args.date, args.node, args.model, args.tier, args.tenant or f"{args.kind}-replay",
                        _start(args.start), args.id_prefix, throughput)
    except ValueError as e:
        return _error(str(e))
    try:
        inventory = load_inventory(inventory_file)
        requests = replayed_requests(replay, [Path(f) for f in args.files], inventory)
        written = write_request_logs(requests, settings.raw, replay, args.files, force=args.force)
    except (TraceError, InventoryError, FileExistsError) as e:
        return _error(str(e))
    except ValueError as e:  # the adapter's placement: a node or tier the inventory does not know
        return _error(f"{e} (inventory {inventory_file})")
    if not written:
        return _error(f"{', '.join(args.files)}: the trace holds no request; nothing written")
    stamp = "%Y-%m-%d %H:%M:%S.%f"
    for w in written:
        print(f"wrote {w.path}: {w.requests:,} requests completed on {w.day}, arrivals from "
              f"{w.first_arrival:{stamp}} UTC, last completion {w.last_completion:{stamp}} UTC")
    later = [w for w in written if w.day != args.date]
    if later:
        print(f"{sum(w.requests for w in later):,} request(s) complete after {args.date}'s midnight: logged on their "
              "completion day, as the pipeline reads them (docs/attribution.md, \"Days a request touches\")")
    days = " and ".join(f"`inferledger ingest --date {w.day}`" for w in written)
    print(f"{sum(w.requests for w in written):,} requests of the {args.kind} trace "
          f"{', '.join(Path(f).name for f in args.files)} on node {args.node} (site {requests['site_id'][0]}, pool "
          f"{requests['pool_id'][0]}), {requests['arrived_at'].min():{stamp}} to "
          f"{requests['completed_at'].max():{stamp}} UTC; then {days}")
    return 0
