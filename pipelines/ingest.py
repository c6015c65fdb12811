"""Ingest of one dataset for one day (and site): raw files -> canonical, quarantine, audit.

Plain Python, no Dagster: the assets in `pipelines.defs.ingest` and the CLI both call
`ingest_partition`. What is read comes from the lake (`lake.raw`: which files, through which
reader and parser), is judged by `transforms.ingest`, and is written back through the lake.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import polars as pl

from lake.commits import LocalBatch, ObjectBatch
from lake.files import NoSpaceLeft, write_scratch
from lake.raw import UNCLAIMED, RawListing, Reader, Source, listing_fingerprint, raw_listing
from lake.readers import READ_ERRORS, prefetch, relative_name, text_bytes, unreadable_detail
from lake.store import FLEET, Lake
from transforms.contracts import CANONICAL, Contract
from transforms.ingest import market_prices
from transforms.ingest.common import accepted, audit, classify, empty_parsed, quarantined, undecodable, unreadable_rows
from transforms.inventory import Inventory

# The column of each dataset whose UTC date must be the partition's day (bills and the
# register carry their own periods and are partitioned by delivery day). An interval reading
# (facility meters) belongs to the day its interval starts in: the 23:45-24:00 interval, stamped
# at midnight, is the last of its day, not the first of the next.
DAY_COLUMN = {"requests": "completed_at", "power_readings": "ts", "cost_lines": None, "assets": None,
              "market_prices": None, "fx_rates": None, "performance_profiles": None}
DAY_TIME = {"power_readings": pl.when(pl.col("interval_s").is_not_null())
            .then(pl.col("ts") - pl.duration(microseconds=(pl.col("interval_s") * 1e6).round(0).cast(pl.Int64)))
            .otherwise(pl.col("ts"))}
# Datasets whose raw files are not delivered per day: the rows a day's partition holds (market
# prices: the hours of the day, read from the whole price files).
DAY_ROWS = {"market_prices": market_prices.hours_of_day}


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
    unreadable: dict[str, str] = field(default_factory=dict)  # file -> why (one quarantined row each)
    ignored: dict[str, str] = field(default_factory=dict)  # entry -> why, unclaimed ones included (none read)
    seconds: float = 0.0
    paths: dict[str, str] = field(default_factory=dict)
    raw_fingerprint: str = ""


# Raw files are parsed in groups of whole files of at most this many bytes, each group's parsed
# rows spilled to a scratch Parquet file, so memory follows a group, not the day (every parser is
# file-local: a row's verdict depends on its own file only, so grouping changes no row).
GROUP_BYTES = 384 << 20
# Scratch files are written once and read a few times (the duplicate pass, then each output), on
# the same disk: fast beats small. Uncompressed they are 1.7x the bytes of lz4 (0.63 GB for the
# 5.75 M requests of the benchmark's largest site) and that site's ingest takes 12.6 s, not 13.4 s.
SCRATCH_COMPRESSION = "uncompressed"


def _file_groups(paths: list[Path], limit: int | None = None) -> list[list[Path]]:
    limit = GROUP_BYTES if limit is None else limit  # read at the call: tests set GROUP_BYTES
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


def _unreadable_alone(reader: Reader, paths: list[Path], raw_root: Path) -> dict[str, str]:
    """The files of `paths` that `reader` cannot read on their own, each read whole (every
    column), with why and the fix."""
    found: dict[str, str] = {}
    for p in paths:
        try:
            reader([p], raw_root, unreadable=found).select(pl.all().null_count()).collect(engine="streaming")
        except READ_ERRORS as e:
            found[relative_name(p, raw_root)] = unreadable_detail(p, e)
    return found


def _parse_group(src: Source, group: list[Path], contract: Contract, raw_root: Path, inventory: Inventory,
                 site: str | None, part: Path) -> dict[str, str]:
    """Parse the files `group` of `src` into the scratch file `part`, identifiers that were not
    UTF-8 judged (`undecodable`, when a file was decoded lossily: a clean day of request logs,
    read whole by DuckDB, skips its cost, 0.09 CPU-s per million requests); returns the files that
    cannot be read as their format at all (relative name -> why and the fix), left out. A reader
    names those it finds opening them (a compressed file that does not decompress, a CSV without a
    header); a failure while the rows are read (a CSV that cannot be parsed further down) is traced
    to its files by reading each file of the group alone, and the group is parsed again without
    them. An error no file raises alone (a parser's) is raised."""
    unreadable: dict[str, str] = {}
    rest = list(group)
    while True:
        try:
            lossy: set[str] = set()
            parsed = src.parser(src.reader(rest, raw_root, unreadable=unreadable, lossy=lossy), inventory, site)
            if lossy:
                parsed = parsed.with_columns(undecodable(contract))
            write_scratch(part, parsed, compression=SCRATCH_COMPRESSION)
            return unreadable
        except NoSpaceLeft:
            raise
        except READ_ERRORS:
            found = _unreadable_alone(src.reader, [p for p in rest if relative_name(p, raw_root) not in unreadable],
                                      raw_root)
            if not found:
                raise
            unreadable.update(found)
            rest = [p for p in rest if relative_name(p, raw_root) not in unreadable]


def _parsed_inputs(contract: Contract, raw_root: Path, listing: RawListing, inventory: Inventory, site: str | None,
                   spill: Callable[[], Path]) -> tuple[pl.LazyFrame, list[str], dict[str, str]]:
    """Every raw file the listing reads parsed, as one frame, the files' names and those that
    cannot be read as their format (name -> why and the fix); each source
    is parsed group by group into scratch files `spill()` names (the caller removes them). A
    file that cannot be read as its format is one row of reason `unreadable_file` (line 0: the
    whole file)."""
    unreadable: dict[str, str] = dict(listing.missing)
    files = [relative_name(p, raw_root) for _src, paths in listing.sources for p in paths]
    groups = [(src, i, group) for i, (src, paths) in enumerate(listing.sources) for group in _file_groups(paths)]
    parts: list[list[Path]] = [[] for _ in listing.sources]  # each source's scratch files
    for n, (src, i, group) in enumerate(groups):
        if n + 1 < len(groups):  # the disk reads the next group while this one is parsed
            prefetch(groups[n + 1][2])
        # Spilled even as one group: `classify` and each output read the parsed rows again.
        parts[i].append(spill())
        unreadable |= _parse_group(src, group, contract, raw_root, inventory, site, parts[i][-1])
    frames = [pl.scan_parquet(p) for p in parts]
    if unreadable:
        frames.append(unreadable_rows(contract, unreadable))
    if not frames:
        return empty_parsed(contract), files, unreadable
    return pl.concat(frames, how="diagonal_relaxed"), files, unreadable


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


def _write_accepted(lake: LocalBatch | ObjectBatch, judged: pl.LazyFrame, contract: Contract, day: date,
                    site: str | None, spill: Callable[[], Path]) -> Path:
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
        write_scratch(parts[-1], accepted(judged.filter(pl.col(first).is_between(pl.lit(lo), pl.lit(hi))), contract),
                      compression=SCRATCH_COMPRESSION)
    return lake.write(pl.concat([pl.scan_parquet(p) for p in parts]), contract.name, day, site)


def ingest_partition(dataset: str, day: date, site: str | None, raw_root: Path, lake: Lake,
                     inventory: Inventory) -> IngestOutcome:
    """Read every raw file of `dataset` for `day` (and `site`), write the canonical partition,
    its quarantine and its audit atomically, and return the counts. A partition with no raw
    files is written empty, so a rerun after files were withdrawn replaces the old data."""
    started = time.perf_counter()
    contract = CANONICAL[dataset]
    listing = raw_listing(dataset, Path(raw_root), day, site, inventory.site_ids,
                          market_prices.market_price_files(inventory), market_prices.market_price_separators(inventory))
    raw_print = listing_fingerprint(listing, Path(raw_root))  # before reading: a file changed meanwhile shows next time
    spilled: list[Path] = []

    def spill() -> Path:
        spilled.append(lake.scratch())
        return spilled[-1]

    # Parse once, into scratch files; the judgement is a plan over them (its duplicate verdicts,
    # the only part that needs every row, already computed by `classify`), read by each output.
    # Writing the judged rows to a scratch file of their own cost more than judging them again.
    try:
        parsed, files, unreadable = _parsed_inputs(contract, Path(raw_root), listing, inventory, site, spill)
        if dataset in DAY_ROWS:
            parsed = DAY_ROWS[dataset](parsed, day)
        parsed, unread = market_prices.unread_areas(parsed, day)  # Energinet rows of areas no tariff reads
        judged = classify(parsed, contract, day, day_column=DAY_COLUMN[dataset], day_time=DAY_TIME.get(dataset))
        part_site = site if "site" in contract.partition_by else None
        qa_site = site if site is not None else FLEET
        out = IngestOutcome(dataset, day, site, files, raw_fingerprint=raw_print, unreadable=unreadable,
                            ignored={**listing.ignored, **dict(unread), **listing.unclaimed})
        ignored = [(dataset, name, why) for name, why in [*listing.ignored.items(), *unread]] + \
                  [(UNCLAIMED, name, why) for name, why in listing.unclaimed.items()]
        # The partition's three files are one commit (lake.commits): never a new canonical file
        # beside the audit of an earlier ingest.
        with lake.batch(f"ingest/{dataset}/date={day.isoformat()}/site={qa_site}") as batch:
            _write_accepted(batch, judged, contract, day, part_site, spill)
            batch.write(quarantined(judged, contract), "quarantine", day, qa_site, name=dataset)
            batch.write(audit(judged, contract, files, ignored), "ingest_audit", day, qa_site, name=dataset)
            out.paths.update(zip(("canonical", "quarantine", "ingest_audit"), map(str, batch.commit()), strict=True))
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
