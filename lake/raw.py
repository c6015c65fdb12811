"""The raw directory: which files feed which dataset, through which reader and parser, and what
the ingest of one dataset for one day (and site) finds there (docs/raw-formats.md).

    <raw>/<YYYY-MM-DD>/<site>/<folder>/<file>     a site's exports of the day
    <raw>/<YYYY-MM-DD>/_fleet/<folder>/<file>     fleet-wide exports (the asset register, exchange rates)
    <raw>/<market_price_file>                     hourly market prices, named by the inventory
    <raw>/profiles/*.csv                          performance profiles, fleet-wide (every day reads them all)

Which raw folders feed which dataset is the table `SOURCES` below (and `MARKET_PRICES_SOURCE`),
and nowhere else. Every entry under a day's folder belongs to exactly one partition's listing
(`raw_listing`): read by a source, or listed as ignored with why.
"""

import fnmatch
import hashlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import partial
from pathlib import Path

import polars as pl

from lake.json_lines import scan_json_fields, scan_redfish_sensors
from lake.readers import relative_name, scan_csv_text, scan_parquet_files, scan_text_lines
from lake.store import FLEET
from transforms.contracts import CANONICAL
from transforms.ingest import assets as assets_parsers
from transforms.ingest import bills, fx_rates, market_prices, power, profiles, requests

# A reader: raw files -> lazy frame of their records. Keywords `unreadable` (a dict it fills with the
# files it cannot read as their format, relative name -> why and the fix, left out) and `lossy` (a
# set it fills with the files whose text it decoded lossily): lake/readers.py, lake/json_lines.py.
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
    Source("power_readings", "redfish", ("*.jsonl",), scan_redfish_sensors, power.parse_redfish_sensors),
    Source("power_readings", "facility", ("*.csv",), scan_csv_text, power.parse_facility_csv),
    Source("power_readings", "canonical", ("power_readings*.csv",), scan_csv_text, power.parse_canonical_power),
    Source("power_readings", "canonical", ("power_readings*.parquet",), scan_parquet_files,
           power.parse_canonical_power),
    Source("cost_lines", "focus", ("*.csv",), _csv_with_literal_nulls, bills.parse_focus),
    Source("cost_lines", "electricity", ("*.csv",), scan_csv_text, bills.parse_electricity_invoice),
    Source("cost_lines", "colocation", ("*.csv",), scan_csv_text, bills.parse_colocation_invoice),
    Source("cost_lines", "canonical", ("cost_lines*.csv",), scan_csv_text, bills.parse_canonical_cost_lines),
    Source("cost_lines", "canonical", ("cost_lines*.parquet",), scan_parquet_files, bills.parse_canonical_cost_lines),
    Source("assets", "assets", ("*.csv",), scan_csv_text, assets_parsers.parse_asset_register),
    Source("assets", "canonical", ("assets*.csv",), scan_csv_text, assets_parsers.parse_canonical_assets),
    Source("assets", "canonical", ("assets*.parquet",), scan_parquet_files, assets_parsers.parse_canonical_assets),
    # Reference exchange rates, fleet-wide: the ECB's file as it ships, or the canonical table.
    Source("fx_rates", "fx", ("eurofxref*.csv",), scan_csv_text, fx_rates.parse_ecb_rates),
    Source("fx_rates", "fx", ("fx_rates*.csv",), scan_csv_text, fx_rates.parse_canonical_fx_rates),
)


# Market prices are not under a day's folder: each market tariff of the inventory names its file
# (`market_price_file:`, relative to the raw directory), and every day's fleet-wide ingest reads
# the files whole and keeps the day's hours (`transforms.ingest.market_prices.hours_of_day`).
MARKET_PRICES_SOURCE = Source("market_prices", "prices", ("*.csv",), scan_csv_text,
                              market_prices.parse_market_price_csv)
# Performance profiles are not delivered per day either: every `*.csv` directly in `<raw>/profiles/`,
# read whole by every day's fleet-wide ingest (docs/raw-formats.md, "Performance profiles").
PROFILES_SOURCE = Source("performance_profiles", "profiles", ("*.csv",), scan_csv_text,
                         profiles.parse_canonical_profiles)


def _price_source(separator: str) -> Source:
    """The market price files read with another separator than `,` (Energinet's `;`, or an
    `hourly_csv` tariff's `market_price_separator`), every column as text all the same."""
    if separator == ",":
        return MARKET_PRICES_SOURCE
    return Source("market_prices", "prices", ("*.csv",), partial(scan_csv_text, separator=separator),
                  market_prices.parse_market_price_csv)


def raw_folder(raw_root: Path, day: date, site: str | None) -> Path:
    return Path(raw_root) / day.isoformat() / (site if site is not None else FLEET)


# Dataset of the audit rows of entries under `<raw>/<day>/` that no dataset's folder holds (an
# unknown folder, an unknown site folder, a file outside any folder): listed by the fleet-wide
# ingest (the asset register's), in its audit partition `site=_fleet`.
UNCLAIMED = "unclaimed"
UNCLAIMED_BY = "assets"  # the fleet-wide ingest whose audit lists them (fx_rates' is fleet-wide too)


@dataclass
class RawListing:
    """What the ingest of one dataset for one day (and site) finds under `<raw>/<day>/`: the files
    each source reads, and the entries its audit lists as ignored (relative name -> why, and the
    fix), those of its own dataset and, for the fleet-wide ingest, the unclaimed ones."""

    sources: list[tuple[Source, list[Path]]] = field(default_factory=list)
    ignored: dict[str, str] = field(default_factory=dict)
    unclaimed: dict[str, str] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)  # named (market prices) but not there: unreadable


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


def _folder_entries(folder_path: Path, folder: str, fleet: bool, roots: tuple[Path, ...],
                    sources: list[Source] | None = None) -> Iterator[tuple[Path, Source | None, str | None]]:
    """Each entry under a dataset folder (`<site>/requests/`): (path, the source that reads it,
    None) or (path, None, why it is ignored). Only files directly in the folder are read, by the
    source whose pattern matches the name exactly (names are case-sensitive)."""
    if sources is None:
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
                sites: list[str] | tuple[str, ...] = (),
                price_files: Mapping[str, Sequence[str]] | None = None,
                price_separators: Mapping[str, str] | None = None) -> RawListing:
    """Every entry under `<raw>/<day>/` the ingest of `dataset` for `day` (and `site`) accounts
    for: the files its sources read, and the entries its audit lists as ignored. Each entry of the
    day belongs to exactly one partition's listing (docs/raw-formats.md, "What is not read"):

    - under a folder of a site that feeds datasets (`<site>/requests/`, `_fleet/assets/`): the
      ingest of that site of each dataset reads the files its sources match; the folder's other
      entries (another suffix or case, a subfolder, a symlink out of the raw directory) are
      listed by the dataset the folder feeds (`canonical/`: requests; `_fleet/canonical/`: assets);
    - anything else (an unknown folder, a folder of a site not in the inventory `sites`, a file
      outside any folder) is listed by the fleet-wide ingest (`assets`), as dataset UNCLAIMED.

    Market prices read the files `price_files` names (`market_price_files` of the inventory: file
    -> its tariffs), whatever the day, each with its separator (`price_separators`, default `,`).
    Symlinks are followed only to targets inside the raw directory (or the day's folder)."""
    raw_root = Path(raw_root)
    if dataset == MARKET_PRICES_SOURCE.dataset:
        return _price_listing(raw_root, price_files or {}, price_separators or {})
    if dataset == PROFILES_SOURCE.dataset:
        return _profile_listing(raw_root)
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
    if fleet and dataset == UNCLAIMED_BY and day_dir.is_dir():  # one fleet-wide ingest lists them, not each
        out.unclaimed = _unclaimed(day_dir, raw_root, roots, list(sites))
    return out


def _price_listing(raw_root: Path, price_files: Mapping[str, Sequence[str]],
                   separators: Mapping[str, str]) -> RawListing:
    """The market price files the inventory names: read when they are files of the raw directory
    (grouped by their separator: one source each); a link out of it is ignored, a file that is not
    there is `missing` (unreadable)."""
    out = RawListing()
    read: dict[str, list[Path]] = {}
    for name, tariffs in sorted(price_files.items()):
        path = raw_root / name
        if path.is_symlink() and (why := _outside(path, (raw_root.resolve(),))):
            out.ignored[relative_name(path, raw_root)] = why
        elif not path.is_file():
            out.missing[relative_name(path, raw_root)] = (
                f"is named by market tariff {', '.join(tariffs)} (`market_price_file:` in inventory.yaml) but "
                f"{'is not a file' if os.path.lexists(path) else 'does not exist'}: deliver it, or fix the inventory")
        else:
            read.setdefault(separators.get(name, ","), []).append(path)
    out.sources = [(_price_source(sep), paths) for sep, paths in sorted(read.items())]
    return out


def _profile_listing(raw_root: Path) -> RawListing:
    """The files of `<raw>/profiles/`: every `*.csv` directly in it is read; anything else there is
    ignored, with why. No folder: no profile (capacity then comes from the telemetry alone)."""
    out = RawListing()
    folder = raw_root / PROFILES_SOURCE.folder
    if not os.path.lexists(folder):
        return out
    read = []
    for path, src, why in _folder_entries(folder, PROFILES_SOURCE.folder, True, (raw_root.resolve(),),
                                          [PROFILES_SOURCE]):
        if src is not None:
            read.append(path)
        else:
            out.ignored[relative_name(path, raw_root)] = why
    out.sources = [(PROFILES_SOURCE, read)] if read else []
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
            note([top], "is directly in the day's folder: not read; deliver files in `<site>/<folder>/` "
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
    return listing_fingerprint(raw_listing(dataset, Path(raw_root), day, site, sites), Path(raw_root))


def listing_fingerprint(listing: RawListing, raw_root: Path) -> str:
    h = hashlib.sha256()
    for _src, paths in listing.sources:
        for p in paths:
            st = p.stat()
            h.update(f"{relative_name(p, raw_root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    for name in sorted({**listing.ignored, **listing.unclaimed}):
        st = (Path(raw_root) / name).lstat()
        h.update(f"ignored\0{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    for name in sorted(listing.missing):  # a named file that appears changes it too
        h.update(f"missing\0{name}\n".encode())
    return h.hexdigest()[:16]
