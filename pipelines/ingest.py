"""Ingest of one dataset for one day (and site): raw files -> canonical, quarantine, audit.

Plain Python, no Dagster: the assets in `pipelines.defs.ingest` and the CLI both call
`ingest_partition`. Which raw folders feed which dataset, through which reader and parser,
is the table `SOURCES` below, and nowhere else.
"""

import fnmatch
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import polars as pl

from pipelines.lake import FLEET, Lake, NoSpaceLeft, writing
from pipelines.readers import (
    READ_ERRORS,
    relative_name,
    scan_csv_text,
    scan_json_fields,
    scan_parquet_files,
    scan_text_lines,
    text_bytes,
    unreadable_detail,
)
from transforms.contracts import CANONICAL, Contract
from transforms.ingest import assets as assets_parsers
from transforms.ingest import bills, power, requests
from transforms.ingest.common import accepted, audit, classify, empty_parsed, quarantined, undecodable, unreadable_rows
from transforms.inventory import Inventory

# A reader: raw files -> lazy frame of their records. Keywords `unreadable` (a dict it fills with the
# files it cannot read as their format, relative name -> why and the fix, left out) and `lossy` (a
# set it fills with the files whose text it decoded lossily): pipelines/readers.py.
Reader = Callable[..., pl.LazyFrame]


def _otel_fields(paths: list[Path], root: Path, *, unreadable: dict[str, str] | None = None,
                 lossy: set[str] | None = None) -> pl.LazyFrame:
    return scan_json_fields(paths, root, list(requests.OTEL_FIELDS), unreadable=unreadable, lossy=lossy)


def _csv_with_literal_nulls(paths: list[Path], root: Path, *, unreadable: dict[str, str] | None = None,
                            lossy: set[str] | None = None) -> pl.LazyFrame:
    return scan_csv_text(paths, root, null_values=["NULL"], unreadable=unreadable, lossy=lossy)


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
    unreadable: dict[str, str] = field(default_factory=dict)  # file -> why (one quarantined row each)
    ignored: dict[str, str] = field(default_factory=dict)  # entry -> why, unclaimed ones included (none read)
    seconds: float = 0.0
    paths: dict[str, str] = field(default_factory=dict)
    raw_fingerprint: str = ""


def raw_folder(raw_root: Path, day: date, site: str | None) -> Path:
    return Path(raw_root) / day.isoformat() / (site if site is not None else FLEET)


# Dataset of the audit rows of entries under `<raw>/<day>/` that no dataset's folder holds (an
# unknown folder, an unknown site folder, a file outside any folder): listed by the fleet-wide
# ingest (the asset register's), in its audit partition `site=_fleet`.
UNCLAIMED = "unclaimed"


@dataclass
class RawListing:
    """What the ingest of one dataset for one day (and site) finds under `<raw>/<day>/`: the files
    each source reads, and the entries its audit lists as ignored (relative name -> why, and the
    fix), those of its own dataset and, for the fleet-wide ingest, the unclaimed ones."""

    sources: list[tuple[Source, list[Path]]] = field(default_factory=list)
    ignored: dict[str, str] = field(default_factory=dict)
    unclaimed: dict[str, str] = field(default_factory=dict)


def _fleet_wide(dataset: str) -> bool:
    return "site" not in CANONICAL[dataset].partition_by


def _folders(fleet: bool) -> dict[str, str]:
    """The folders of a site's raw folder (or of `_fleet/`), each with the dataset whose audit
    lists the entries of that folder no source reads: the first dataset SOURCES reads it for
    (`canonical/` of a site: requests)."""
    owners: dict[str, str] = {}
    for src in SOURCES:
        if _fleet_wide(src.dataset) == fleet:
            owners.setdefault(src.folder, src.dataset)
    return owners


def _leaves(folder: Path) -> Iterator[Path]:
    """Every entry under `folder` that is not a folder holding something (files, symlinks, other
    entries, empty folders), symlinks not followed, in name order."""
    with os.scandir(folder) as it:
        entries = sorted(it, key=lambda e: e.name)
    for e in entries:
        if e.is_dir(follow_symlinks=False):
            inside = list(_leaves(Path(e.path)))
            yield from inside or [Path(e.path)]
        else:
            yield Path(e.path)


def _outside(path: Path, roots: tuple[Path, ...]) -> str | None:
    """Why a symlink is refused: it leads out of the raw directory (or nowhere); None when its
    target resolves inside one of `roots`."""
    target = path.resolve()
    if not target.exists():
        return f"is a broken symlink (to {os.readlink(path)}): not read; replace it with the file, or remove it"
    if any(target == r or target.is_relative_to(r) for r in roots):
        return None
    return (f"is a symlink to {target}, outside the raw directory: not read (files are read from the raw "
            "directory only); copy what it points to into the raw folder, or remove the link")


def _all_leaves(entry: Path) -> list[Path]:
    """`entry` itself when it is not a real folder, else every leaf under it."""
    if entry.is_dir() and not entry.is_symlink():
        return list(_leaves(entry)) or [entry]
    return [entry]


def _folder_entries(folder_path: Path, folder: str, fleet: bool,
                    roots: tuple[Path, ...]) -> Iterator[tuple[Path, Source | None, str | None]]:
    """Each entry under a dataset folder (`<site>/requests/`): (path, the source that reads it,
    None) or (path, None, why it is ignored). Only files directly in the folder are read, by the
    source whose pattern matches the name exactly (names are case-sensitive)."""
    sources = [s for s in SOURCES if s.folder == folder and _fleet_wide(s.dataset) == fleet]
    patterns = sorted({pat for s in sources for pat in s.patterns})
    if folder_path.is_symlink() and (why := _outside(folder_path, roots)):
        yield folder_path, None, f"(folder `{folder}/`) {why}"
        return
    if not folder_path.is_dir():
        yield folder_path, None, f"is not a folder: `{folder}` must be a folder of files; remove or rename it"
        return
    for path in _leaves(folder_path):
        inner = path.relative_to(folder_path)
        if len(inner.parts) == 1 and path.is_dir() and not path.is_symlink():
            yield path, None, f"is an empty folder in `{folder}/`: nothing to read; remove it"
            continue
        if len(inner.parts) > 1:
            yield path, None, (f"is in subfolder `{inner.parts[0]}/` of `{folder}/`: only files directly in "
                               f"`{folder}/` are read; move it up into `{folder}/`, or remove it")
            continue
        if path.is_symlink():
            if why := _outside(path, roots):
                yield path, None, why
                continue
            if path.is_dir():
                yield path, None, (f"is a symlink to a folder: only files directly in `{folder}/` are read; "
                                   "move the files into it, or remove the link")
                continue
        if not path.is_file():
            yield path, None, "is not a regular file (a pipe, socket or device): not read; remove it"
            continue
        src = next((s for s in sources if any(fnmatch.fnmatchcase(path.name, pat) for pat in s.patterns)), None)
        if src is not None:
            yield path, src, None
            continue
        near = next((pat for pat in patterns if fnmatch.fnmatchcase(path.name.lower(), pat)), None)
        if near is not None:
            why = (f"is not read: `{folder}/` reads {', '.join(patterns)}, and names are case-sensitive; rename it "
                   f"to match `{near}`")
        else:
            why = (f"is not read: `{folder}/` reads {', '.join(patterns)} only (see docs/raw-formats.md); rename it "
                   "if it is one of these formats, or move it out of the raw folder")
        yield path, None, why


def raw_listing(dataset: str, raw_root: Path, day: date, site: str | None,
                sites: list[str] | tuple[str, ...] = ()) -> RawListing:
    """Every entry under `<raw>/<day>/` the ingest of `dataset` for `day` (and `site`) accounts
    for: the files its sources read, and the entries its audit lists as ignored. Each entry of the
    day belongs to exactly one partition's listing (docs/raw-formats.md, "What is not read"):

    - under a folder of a site that feeds datasets (`<site>/requests/`, `_fleet/assets/`): the
      ingest of that site of each dataset reads the files its sources match; the folder's other
      entries (another suffix or case, a subfolder, a symlink out of the raw directory) are
      listed by the dataset the folder feeds (`canonical/`: requests; `_fleet/canonical/`: assets);
    - anything else (an unknown folder, a folder of a site not in the inventory `sites`, a file
      outside any folder) is listed by the fleet-wide ingest (`assets`), as dataset UNCLAIMED.

    Symlinks are followed only to targets inside the raw directory (or the day's folder)."""
    raw_root = Path(raw_root)
    day_dir = raw_root / day.isoformat()
    roots = (raw_root.resolve(), day_dir.resolve())
    fleet = site is None
    base = raw_folder(raw_root, day, site)
    out = RawListing()
    found: dict[int, list[Path]] = {}
    if base.is_dir() and not (base.is_symlink() and _outside(base, roots)):  # a refused site folder: the fleet lists it
        for folder, owner in _folders(fleet).items():
            folder_path = base / folder
            if not os.path.lexists(folder_path):
                continue
            for path, src, why in _folder_entries(folder_path, folder, fleet, roots):
                if src is not None and src.dataset == dataset:
                    found.setdefault(SOURCES.index(src), []).append(path)
                elif src is None and owner == dataset:
                    out.ignored[relative_name(path, raw_root)] = why
    out.sources = [(SOURCES[i], sorted(paths)) for i, paths in sorted(found.items())]
    if fleet and _fleet_wide(dataset) and day_dir.is_dir():
        out.unclaimed = _unclaimed(day_dir, raw_root, roots, list(sites))
    return out


def _unclaimed(day_dir: Path, raw_root: Path, roots: tuple[Path, ...], sites: list[str]) -> dict[str, str]:
    """The entries under `day_dir` that no dataset's folder holds, with why and the fix."""
    out: dict[str, str] = {}
    known = ", ".join(sites) or "none"

    def note(entries: list[Path], why: str) -> None:
        for path in entries:
            out[relative_name(path, raw_root)] = why

    for top in sorted(day_dir.iterdir()):
        if top.is_symlink() and (why := _outside(top, roots)):
            note([top], f"(folder `{top.name}/`) {why}")
            continue
        if not top.is_dir():
            note([top], f"is directly in the day's folder: not read; deliver files in `<site>/<folder>/` "
                        "(docs/raw-formats.md), or remove it")
            continue
        if top.name != FLEET and top.name not in sites:
            note(_all_leaves(top),
                 f"is under `{top.name}/`, which is not a site of the inventory (sites: {known}): not read; "
                 f"fix the folder's name, or add the site to inventory.yaml")
            continue
        folders = _folders(top.name == FLEET)
        for entry in sorted(top.iterdir()):
            if entry.name in folders:
                continue  # that site's ingest of the folder's datasets lists it
            if entry.is_symlink() and (why := _outside(entry, roots)):
                note([entry], why)
            elif entry.is_dir():
                note(_all_leaves(entry),
                     f"is under `{top.name}/{entry.name}/`, a folder that feeds no dataset (folders read: "
                     f"{', '.join(sorted(folders))}; names are case-sensitive): not read; rename or move it")
            else:
                note([entry], f"is directly in `{top.name}/`: not read; deliver files in a folder of "
                              f"`{top.name}/` ({', '.join(sorted(folders))})")
    return out


def raw_files(dataset: str, raw_root: Path, day: date, site: str | None) -> list[tuple[Source, list[Path]]]:
    """The raw files the ingest of `dataset` for `day` (and `site`) reads, by source."""
    return raw_listing(dataset, raw_root, day, site).sources


def raw_fingerprint(dataset: str, raw_root: Path, day: date, site: str | None,
                    sites: list[str] | tuple[str, ...] = ()) -> str:
    """A hash of the names, sizes and modification times of the raw files the ingest reads and of
    the entries it lists as ignored: it changes when a file is added, withdrawn, replaced or
    rewritten (late or corrected data), or a stray file appears or goes."""
    return _fingerprint(raw_listing(dataset, Path(raw_root), day, site, sites), Path(raw_root))


def _fingerprint(listing: RawListing, raw_root: Path) -> str:
    h = hashlib.sha256()
    for _src, paths in listing.sources:
        for p in paths:
            st = p.stat()
            h.update(f"{relative_name(p, raw_root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    for name in sorted({**listing.ignored, **listing.unclaimed}):
        st = (Path(raw_root) / name).lstat()
        h.update(f"ignored\0{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
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
    cannot be read as their format at all (relative name -> why and the fix), left out. A reader names those it finds opening them (a
    compressed file that does not decompress, a CSV without a header); a failure while the rows
    are read (a CSV that cannot be parsed further down) is traced to its files by reading each
    file of the group alone, and the group is parsed again without them. An error no file raises
    alone (a parser's) is raised."""
    unreadable: dict[str, str] = {}
    rest = list(group)
    while True:
        try:
            lossy: set[str] = set()
            parsed = src.parser(src.reader(rest, raw_root, unreadable=unreadable, lossy=lossy), inventory, site)
            if lossy:
                parsed = parsed.with_columns(undecodable(contract))
            with writing(part):
                parsed.sink_parquet(part, compression=SCRATCH_COMPRESSION)
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
    frames, files = [], []
    unreadable: dict[str, str] = {}
    for src, paths in listing.sources:
        files += [relative_name(p, raw_root) for p in paths]
        # Spilled even as one group: `classify` and each output read the parsed rows again.
        parts = []
        for group in _file_groups(paths):
            parts.append(spill())
            unreadable |= _parse_group(src, group, contract, raw_root, inventory, site, parts[-1])
        frames.append(pl.scan_parquet(parts))
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
        with writing(parts[-1]):
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
    listing = raw_listing(dataset, Path(raw_root), day, site, inventory.site_ids)
    fingerprint = _fingerprint(listing, Path(raw_root))  # before reading: a file changed meanwhile shows next time
    spilled: list[Path] = []

    def spill() -> Path:
        spilled.append(lake.scratch())
        return spilled[-1]

    # Parse once, into scratch files; the judgement is a plan over them (its duplicate verdicts,
    # the only part that needs every row, already computed by `classify`), read by each output.
    # Writing the judged rows to a scratch file of their own cost more than judging them again.
    try:
        parsed, files, unreadable = _parsed_inputs(contract, Path(raw_root), listing, inventory, site, spill)
        judged = classify(parsed, contract, day, day_column=DAY_COLUMN[dataset], day_time=DAY_TIME.get(dataset))
        part_site = site if "site" in contract.partition_by else None
        qa_site = site if site is not None else FLEET
        out = IngestOutcome(dataset, day, site, files, raw_fingerprint=fingerprint, unreadable=unreadable,
                            ignored={**listing.ignored, **listing.unclaimed})
        ignored = [(dataset, name, why) for name, why in listing.ignored.items()] + \
                  [(UNCLAIMED, name, why) for name, why in listing.unclaimed.items()]
        out.paths["canonical"] = str(_write_accepted(lake, judged, contract, day, part_site, spill))
        out.paths["quarantine"] = str(lake.write(quarantined(judged, contract), "quarantine", day, qa_site, name=dataset))
        out.paths["ingest_audit"] = str(lake.write(audit(judged, contract, files, ignored), "ingest_audit", day, qa_site,
                                                   name=dataset))
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
