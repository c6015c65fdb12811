"""Raw files the ingest cannot read as it reads the others (issue 19, items 9, 10, 11 and 14).

One simulated day, clean (no injected defects), is given every awkward entry a tester found, all
at once, and every partition of it is ingested by `ingest_partition` (what the Dagster assets
call): each entry's outcome is asserted exactly, and on every audit row `rows_read =
rows_accepted + rows_quarantined`, every entry under the day's raw folder is in exactly one audit
row, and the quarantine holds as many rows per file as the audit counts. The simulated files are
ingested whole, as on a day without the awkward ones. The real command (`inferledger ingest`)
lists ignored files the same way, and reports a full disk in one line.
"""

import gzip
import json
import os
import shutil
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fleetsim
from lake.inventory import load_inventory
from lake.raw import UNCLAIMED, raw_listing
from lake.readers import UnreadableFile, scan_text_lines
from lake.store import Lake
from pipelines.cli import main
from pipelines.ingest import ingest_partition
from tests.conftest import examples
from transforms.contracts import CANONICAL
from transforms.ingest.market_prices import market_price_files

DAY = date(2026, 11, 24)
SITE = "metro-east"
FLEET = "_fleet"


def lines_of(path: Path, n: int, prefix: str) -> list[str]:
    """The first `n` request lines of a simulated log, with new request ids `<prefix>-<i>` (so they
    duplicate no simulated request)."""
    out = []
    for i, line in enumerate(path.read_text().splitlines()[:n]):
        record = json.loads(line)
        record["gen_ai.response.id"] = f"{prefix}-{i}"
        out.append(json.dumps(record, separators=(",", ":")))  # as the simulator writes them
    return out


def entries(day_dir: Path, raw: Path) -> list[str]:
    """Every entry under `day_dir` an operator sees: files, symlinks (not followed), empty folders."""
    found = []
    for folder, dirs, files in os.walk(day_dir):
        found += [Path(folder, f) for f in files]
        for d in list(dirs):
            path = Path(folder, d)
            if path.is_symlink():
                found.append(path)
                dirs.remove(d)
            elif not any(path.iterdir()):
                found.append(path)
    return sorted(p.relative_to(raw).as_posix() for p in found)


def ingest_day(raw: Path, lake: Path) -> None:
    """Every partition of the day, as `inferledger ingest` runs them (each site, then the fleet)."""
    inventory = load_inventory(raw / "inventory.yaml")
    for site in inventory.site_ids:
        for dataset in ("requests", "power_readings", "cost_lines"):
            ingest_partition(dataset, DAY, site, raw, Lake(lake), inventory)
    ingest_partition("assets", DAY, None, raw, Lake(lake), inventory)


def add_unrecognised_entries(d: Path) -> None:
    """Item 9: entries no source reads (copies of read files: reading one would add duplicates)."""
    site = d / SITE
    log = site / "requests" / "m-h200-01.jsonl"
    shutil.copy(log, site / "requests" / "m-h200-01.JSONL")
    shutil.copy(log, site / "requests" / "m-h200-01.json")
    (site / "requests" / "m-h200-01.jsonl.bz2").write_bytes(b"BZh91AY&SY")
    (site / "requests" / "archive").mkdir()
    shutil.copy(log, site / "requests" / "archive" / "m-h200-01.jsonl")
    (site / "Requests").mkdir()
    shutil.copy(log, site / "Requests" / "m-h200-01.jsonl")
    (d / "lab-annex" / "requests").mkdir(parents=True)
    shutil.copy(log, d / "lab-annex" / "requests" / "m-h200-01.jsonl")
    shutil.copy(site / "facility" / f"{SITE}_facility_{DAY}.csv", site / "facility" / "FACILITY.CSV")
    (d / "README.txt").write_text("delivered by the exporter\n")


def scan(lake: Path, dataset: str) -> pl.DataFrame:
    return pl.read_parquet(lake / dataset / "**" / "*.parquet", hive_partitioning=True)


def accounted(raw: Path, lake: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The day's audit and quarantine, after checking that they account for every entry and record."""
    audit, quarantine = scan(lake, "ingest_audit"), scan(lake, "quarantine")
    # The market price files the inventory names are read by every day, from outside its folder.
    prices = audit.filter(pl.col("dataset") == "market_prices")["source_file"].to_list()
    assert prices in ([], sorted(market_price_files(load_inventory(raw / "inventory.yaml"))))
    # So are the performance profiles of `<raw>/profiles/` (the simulator writes profiles/demo.csv).
    profiles = audit.filter(pl.col("dataset") == "performance_profiles")["source_file"].to_list()
    assert profiles in ([], sorted(p.relative_to(raw).as_posix() for p in (raw / "profiles").glob("*.csv")))
    day_entries = audit.filter(~pl.col("dataset").is_in(["market_prices", "performance_profiles"]))[
        "source_file"].to_list()
    assert sorted(day_entries) == entries(raw / DAY.isoformat(), raw)  # each entry, once
    assert audit.filter(pl.col("rows_read") != pl.col("rows_accepted") + pl.col("rows_quarantined")).is_empty()
    by_status = {s: audit.filter(pl.col("status") == s) for s in ("read", "unreadable", "ignored")}
    assert sum(f.height for f in by_status.values()) == audit.height
    assert by_status["read"]["status_detail"].null_count() == by_status["read"].height
    assert by_status["ignored"].select("rows_read", "rows_accepted", "rows_quarantined").sum().row(0) == (0, 0, 0)
    assert (by_status["unreadable"].select("rows_read", "rows_accepted", "rows_quarantined").unique().rows()
            in ([], [(1, 0, 1)]))
    assert by_status["ignored"]["status_detail"].null_count() == 0
    assert by_status["unreadable"]["status_detail"].null_count() == 0
    counted = quarantine.group_by("source_file").agg(pl.len().cast(pl.Int64).alias("q"))
    per_file = audit.filter(pl.col("rows_quarantined") > 0).select("source_file", pl.col("rows_quarantined").alias("q"))
    assert sorted(counted.rows()) == sorted(per_file.rows())
    return audit, quarantine


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    root = tmp_path_factory.mktemp("awkward")
    raw, lake = root / "raw", root / "lake"
    summary = fleetsim.simulate(raw, DAY, requests=2_000, seed=3, defects=False, invoices=True)
    d = raw / DAY.isoformat()
    site = d / SITE
    log = site / "requests" / "m-h200-01.jsonl"
    add_unrecognised_entries(d)

    # 10. Lines holding the unit separator 0x1F, plain and gzip-compressed.
    us = lines_of(log, 20, "us")
    us[2], us[6] = "\x1f" + us[2], "\x1f" + us[6]
    us[10] = us[10].replace('{"time"', '{\x1f"time"', 1)
    text = ("\n".join(us) + "\n\x1f\n").encode()
    (site / "requests" / "unit-separators.jsonl").write_bytes(text)
    usz = "\n".join(lines_of(log, 20, "usz")).replace('{"time"', '\x1f{"time"', 1).encode()
    (site / "requests" / "unit-separators-z.jsonl.gz").write_bytes(gzip.compress(usz))

    # 11. Files that cannot be read as their format.
    (site / "facility" / "empty.csv").write_bytes(b"")
    colocation = next((site / "colocation").glob("*.csv"))
    header = colocation.read_text().splitlines()[0]
    (site / "colocation" / "stray-quote.csv").write_text(
        f'{header}\nCOLO-X,1,"2026-11-01,2026-12-01,space,1,cabinet-month,10.00,10.00,USD\n'
        "COLO-X,2,2026-11-01,2026-12-01,space,1,cabinet-month,10.00,10.00,USD\n")
    packed = bytearray(gzip.compress("\n".join(lines_of(log, 200, "gz")).encode()))
    packed[len(packed) // 2] ^= 0xFF
    (site / "requests" / "corrupt.jsonl.gz").write_bytes(bytes(packed))
    (site / "requests" / "plain.jsonl.zst").write_text("\n".join(lines_of(log, 5, "zst")) + "\n")
    (site / "canonical").mkdir()
    (site / "canonical" / "requests-extra.parquet").write_text("not parquet\n")

    # 14. Bytes that are not UTF-8 in a tenant id; symlinks out of and inside the raw directory.
    good, latin = lines_of(log, 2, "utf8")
    (site / "requests" / "latin1.jsonl").write_bytes(
        (good + "\n" + latin.replace('"inferledger.tenant.id":"', '"inferledger.tenant.id":"caf\\u00e9-', 1)
         + "\n").encode().replace(b"\\u00e9", b"\xe9"))
    header = b"request_id,node_id,model,tier,tenant_id,arrived_at,completed_at,input_tokens,output_tokens,status\n"
    row = b"%s,m-h200-01,llama-3.1-70b-instruct,premium,%s,2026-11-24T10:00:00Z,2026-11-24T10:00:02Z,10,20,ok\n"
    (site / "canonical" / "requests-latin1.csv").write_bytes(
        header + row % (b"csv-0", b"globex-insure") + row % (b"csv-1", b"caf\xe9-globex"))
    outside = root / "outside"
    outside.mkdir()
    (outside / "elsewhere.jsonl").write_text("\n".join(lines_of(log, 3, "outside")) + "\n")
    os.symlink(outside / "elsewhere.jsonl", site / "requests" / "elsewhere.jsonl")
    (raw / "shared").mkdir()
    (raw / "shared" / "inside.jsonl").write_text("\n".join(lines_of(log, 4, "inside")) + "\n")
    os.symlink(Path("..", "..", "..", "shared", "inside.jsonl"), site / "requests" / "inside.jsonl")

    ingest_day(raw, lake)
    audit, quarantine = accounted(raw, lake)
    return {"raw": raw, "lake": lake, "summary": summary, "audit": audit, "quarantine": quarantine,
            "requests": scan(lake, "requests")}


def row(day, name: str) -> dict:
    rows = day["audit"].filter(pl.col("source_file") == f"{DAY}/{name}").to_dicts()
    assert len(rows) == 1, name
    return rows[0]


def quarantined(day, name: str) -> list[tuple[int, str]]:
    q = day["quarantine"].filter(pl.col("source_file") == f"{DAY}/{name}").sort("source_row")
    return q.select("source_row", "reason").rows()


# 9. Unrecognised entries: in the audit of the dataset their folder feeds, or of the fleet
# partition (dataset `unclaimed`) when no dataset's folder holds them; never read.
IGNORED = {
    f"{SITE}/requests/m-h200-01.JSONL": (SITE, "requests", "names are case-sensitive; rename it to match `*.jsonl`"),
    f"{SITE}/requests/m-h200-01.json": (SITE, "requests", "`requests/` reads *.jsonl, *.jsonl.gz, *.jsonl.zst only"),
    f"{SITE}/requests/m-h200-01.jsonl.bz2": (SITE, "requests",
                                             "`requests/` reads *.jsonl, *.jsonl.gz, *.jsonl.zst only"),
    f"{SITE}/requests/archive/m-h200-01.jsonl": (SITE, "requests", "is in subfolder `archive/` of `requests/`"),
    f"{SITE}/facility/FACILITY.CSV": (SITE, "power_readings", "names are case-sensitive; rename it to match `*.csv`"),
    f"{SITE}/Requests/m-h200-01.jsonl": (FLEET, UNCLAIMED,
                                         "is under `metro-east/Requests/`, a folder that feeds no dataset"),
    "lab-annex/requests/m-h200-01.jsonl": (FLEET, UNCLAIMED,
                                           "is under `lab-annex/`, which is not a site of the inventory"),
    "README.txt": (FLEET, UNCLAIMED, "is directly in the day's folder"),
    f"{SITE}/requests/elsewhere.jsonl": (SITE, "requests", "outside the raw directory: not read"),
}


@pytest.mark.parametrize("name", list(IGNORED))
def test_unrecognised_entries_are_listed_as_ignored_with_why(day, name):
    site, dataset, why = IGNORED[name]
    r = row(day, name)
    assert (r["site"], r["dataset"], r["status"], r["rows_read"]) == (site, dataset, "ignored", 0)
    assert why in r["status_detail"], r["status_detail"]
    assert r["status_detail"].startswith(f"`{name.rsplit('/', 1)[-1]}` ")


def test_nothing_ignored_is_read_and_the_simulated_files_are_read_whole(day):
    simulated = day["requests"].filter(pl.col("request_id").str.starts_with("chatcmpl-"))
    assert simulated.height == day["summary"].records["requests"]  # ignored copies add no duplicate
    assert simulated["request_id"].n_unique() == simulated.height
    assert day["requests"].filter(pl.col("request_id").str.starts_with("outside-")).is_empty()
    # Where each dataset's ignored entries are listed: the fleet partition holds the unclaimed ones only.
    listed = (day["audit"].filter(pl.col("status") == "ignored").group_by("site", "dataset").len()
              .sort("site", "dataset"))
    assert listed.rows() == [(FLEET, UNCLAIMED, 3), (SITE, "power_readings", 1), (SITE, "requests", 5)]


def test_the_command_lists_ignored_entries_in_the_audit(tmp_path, monkeypatch, capsys):
    raw, lake = tmp_path / "raw", tmp_path / "lake"
    fleetsim.simulate(raw, DAY, requests=300, seed=3, defects=False, invoices=True)
    add_unrecognised_entries(raw / DAY.isoformat())
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert main(["ingest", "--date", str(DAY), "--raw", str(raw), "--lake", str(lake)]) == 0
    audit, _ = accounted(raw, lake)
    ignored = audit.filter(pl.col("status") == "ignored")
    assert sorted(ignored["source_file"].str.strip_prefix(f"{DAY}/")) == sorted(
        n for n in IGNORED if "elsewhere" not in n)
    out = capsys.readouterr().out
    assert "8 file(s) not read (ingest_audit status unreadable or ignored)" in out
    assert f"  {DAY}/README.txt: is directly in the day's folder" in out


# 10. A line starting with (or holding) 0x1F is a line like any other: read, and judged.
def test_lines_with_the_unit_separator_are_read_and_judged(day):
    r = row(day, f"{SITE}/requests/unit-separators.jsonl")
    assert (r["rows_read"], r["rows_accepted"], r["rows_quarantined"], r["status"]) == (21, 17, 4, "read")
    assert quarantined(day, f"{SITE}/requests/unit-separators.jsonl") == [
        (3, "malformed_record"), (7, "malformed_record"), (11, "malformed_record"), (21, "malformed_record")]
    z = row(day, f"{SITE}/requests/unit-separators-z.jsonl.gz")  # the compressed path, last line unterminated
    assert (z["rows_read"], z["rows_accepted"], z["rows_quarantined"]) == (20, 19, 1)
    assert quarantined(day, f"{SITE}/requests/unit-separators-z.jsonl.gz") == [(1, "malformed_record")]


def test_every_line_is_read_whatever_bytes_it_holds(tmp_path):
    """scan_text_lines splits on newlines only: 0x1F first, inside, alone; all other control bytes."""
    text = b"\x1fa\nb\x1fc\n\x1f\n\n" + bytes(b for b in range(1, 32) if b not in (10, 13)) + b"\n\x7flast"
    path = tmp_path / "f.txt"
    path.write_bytes(text)
    got = scan_text_lines([path], tmp_path).collect()
    assert got.select("_source_row", "line").rows() == [
        (1, "\x1fa"), (2, "b\x1fc"), (3, "\x1f"), (5, bytes(b for b in range(1, 32) if b not in (10, 13)).decode()),
        (6, "\x7flast")]
    binary = tmp_path / "all.txt"
    binary.write_bytes(bytes(range(256)))
    with pytest.raises(UnreadableFile, match="is not text"):
        scan_text_lines([binary], tmp_path)
    unreadable: dict[str, str] = {}
    assert scan_text_lines([binary, path], tmp_path, unreadable=unreadable).collect().height == 5
    assert list(unreadable) == ["all.txt"]


# 11. A file that cannot be read as its format: one record, quarantined as `unreadable_file`
# (line 0), with why and the fix; the rest of the site is ingested.
UNREADABLE = {
    f"{SITE}/facility/empty.csv": ("power_readings", "is empty: a CSV needs at least its header row"),
    f"{SITE}/colocation/stray-quote.csv": ("cost_lines", "the double quotes from line 2 on do not pair up"),
    f"{SITE}/requests/corrupt.jsonl.gz": ("requests", "cannot be decompressed as gzip"),
    f"{SITE}/requests/plain.jsonl.zst": ("requests", "is not zstd-compressed though named `.zst`"),
    f"{SITE}/canonical/requests-extra.parquet": ("requests", "is not a readable Parquet file"),
}


@pytest.mark.parametrize("name", list(UNREADABLE))
def test_a_file_that_cannot_be_read_is_one_quarantined_record(day, name):
    dataset, why = UNREADABLE[name]
    r = row(day, name)
    assert (r["site"], r["dataset"], r["status"]) == (SITE, dataset, "unreadable")
    assert (r["rows_read"], r["rows_accepted"], r["rows_quarantined"]) == (1, 0, 1)
    assert why in r["status_detail"], r["status_detail"]
    q = day["quarantine"].filter(pl.col("source_file") == f"{DAY}/{name}")
    assert q.select("source_row", "reason", "detail").rows() == [(0, "unreadable_file", r["status_detail"])]


def test_the_rest_of_the_site_is_ingested(day):
    """Every simulated file of the site beside the unreadable ones is read and accepted whole (a
    clean day): the same as a day without them."""
    audit = day["audit"].filter(pl.col("site") == SITE, pl.col("status") == "read")
    simulated = audit.filter(~pl.col("source_file").str.contains("unit-separators|latin1|inside"))
    assert sorted({f.split("/")[2] for f in simulated["source_file"]}) == [
        "colocation", "dcgm", "facility", "redfish", "requests"]
    assert simulated.filter((pl.col("rows_read") == 0) | (pl.col("rows_read") != pl.col("rows_accepted"))).is_empty()
    logs = sorted((day["raw"] / str(DAY) / SITE / "requests").glob("m-h200-0?.jsonl"))
    assert simulated.filter(pl.col("source_file").str.contains("/requests/"))["rows_read"].to_list() == [
        len(p.read_text().splitlines()) for p in logs]


# 14. Bytes that are not UTF-8 in an identifier; symlinks.
def test_a_tenant_id_that_is_not_utf8_is_quarantined_not_a_new_tenant(day):
    name = f"{SITE}/requests/latin1.jsonl"
    r = row(day, name)
    assert (r["rows_read"], r["rows_accepted"], r["rows_quarantined"]) == (2, 1, 1)
    q = day["quarantine"].filter(pl.col("source_file") == f"{DAY}/{name}")
    assert q.select("source_row", "record_key", "reason").rows() == [(2, "utf8-1", "invalid_value")]
    assert q["detail"][0].startswith("`tenant_id` caf\ufffd-") and "holds bytes that are not UTF-8" in q["detail"][0]
    assert day["requests"].filter(pl.col("tenant_id").str.contains("\ufffd", literal=True)).is_empty()


def test_a_csv_tenant_id_that_is_not_utf8_is_quarantined_too(day):
    name = f"{SITE}/canonical/requests-latin1.csv"
    r = row(day, name)
    assert (r["rows_read"], r["rows_accepted"], r["rows_quarantined"]) == (2, 1, 1)
    q = day["quarantine"].filter(pl.col("source_file") == f"{DAY}/{name}")
    assert q.select("source_row", "record_key", "reason").rows() == [(2, "csv-1", "invalid_value")]
    assert q["detail"][0] == ("`tenant_id` caf\ufffd-globex holds bytes that are not UTF-8 (shown as \ufffd); "
                              "deliver the file encoded as UTF-8")


def test_a_symlink_inside_the_raw_directory_is_read_under_its_own_name(day):
    r = row(day, f"{SITE}/requests/inside.jsonl")
    assert (r["status"], r["rows_read"], r["rows_accepted"]) == ("read", 4, 4)
    assert day["requests"].filter(pl.col("request_id").str.starts_with("inside-")).height == 4


def test_no_space_left_is_one_line_naming_the_file_and_the_fix(tmp_path, capsys, monkeypatch):
    """A full disk while the ingest writes: `ingest` and `backfill` exit 1 with one line naming the
    file written and the fix (the error Polars raises names no file)."""
    raw, lake = tmp_path / "raw", tmp_path / "lake"
    fleetsim.simulate(raw, DAY, requests=300, seed=3, defects=False, invoices=True)
    sink = pl.LazyFrame.sink_parquet

    def full_disk(self, path, *args, **kwargs):
        if str(path).startswith(str(lake)):
            raise pl.exceptions.ComputeError(
                "parquet: File out of specification: underlying IO error: No space left on device (os error 28)")
        return sink(self, path, *args, **kwargs)

    monkeypatch.setattr(pl.LazyFrame, "sink_parquet", full_disk)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    with pytest.raises(SystemExit) as e:
        main(["ingest", "--date", str(DAY), "--raw", str(raw), "--lake", str(lake)])
    assert e.value.code == 1
    err = capsys.readouterr().err
    steps = [line for line in err.splitlines() if line.strip().startswith("step ")]
    assert steps, err
    for line in steps:
        assert f"failed: no space left on device writing {lake}/" in line, line
        assert line.rstrip().endswith("free space on that disk, or point the lake (--lake, $INFERLEDGER_LAKE) at a "
                                      "disk with room, then run the same command again"), line
    assert main(["backfill", "--from", str(DAY), "--to", str(DAY), "--raw", str(raw), "--lake", str(lake),
                 "--warehouse", str(tmp_path / "w.duckdb"), "--no-publish"]) == 1
    out = capsys.readouterr().out
    assert f"failed: no space left on device writing {lake}/" in out


# Every entry of any day's tree is in exactly one partition's listing, read or ignored.
SITES = ["metro-east", "remote-plains"]
names = st.sampled_from(["m-1.jsonl", "m-1.JSONL", "m-2.jsonl.gz", "x.json", "a.csv", "B.CSV", "d.prom", "i.txt",
                         "requests-1.csv", "power_readings.parquet", "assets.csv", "cost_lines-x.csv", "notes"])
folders = st.sampled_from(["requests", "Requests", "dcgm", "ipmi", "redfish", "facility", "focus", "electricity",
                           "colocation", "canonical", "assets", "misc"])
tops = st.sampled_from([*SITES, "_fleet", "lab-annex"])
entry = st.one_of(
    st.tuples(st.just("file"), tops, folders, names),
    st.tuples(st.just("deep"), tops, folders, names),          # in a subfolder of the folder
    st.tuples(st.just("top-file"), tops, st.just(""), names),  # directly in a site folder
    st.tuples(st.just("day-file"), st.just(""), st.just(""), names),
    st.tuples(st.just("link-out"), tops, folders, names),
    st.tuples(st.just("link-in"), tops, folders, names),
    st.tuples(st.just("empty-dir"), tops, folders, names))


@settings(max_examples=examples(40), deadline=None)
@given(st.lists(entry, max_size=25))
def test_each_entry_of_a_day_is_in_exactly_one_listing(tmp_path_factory, made):
    root = tmp_path_factory.mktemp("tree")
    raw, day_dir, outside = root / "raw", root / "raw" / DAY.isoformat(), root / "outside.jsonl"
    outside.write_text("{}\n")
    (raw / "shared.jsonl").parent.mkdir(parents=True)
    (raw / "shared.jsonl").write_text("{}\n")
    day_dir.mkdir()
    for kind, top, folder, name in made:
        base = day_dir / top / folder
        path = {"deep": base / "sub" / name, "top-file": day_dir / top / name,
                "day-file": day_dir / name, "empty-dir": base / name}.get(kind, base / name)
        if os.path.lexists(path) or any(p.is_file() or p.is_symlink() for p in path.parents if p != path):
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "empty-dir":
            path.mkdir()
        elif kind == "link-out":
            os.symlink(outside, path)
        elif kind == "link-in":
            os.symlink(raw / "shared.jsonl", path)
        else:
            path.write_text("x\n")
    listed: list[str] = []
    for dataset, contract in CANONICAL.items():
        for site in ([None] if "site" not in contract.partition_by else SITES):
            listing = raw_listing(dataset, raw, DAY, site, SITES)
            listed += [p.relative_to(raw).as_posix() for _, paths in listing.sources for p in paths]
            listed += [*listing.ignored, *listing.unclaimed]
            assert all(not os.path.islink(p) or not str(Path(p).resolve()).startswith(str(outside))
                       for _, paths in listing.sources for p in paths)  # a link out is never read
    assert sorted(listed) == entries(day_dir, raw)


def test_no_space_left_outside_a_pipeline_step_is_one_line_too(tmp_path, capsys, monkeypatch):
    def full_disk(*args, **kwargs):  # what the simulator's Rust writer raises on a full disk (no errno, no file)
        raise OSError("No space left on device (os error 28)")

    monkeypatch.setattr(fleetsim, "simulate", full_disk)
    assert main(["simulate", "--out", str(tmp_path / "raw")]) == 1
    assert capsys.readouterr().err.strip() == (f"error: no space left on device writing under {tmp_path / 'raw'}: "
                                               "free space on that disk, then run the same command again")


def test_a_dcgm_sample_behind_a_stray_byte_is_judged_not_dropped(tmp_path):
    # DCGM scrapes count samples of the two measures, not lines: a sample line with a 0x1F before
    # its metric name was neither counted nor quarantined (the metric is read from the line's start).
    raw, lake = tmp_path / "raw", tmp_path / "lake"
    fleetsim.simulate(raw, DAY, requests=300, seed=3, defects=False, invoices=True)
    prom = raw / DAY.isoformat() / SITE / "dcgm" / f"dcgm_m-h200-01_{DAY}.prom"
    lines = prom.read_text().splitlines(keepends=True)
    samples = [i for i, s in enumerate(lines, start=1)
               if ("DCGM_FI_DEV_POWER_USAGE" in s or "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION" in s) and s[0] != "#"]
    damaged = samples[0]
    lines[damaged - 1] = "\x1f" + lines[damaged - 1]
    prom.write_text("".join(lines))
    ingest_partition("power_readings", DAY, SITE, raw, Lake(lake), load_inventory(raw / "inventory.yaml"))
    audit, quarantine = scan(lake, "ingest_audit"), scan(lake, "quarantine")
    name = prom.relative_to(raw).as_posix()
    r = audit.filter(pl.col("source_file") == name).to_dicts()[0]
    assert (r["rows_read"], r["rows_accepted"], r["rows_quarantined"]) == (len(samples), len(samples) - 1, 1)
    assert quarantine.filter(pl.col("source_file") == name).select("source_row", "reason").rows() == [
        (damaged, "malformed_record")]
