"""Ingest of one dataset for one day (and site): raw files -> canonical, quarantine, audit.

Plain Python, no Dagster: the assets in `pipelines.defs.ingest` and the CLI both call
`ingest_partition`. Which raw folders feed which dataset, through which reader and parser,
is the table `SOURCES` below, and nowhere else.
"""

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import polars as pl

from pipelines.lake import FLEET, Lake
from pipelines.readers import scan_csv_text, scan_json_fields, scan_parquet_files, scan_text_lines, text_bytes
from transforms.contracts import CANONICAL, Contract
from transforms.ingest import assets as assets_parsers
from transforms.ingest import bills, power, requests
from transforms.ingest.common import accepted, audit, classify, empty_parsed, quarantined
from transforms.inventory import Inventory

Reader = Callable[[list[Path], Path], pl.LazyFrame]


def _otel_fields(paths: list[Path], root: Path) -> pl.LazyFrame:
    return scan_json_fields(paths, root, list(requests.OTEL_FIELDS))


def _csv_with_literal_nulls(paths: list[Path], root: Path) -> pl.LazyFrame:
    return scan_csv_text(paths, root, null_values=["NULL"])


@dataclass(frozen=True)
class Source:
    """A raw format feeding a canonical dataset: `<raw>/<day>/<site>/<folder>/<pattern>`."""

    dataset: str
    folder: str
    patterns: tuple[str, ...]
    reader: Reader
    parser: Callable[..., pl.LazyFrame]


SOURCES: tuple[Source, ...] = (
    Source("requests", "requests", ("*.jsonl", "*.jsonl.zst", "*.jsonl.gz"), _otel_fields, requests.parse_otel_fields),
    Source("requests", "canonical", ("requests*.csv",), scan_csv_text, requests.parse_canonical_requests),
    Source("requests", "canonical", ("requests*.parquet",), scan_parquet_files, requests.parse_canonical_requests),
    Source("power_readings", "dcgm", ("*.prom",), scan_text_lines, power.parse_dcgm_prometheus),
    Source("power_readings", "ipmi", ("*.txt",), scan_text_lines, power.parse_ipmi_sdr),
    Source("power_readings", "redfish", ("*.jsonl",), scan_text_lines, power.parse_redfish_sensors),
    Source("power_readings", "facility", ("*.csv",), scan_csv_text, power.parse_facility_csv),
    Source("power_readings", "canonical", ("power_readings*.csv",), scan_csv_text, power.parse_canonical_power),
    Source("power_readings", "canonical", ("power_readings*.parquet",), scan_parquet_files, power.parse_canonical_power),
    Source("cost_lines", "focus", ("*.csv",), _csv_with_literal_nulls, bills.parse_focus),
    Source("cost_lines", "electricity", ("*.csv",), scan_csv_text, bills.parse_electricity_invoice),
    Source("cost_lines", "colocation", ("*.csv",), scan_csv_text, bills.parse_colocation_invoice),
    Source("cost_lines", "canonical", ("cost_lines*.csv",), scan_csv_text, bills.parse_canonical_cost_lines),
    Source("cost_lines", "canonical", ("cost_lines*.parquet",), scan_parquet_files, bills.parse_canonical_cost_lines),
    Source("assets", "assets", ("*.csv",), scan_csv_text, assets_parsers.parse_asset_register),
    Source("assets", "canonical", ("assets*.csv",), scan_csv_text, assets_parsers.parse_canonical_assets),
    Source("assets", "canonical", ("assets*.parquet",), scan_parquet_files, assets_parsers.parse_canonical_assets),
)

# The column of each dataset whose UTC date must be the partition's day (bills and the
# register carry their own periods and are partitioned by delivery day). An interval reading
# (facility meters) belongs to the day its interval starts in: the 23:45-24:00 interval, stamped
# at midnight, is the last of its day, not the first of the next.
DAY_COLUMN = {"requests": "completed_at", "power_readings": "ts", "cost_lines": None, "assets": None}
DAY_TIME = {"power_readings": pl.when(pl.col("interval_s").is_not_null())
            .then(pl.col("ts") - pl.duration(microseconds=(pl.col("interval_s") * 1e6).round(0).cast(pl.Int64)))
            .otherwise(pl.col("ts"))}


@dataclass
class IngestOutcome:
    dataset: str
    day: date
    site: str | None
    files: list[str] = field(default_factory=list)
    rows_read: int = 0
    rows_accepted: int = 0
    rows_quarantined: int = 0
    canonical_rows: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    paths: dict[str, str] = field(default_factory=dict)
    raw_fingerprint: str = ""


def raw_folder(raw_root: Path, day: date, site: str | None) -> Path:
    return Path(raw_root) / day.isoformat() / (site if site is not None else FLEET)


def raw_files(dataset: str, raw_root: Path, day: date, site: str | None) -> list[tuple[Source, list[Path]]]:
    """The raw files the ingest of `dataset` for `day` (and `site`) reads, by source."""
    base = raw_folder(raw_root, day, site)
    found = []
    for src in SOURCES:
        if src.dataset != dataset:
            continue
        paths = sorted({p for pat in src.patterns for p in (base / src.folder).glob(pat) if p.is_file()})
        if paths:
            found.append((src, paths))
    return found


def raw_fingerprint(dataset: str, raw_root: Path, day: date, site: str | None) -> str:
    """A hash of the names, sizes and modification times of the raw files the ingest reads: it
    changes when a file is added, withdrawn, replaced or rewritten (late or corrected data)."""
    h = hashlib.sha256()
    for _src, paths in raw_files(dataset, Path(raw_root), day, site):
        for p in paths:
            st = p.stat()
            h.update(f"{p.relative_to(raw_root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


# Raw files are parsed in groups of whole files of at most this many bytes, each group's parsed
# rows spilled to a scratch Parquet file, so memory follows a group, not the day (every parser is
# file-local: a row's verdict depends on its own file only, so grouping changes no row).
GROUP_BYTES = 384 << 20
# Scratch files are written once and read a few times (the duplicate pass, then each output), on
# the same disk: fast beats small. Uncompressed they are 1.7x the bytes of lz4 (0.63 GB for the
# 5.75 M requests of the benchmark's largest site) and that site's ingest takes 12.6 s, not 13.4 s.
SCRATCH_COMPRESSION = "uncompressed"


def _file_groups(paths: list[Path], limit: int = GROUP_BYTES) -> list[list[Path]]:
    groups: list[list[Path]] = [[]]
    size = 0
    for p in paths:
        n = text_bytes(p)  # a compressed file counts as the text it holds
        if groups[-1] and size + n > limit:
            groups.append([])
            size = 0
        groups[-1].append(p)
        size += n
    return groups


def _parsed_inputs(contract: Contract, raw_root: Path, day: date, site: str | None,
                   inventory: Inventory, spill: Callable[[], Path] | None = None) -> tuple[pl.LazyFrame, list[str]]:
    """Every raw file of the dataset parsed, as one frame; with `spill`, each source is parsed
    group by group into scratch files `spill()` names (the caller removes them)."""
    frames, files = [], []
    for src, paths in raw_files(contract.name, raw_root, day, site):
        files += [p.relative_to(raw_root).as_posix() for p in paths]
        if spill is None:
            frames.append(src.parser(src.reader(paths, raw_root), inventory, site))
            continue
        # Spilled even as one group: `classify` and each output read the parsed rows again.
        groups = _file_groups(paths)
        parts = []
        for group in groups:
            parts.append(spill())
            src.parser(src.reader(group, raw_root), inventory, site).sink_parquet(parts[-1], compression=SCRATCH_COMPRESSION)
        frames.append(pl.scan_parquet(parts))
    if not frames:
        return empty_parsed(contract), files
    return pl.concat(frames, how="diagonal_relaxed"), files


# A dataset stored sorted (power readings: by meter, then time) is sorted in ranges of meters of
# at most this many rows each, one range after another, then written as one file: a sort holds
# every row it sorts, and a site-day of readings grows with the fleet.
SORT_RANGE_ROWS = 2_000_000


def _key_ranges(counts: pl.DataFrame, limit: int) -> list[tuple]:
    """Contiguous ranges (first, last value) of the sorted `counts` (value, n) holding at most
    `limit` rows each (a value with more rows is a range of its own)."""
    ranges: list[tuple] = []
    start, rows, prev = None, 0, None
    for value, n in counts.iter_rows():
        if start is not None and rows + n > limit:
            ranges.append((start, prev))
            start, rows = None, 0
        if start is None:
            start = value
        rows += n
        prev = value
    if start is not None:
        ranges.append((start, prev))
    return ranges


def _write_accepted(lake: Lake, judged: pl.LazyFrame, contract: Contract, day: date, site: str | None,
                    spill: Callable[[], Path]) -> Path:
    """The canonical partition file. A sorted dataset larger than SORT_RANGE_ROWS is sorted range
    by range of its first key column into scratch files (a key's rows all fall in one range),
    then streamed into the partition in range order: the same rows in the same order as one
    sort, in memory bounded by a range."""
    rows = accepted(judged, contract)
    if contract.order is None or judged.select(pl.len()).collect().item() <= SORT_RANGE_ROWS:
        return lake.write(rows, contract.name, day, site)
    first = contract.key[0]
    counts = (judged.filter(pl.col("_reason").is_null()).group_by(first).agg(pl.len())
              .sort(first).collect(engine="streaming"))
    ranges = _key_ranges(counts, SORT_RANGE_ROWS)
    if len(ranges) <= 1:
        return lake.write(rows, contract.name, day, site)
    parts = []
    for lo, hi in ranges:
        parts.append(spill())
        accepted(judged.filter(pl.col(first).is_between(pl.lit(lo), pl.lit(hi))), contract).sink_parquet(
            parts[-1], compression=SCRATCH_COMPRESSION)
    return lake.write(pl.concat([pl.scan_parquet(p) for p in parts]), contract.name, day, site)


def ingest_partition(dataset: str, day: date, site: str | None, raw_root: Path, lake: Lake,
                     inventory: Inventory) -> IngestOutcome:
    """Read every raw file of `dataset` for `day` (and `site`), write the canonical partition,
    its quarantine and its audit atomically, and return the counts. A partition with no raw
    files is written empty, so a rerun after files were withdrawn replaces the old data."""
    started = time.perf_counter()
    contract = CANONICAL[dataset]
    fingerprint = raw_fingerprint(dataset, Path(raw_root), day, site)  # before reading: a file changed meanwhile shows next time
    spilled: list[Path] = []

    def spill() -> Path:
        spilled.append(lake.scratch())
        return spilled[-1]

    # Parse once, into scratch files; the judgement is a plan over them (its duplicate verdicts,
    # the only part that needs every row, already computed by `classify`), read by each output.
    # Writing the judged rows to a scratch file of their own cost more than judging them again.
    try:
        parsed, files = _parsed_inputs(contract, Path(raw_root), day, site, inventory, spill)
        judged = classify(parsed, contract, day, day_column=DAY_COLUMN[dataset], day_time=DAY_TIME.get(dataset))
        part_site = site if "site" in contract.partition_by else None
        qa_site = site if site is not None else FLEET
        out = IngestOutcome(dataset, day, site, files, raw_fingerprint=fingerprint)
        out.paths["canonical"] = str(_write_accepted(lake, judged, contract, day, part_site, spill))
        out.paths["quarantine"] = str(lake.write(quarantined(judged, contract), "quarantine", day, qa_site, name=dataset))
        out.paths["ingest_audit"] = str(lake.write(audit(judged, contract, files), "ingest_audit", day, qa_site, name=dataset))
        counts = judged.group_by("_reason").agg(pl.len()).collect()
    finally:
        for path in spilled:
            path.unlink(missing_ok=True)

    for reason, n in counts.iter_rows():
        if reason is None:
            out.rows_accepted = n
        else:
            out.by_reason[reason] = n
    out.by_reason = dict(sorted(out.by_reason.items()))
    out.rows_quarantined = sum(out.by_reason.values())
    out.rows_read = out.rows_accepted + out.rows_quarantined
    out.canonical_rows = pl.scan_parquet(out.paths["canonical"]).select(pl.len()).collect().item()
    out.seconds = time.perf_counter() - started
    return out
