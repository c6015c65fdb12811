"""A public trace replayed as request logs in the raw layout (`inferledger import-trace`;
docs/trace-adapter.md, "As request logs").

The Azure LLM inference trace 2023 (CSV) or the Mooncake FAST'25 trace (JSON Lines) goes through
its adapter (`transforms.ingest.traces`) onto a chosen day and node, and is written as the OTel
GenAI JSON Lines a log shipper writes (docs/raw-formats.md, "Request logs"):
`<raw>/<completion day>/<site>/requests/trace-<kind>-<trace names>_<node>.jsonl`. Request logs
are partitioned by completion day (docs/attribution.md, "Days a request touches"): a request in
flight at the day's midnight is written into the next day's file.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path

import polars as pl

from lake.files import staging
from lake.json_lines import extract_json_fields
from lake.readers import UnreadableFile, scan_csv_text, scan_text_lines
from transforms.ingest.requests import OTEL_NAMES
from transforms.ingest.traces import (
    MOONCAKE_KEYS, ThroughputModel, adapt_azure_trace, adapt_mooncake_trace,
)
from transforms.inventory import Inventory

KINDS = ("azure", "mooncake")
AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
RAW_FIX = "free space on that disk, then run the same command again (add --force: the files are written whole or not)"


class TraceError(ValueError):
    """A trace that cannot be replayed as it is: the message names the file, the row and the fix."""


@dataclass(frozen=True)
class Replay:
    """Where and when a trace is replayed. `start`: the UTC time of day of its first arrival;
    None keeps the Azure trace's own time of day (its date becomes `day`) and starts Mooncake's
    offsets at 00:00. `id_prefix` None: `<kind>-<day YYYYMMDD>-<node>`."""

    kind: str
    day: date
    node_id: str
    model: str
    tier: str
    tenant_id: str
    start: time | None = None
    id_prefix: str | None = None
    throughput: ThroughputModel = ThroughputModel()

    @property
    def prefix(self) -> str:
        return self.id_prefix or f"{self.kind}-{self.day:%Y%m%d}-{self.node_id}"

    def begin(self) -> datetime:
        return datetime.combine(self.day, self.start or time(0), tzinfo=UTC)


@dataclass(frozen=True)
class WrittenLog:
    """One request log written: its path, requests, first arrival and last completion (UTC)."""

    path: Path
    day: date
    requests: int
    first_arrival: datetime
    last_completion: datetime


def _common_root(files: list[Path]) -> Path:
    parents = {f.resolve().parent for f in files}
    return parents.pop() if len(parents) == 1 else Path("/")


def _trace_frame(replay: Replay, files: list[Path], inventory: Inventory) -> pl.LazyFrame:
    """The adapter's parsed REQUESTS frame of the trace files, placed on the replay's day."""
    for f in files:
        if not f.is_file():
            raise TraceError(f"{f}: no such trace file")
    root = _common_root(files)
    common = {"node_id": replay.node_id, "model": replay.model, "tier": replay.tier, "tenant_id": replay.tenant_id,
              "throughput": replay.throughput, "inventory": inventory, "id_prefix": replay.prefix}
    if replay.kind == "mooncake":
        fields = extract_json_fields(scan_text_lines(files, root), MOONCAKE_KEYS)
        return adapt_mooncake_trace(fields, start=replay.begin(), **common)
    for f in files:
        try:
            header = pl.scan_csv(f, infer_schema=False, n_rows=0).collect_schema().names()
        except (pl.exceptions.PolarsError, OSError) as e:
            raise TraceError(f"{f}: cannot be read as CSV ({str(e).strip().splitlines()[0][:160]}); give the "
                             "trace file as published") from None
        missing = [c for c in AZURE_COLUMNS if c not in header]
        if missing:
            raise TraceError(f"{f}: not an Azure LLM inference trace CSV: no column {', '.join(missing)} (its "
                             f"header: {', '.join(header)[:200]}); give AzureLLMInferenceTrace_code.csv or _conv.csv "
                             "as published")
    return adapt_azure_trace(scan_csv_text(files, root), start=None, **common)


def _refuse_bad_rows(parsed: pl.DataFrame, root: Path) -> None:
    bad = parsed.filter(pl.col("_reason").is_not_null())
    if bad.height == 0:
        return
    shown = [f"{root / r['_source_file']} row {r['_source_row']}: {r['_reason']}: {r['_detail']}"
             for r in bad.head(5).iter_rows(named=True)]
    raise TraceError(f"{bad.height:,} trace row(s) cannot be replayed (nothing written):\n  " + "\n  ".join(shown)
                     + ("\n  ..." if bad.height > 5 else "") + "\nfix or remove those rows of the trace file")


def _placed(parsed: pl.DataFrame, replay: Replay) -> pl.DataFrame:
    """Azure without `start` keeps its time of day on the replay's day (a shift by whole days);
    with `start`, its first arrival is at `start` (gaps kept). Mooncake is placed by its adapter."""
    if replay.kind == "mooncake" or parsed.height == 0:
        return parsed
    first = parsed["arrived_at"].min()
    begin = replay.begin() if replay.start is not None else datetime.combine(replay.day, first.time(), tzinfo=UTC)
    shift = begin - first
    return parsed.with_columns(pl.col("arrived_at") + shift, pl.col("completed_at") + shift)


def replayed_requests(replay: Replay, files: list[Path], inventory: Inventory) -> pl.DataFrame:
    """The trace's requests as canonical REQUESTS rows placed on the replay's day and node (site
    and pool from the inventory); raises TraceError naming the first bad rows when any row of the
    trace cannot be replayed (nothing is left out silently)."""
    if replay.kind not in KINDS:
        raise TraceError(f"unknown trace kind {replay.kind!r}: one of {', '.join(KINDS)}")
    files = [Path(f) for f in files]
    try:
        parsed = _trace_frame(replay, files, inventory).collect()
    except (pl.exceptions.PolarsError, UnreadableFile) as e:
        raise TraceError(f"{', '.join(map(str, files))}: cannot be read as a {replay.kind} trace "
                         f"({str(e).strip().splitlines()[0][:160]}); give the trace file as published") from None
    _refuse_bad_rows(parsed, _common_root(files))
    return _placed(parsed, replay).sort("arrived_at", "request_id")


def otel_lines(requests: pl.DataFrame) -> pl.Series:
    """One OTel GenAI JSON line per canonical request (docs/raw-formats.md): `time` RFC 3339 UTC
    to the microsecond, `gen_ai.latency.e2e` the exact microseconds from arrival to completion (the
    ingest reads back the same `completed_at`), the other latencies as stored (shortest exact
    decimal). `http.response.body.size` is left out when unknown; `error.type` null: ok."""
    e2e_us = (pl.col("completed_at") - pl.col("arrived_at")).dt.total_microseconds()
    fields = [
        pl.col("arrived_at").dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").alias("time"),
        # The ingest's own key for each column (traces carry no response size: the key is left out).
        *(pl.col(c).alias(key) for c, key in OTEL_NAMES.items() if c != "response_bytes"),
        (e2e_us / 1_000_000).alias("gen_ai.latency.e2e"),
        pl.lit(None, pl.String).alias("error.type"),
    ]
    return requests.select(pl.struct(fields).struct.json_encode().alias("line")).to_series()


def log_path(raw: Path, day: date, site_id: str, replay: Replay, files: list[Path]) -> Path:
    names = "-".join(Path(f).name.split(".")[0].removeprefix("AzureLLMInferenceTrace_").removesuffix("_trace")
                     for f in sorted(files, key=lambda f: Path(f).name))
    return Path(raw) / day.isoformat() / site_id / "requests" / f"trace-{replay.kind}-{names}_{replay.node_id}.jsonl"


def write_request_logs(requests: pl.DataFrame, raw: Path, replay: Replay, files: list[Path], *,
                       force: bool = False) -> list[WrittenLog]:
    """Write `requests` (canonical rows of one site) as request logs, one file per completion day;
    an existing log is refused (FileExistsError naming it) unless `force`. Every file is written
    whole before any replaces its target."""
    if requests.height == 0:
        return []
    site_id = requests["site_id"][0]
    by_day = requests.with_columns(pl.col("completed_at").dt.date().alias("_day")).partition_by(
        "_day", maintain_order=True, as_dict=True)
    plans = {log_path(raw, key[0], site_id, replay, files): (key[0], rows) for key, rows in sorted(by_day.items())}
    existing = [p for p in plans if p.exists()]
    if existing and not force:
        raise FileExistsError(f"{existing[0]}: a request log of this name exists; add --force to replace it"
                              + (f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""))
    written = []
    with staging(RAW_FIX) as stage:
        for path, (day, rows) in plans.items():
            lines = otel_lines(rows.drop("_day")).to_frame()
            stage.write(path, lambda tmp, lines=lines: lines.write_csv(tmp, include_header=False,
                                                                       quote_style="never"))
            written.append(WrittenLog(path, day, rows.height, rows["arrived_at"].min(), rows["completed_at"].max()))
        stage.commit(replace=True)
    return written
