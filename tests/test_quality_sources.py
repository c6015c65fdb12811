"""Source checks (transforms/quality/sources.py) in real Dagster runs of a simulated day, on the
real BMC samples, and in `inferledger check-data`.

Issue 19: a whole cost source (a FOCUS bill without `BilledCost`, a register without `asset_id`,
an invoice without `amount`) was quarantined whole and the run stayed green with the cost gone
(item 8); overlapping facility intervals fell back to the design PUE unnoticed (item 14); files
no source reads were listed nowhere a person looks (item 9). Each now fails a named check: a
blocking one before attribution for the first two, a warning for the last."""

import csv
import shutil
from datetime import date
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

import fleetsim
from lake.store import Lake
from pipelines.checkdata import FASRC_SENSORS, bmc_sample_inventory
from pipelines.cli import main
from pipelines.ingest import ingest_partition
from pipelines.partitions import register_sites
from pipelines.suites import validate_sources
from tests.test_pipeline_ingest import DAY, SITES
from tests.test_quality_pipeline import evaluations, failed, ingest_site, materialized, register_and_attribute
from transforms.quality.sources import DATASETS, LOST_SHARE, PartitionSources, catalog, judge_sources

REAL = Path(__file__).parent / "data" / "real"
D = DAY.isoformat()


@pytest.fixture(scope="module")
def clean_raw(tmp_path_factory):
    raw = tmp_path_factory.mktemp("sources") / "raw"
    fleetsim.simulate(raw, DAY, requests=3_000, seed=5, invoices=True)
    return raw


@pytest.fixture
def raw(clean_raw, tmp_path):
    shutil.copytree(clean_raw, tmp_path / "raw")
    return tmp_path / "raw"


def instance() -> dg.DagsterInstance:
    inst = dg.DagsterInstance.ephemeral()
    register_sites(inst, SITES)
    return inst


def drop_column(path: Path, column: str) -> int:
    """Remove `column` from a CSV file; returns its number of data rows."""
    rows = list(csv.reader(path.open(newline="")))
    i = rows[0].index(column)
    with path.open("w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows([r[:i] + r[i + 1:] for r in rows])
    return len(rows) - 1


def assert_every_file_accounted(lake: Path) -> None:
    for part in lake.glob("ingest_audit/date=*/site=*/*.parquet"):
        a = pl.read_parquet(part)
        assert (a["rows_read"] == a["rows_accepted"] + a["rows_quarantined"]).all(), part
        assert (a.filter(pl.col("status") == "ignored")["rows_read"] == 0).all(), part


def test_a_whole_cost_source_lost_fails_a_blocking_check_naming_file_folder_and_fix(raw, tmp_path, capsys):
    lake = tmp_path / "lake"
    day = raw / D
    focus = next((day / "cloud-use1" / "focus").glob("*.csv"))
    invoice = next((day / "remote-plains" / "electricity").glob("*.csv"))
    register = next((day / "_fleet" / "assets").glob("*.csv"))
    n_focus, n_invoice, n_register = (drop_column(focus, "BilledCost"), drop_column(invoice, "amount"),
                                      drop_column(register, "asset_id"))
    inst = instance()
    runs = {site: ingest_site(raw, lake, inst, site) for site in SITES}

    def lost(res) -> list[str]:
        return evaluations(res)["cost_lines.sources.not_lost"].metadata["examples"].data

    # Every GX expectation passes on what was accepted (nothing): only the source check sees the loss.
    assert failed(runs["cloud-use1"]) == {"cost_lines.sources.not_lost": "ERROR"}
    assert evaluations(runs["cloud-use1"])["cost_lines.sources.not_lost"].metadata["unexpected_count"].value == 1
    assert lost(runs["cloud-use1"]) == [
        f"{D}/cloud-use1/focus/{focus.name}: {n_focus} of {n_focus} records quarantined (missing_required_field "
        f"{n_focus}); fix: column `BilledCost` is missing from {D}/cloud-use1/focus/{focus.name}; add it (FOCUS 1.0 "
        "column BilledCost: the amount invoiced, in BillingCurrency); then re-run the day's ingest",
        f"folder {D}/cloud-use1/focus/ as a whole: {n_focus} of {n_focus} records lost, 1 of 1 file(s) mostly lost"]
    assert failed(runs["remote-plains"]) == {"cost_lines.sources.not_lost": "ERROR"}
    assert lost(runs["remote-plains"])[0].startswith(
        f"{D}/remote-plains/electricity/{invoice.name}: {n_invoice} of {n_invoice} records quarantined "
        f"(missing_required_field {n_invoice})")
    assert runs["metro-east"].success and failed(runs["metro-east"]) == {}
    # The daily run: the register lost every asset, so the request costs are not attributed.
    daily = register_and_attribute(raw, lake, inst)
    assert failed(daily) == {"assets.sources.not_lost": "ERROR"}
    assert evaluations(daily)["assets.sources.not_lost"].metadata["examples"].data[0].startswith(
        f"{D}/_fleet/assets/{register.name}: {n_register} of {n_register} records quarantined "
        f"(missing_required_field {n_register}); fix: column `asset_id` is missing from {D}/_fleet/assets/"
        f"{register.name}; add it")
    assert materialized(daily) == ["asset_register", "market_prices"]
    assert_every_file_accounted(lake)

    # `inferledger check-data` names the same files, folders and fixes, and exits 1.
    code = main(["check-data", "--raw", str(raw), "--lake", str(lake), "--date", D, "--no-real",
                 "--warehouse", str(tmp_path / "none.duckdb"), "--json", str(tmp_path / "check.json")])
    shown = " ".join(capsys.readouterr().out.split())
    assert code == 1
    for site, dataset, file in (("cloud-use1", "cost_lines", focus), ("remote-plains", "cost_lines", invoice),
                                ("_fleet", "assets", register)):
        assert f"error {dataset}.sources.not_lost on ingest_audit/date={D}/site={site}/{dataset}: 1 unexpected" in shown
        assert f"{file.relative_to(raw).as_posix()}: " in shown


def test_a_file_delivered_twice_loses_nothing(raw, tmp_path):
    focus = next((raw / D / "cloud-use1" / "focus").glob("*.csv"))
    shutil.copy(focus, focus.with_name("again_" + focus.name))
    lake = tmp_path / "lake"
    res = ingest_site(raw, lake, instance(), "cloud-use1")
    assert res.success and failed(res) == {}
    assert evaluations(res)["cost_lines.sources.not_lost"].passed
    audit = pl.read_parquet(lake / "ingest_audit" / f"date={D}" / "site=cloud-use1" / "cost_lines.parquet")
    n = sum(1 for _ in focus.open()) - 1
    assert audit.select("source_file", "rows_read", "rows_accepted", "rows_quarantined").rows() == [
        (f"{D}/cloud-use1/focus/again_{focus.name}", n, n, 0),  # first by file name: its lines are kept
        (f"{D}/cloud-use1/focus/{focus.name}", n, 0, n)]
    q = pl.read_parquet(lake / "quarantine" / f"date={D}" / "site=cloud-use1" / "cost_lines.parquet")
    assert set(q["reason"]) == {"exact_duplicate"}


def ingest_ipmi(tmp_path: Path, files: dict[str, str]):
    day = date(2025, 6, 3)
    folder = tmp_path / "raw" / day.isoformat() / "mghpcc" / "ipmi"
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    lake = Lake(tmp_path / "lake")
    ingest_partition("power_readings", day, "mghpcc", tmp_path / "raw", lake,
                     bmc_sample_inventory("ipmi", FASRC_SENSORS))
    res = validate_sources(lake.root, "power_readings", day, "mghpcc")
    audit = pl.read_parquet(lake.root / "ingest_audit" / f"date={day}" / "site=mghpcc" / "power_readings.parquet")
    assert (audit["rows_read"] == audit["rows_accepted"] + audit["rows_quarantined"]).all()
    return res, audit


def test_real_ipmi_dumps_with_a_silent_bmc_lose_nothing(tmp_path):
    # Harvard FASRC: holygpu8a11101's BMC stopped answering after 30 of its 60 samples. A sensor
    # without a reading is the device's word, not a lost record: attribution fills the gap.
    names = sorted(p.name for p in (REAL / "harvard_fasrc_ipmi_sdr").glob("ipmi_sdr_*.txt"))
    res, audit = ingest_ipmi(tmp_path, {n: (REAL / "harvard_fasrc_ipmi_sdr" / n).read_text() for n in names})
    assert audit.select("rows_read", "rows_accepted", "rows_quarantined").rows() == [(60, 60, 0), (60, 30, 30),
                                                                                     (60, 60, 0)]
    assert res.success and res.warnings == []  # 30 of 60 without a reading is not more than half


def test_a_bmc_silent_for_a_whole_file_warns(tmp_path):
    # The silent half of holygpu8a11101's dump alone: every sample without a reading.
    name = "ipmi_sdr_holygpu8a11101_2025-06-03_0208-0308UTC.txt"
    lines = (REAL / "harvard_fasrc_ipmi_sdr" / name).read_text().splitlines(keepends=True)
    res, audit = ingest_ipmi(tmp_path, {name: "".join(lines[8340:])})
    assert audit.select("rows_read", "rows_accepted", "rows_quarantined").rows() == [(30, 0, 30)]
    assert res.success  # nothing lost: no error
    (w,) = res.warnings
    assert (w.name, w.unexpected_count, w.examples) == (
        "power_readings.sources.have_readings", 1,
        [f"2025-06-03/mghpcc/ipmi/{name}: 30 of 30 records without a reading; check the BMC or exporter "
         "(attribution estimates the meter's energy meanwhile)"])


def test_threshold_is_more_than_half_of_the_records_not_duplicated():
    audit = pl.DataFrame({"source_file": ["d/s/f/a.csv", "d/s/f/b.csv", "d/s/g/c.csv", "d/s/g/d.csv"],
                          "rows_read": [10, 10, 4, 1], "rows_accepted": [5, 4, 0, 0], "rows_quarantined": [5, 6, 4, 1],
                          "status": ["read", "read", "read", "unreadable"],
                          "status_detail": [None, None, None, "`d.csv` is not a CSV; re-export it"]})
    reasons = pl.DataFrame({"source_file": ["d/s/f/a.csv", "d/s/f/b.csv", "d/s/g/c.csv", "d/s/g/c.csv", "d/s/g/d.csv"],
                            "reason": ["invalid_value", "invalid_value", "exact_duplicate", "invalid_value",
                                       "unreadable_file"],
                            "n": [5, 6, 3, 1, 1],
                            "detail": ["x", "y", "dup", "z", "`d.csv` is not a CSV; re-export it"]})
    (result, ignored) = judge_sources("cost_lines", PartitionSources(audit, reasons))
    # a: 5 of 10 (not more than half); b: 6 of 10; c: 1 of the 1 record not duplicated; d: unreadable.
    assert LOST_SHARE == 0.5 and result.unexpected_count == 3
    assert result.examples == [
        "d/s/f/b.csv: 6 of 10 records quarantined (invalid_value 6); fix: y; then re-run the day's ingest",
        "d/s/g/c.csv: 1 of 4 records quarantined (invalid_value 1); fix: z; then re-run the day's ingest",
        "d/s/g/d.csv: 1 of 1 records quarantined (unreadable_file 1); fix: `d.csv` is not a CSV; re-export it; then "
        "re-run the day's ingest",
        "folder d/s/f/ as a whole: 11 of 20 records lost, 1 of 2 file(s) mostly lost",
        "folder d/s/g/ as a whole: 2 of 5 records lost, 2 of 2 file(s) mostly lost"]
    assert ignored.success


def test_overlapping_facility_intervals_fail_naming_meter_and_intervals(raw, tmp_path):
    # A second reading of the facility meter, 10:05-10:20 UTC, across the export's 10:00-10:15 and
    # 10:15-10:30: the site's hour 10 could not be measured and would use the design PUE.
    facility = next((raw / D / "metro-east" / "facility").glob("*.csv"))
    with facility.open("a") as f:
        f.write(f"metro-east/facility,{D}T05:05:00-05:00,15,1.500\n")
    lake = tmp_path / "lake"
    res = ingest_site(raw, lake, instance(), "metro-east")
    assert failed(res) == {"power_readings.intervals.no_overlap": "ERROR"}
    ev = evaluations(res)["power_readings.intervals.no_overlap"]
    tail = ("two exports cover the same time: withdraw or correct one and re-run the day (until then these hours use "
            "the design PUE)")
    assert ev.metadata["unexpected_count"].value == 2
    assert ev.metadata["examples"].data == [
        f"meter metro-east/facility: interval {D}T10:05:00Z-{D}T10:20:00Z overlaps {D}T10:00:00Z-{D}T10:15:00Z; {tail}",
        f"meter metro-east/facility: interval {D}T10:15:00Z-{D}T10:30:00Z overlaps {D}T10:05:00Z-{D}T10:20:00Z; {tail}"]
    assert_every_file_accounted(lake)


def test_files_no_source_reads_are_listed_in_a_warning(raw, tmp_path):
    site = raw / D / "cloud-use1"
    (site / "focus" / "readme.txt").write_text("exported by hand\n")
    (site / "misc").mkdir()
    (site / "misc" / "notes.csv").write_text("a,b\n1,2\n")
    lake = tmp_path / "lake"
    inst = instance()
    res = ingest_site(raw, lake, inst, "cloud-use1")
    assert res.success and failed(res) == {"cost_lines.files.ignored": "WARN"}
    ev = evaluations(res)["cost_lines.files.ignored"]
    assert ev.metadata["unexpected_count"].value == 1
    assert ev.metadata["examples"].data[0].startswith(f"{D}/cloud-use1/focus/readme.txt: `readme.txt` is not read")
    for s in SITES:
        if s != "cloud-use1":
            assert ingest_site(raw, lake, inst, s).success
    daily = register_and_attribute(raw, lake, inst)  # an unknown folder is the fleet-wide ingest's to list
    assert daily.success and failed(daily) == {"assets.files.ignored": "WARN"}
    (example,) = evaluations(daily)["assets.files.ignored"].metadata["examples"].data
    assert example.startswith(f"{D}/cloud-use1/misc/notes.csv: ")
    assert materialized(daily) == ["asset_register", "market_prices", "request_costs"]  # a warning blocks nothing
    assert_every_file_accounted(lake)


def test_every_source_check_is_documented():
    doc = (Path(__file__).parent.parent / "docs" / "data-quality.md").read_text()
    for dataset in DATASETS:
        for c in catalog(dataset):
            rule = c.name.split(".", 1)[1]
            assert f"`{c.name}`" in doc or f"`<dataset>.{rule}`" in doc, c.name
            listed = f"{rule}` ({', '.join(DATASETS)}) | {c.severity} |"  # `<dataset>.<rule>` (every dataset)
            assert f"{rule}` | {c.severity} |" in doc or listed in doc, c.name


def test_an_unreadable_file_is_wholly_lost(raw, tmp_path):
    # A corrupt compressed log (the other engineer's `unreadable_file`: one record, quarantined).
    (raw / D / "metro-east" / "requests" / "m-extra.jsonl.gz").write_bytes(b"not gzip at all\n")
    lake = tmp_path / "lake"
    res = ingest_site(raw, lake, instance(), "metro-east")
    assert failed(res) == {"requests.sources.not_lost": "ERROR"}
    # The file is named; its folder (the site's other logs, read whole) is not mostly lost.
    (example,) = evaluations(res)["requests.sources.not_lost"].metadata["examples"].data
    assert example.startswith(f"{D}/metro-east/requests/m-extra.jsonl.gz: 1 of 1 records quarantined "
                              "(unreadable_file 1); fix: `m-extra.jsonl.gz` ")
    assert_every_file_accounted(lake)


def test_one_site_losing_a_source_does_not_keep_the_other_sites_from_being_ingested(raw, tmp_path, capsys):
    # The CLI runs the sites one after another: a blocking failure at the first site used to stop
    # the command there, leaving the later sites and the asset register not ingested at all.
    focus = next((raw / D / "cloud-use1" / "focus").glob("*.csv"))
    drop_column(focus, "BilledCost")
    lake = tmp_path / "lake"
    with pytest.raises(SystemExit) as stop:
        main(["ingest", "--date", D, "--raw", str(raw), "--lake", str(lake)])
    assert stop.value.code == 1
    said = " ".join(capsys.readouterr().err.split())
    assert "cost_lines.sources.not_lost" in said and f"{D}/cloud-use1/focus/{focus.name}" in said
    for site in SITES:
        for dataset in ("requests", "power_readings", "cost_lines"):
            audit = lake / "ingest_audit" / f"date={D}" / f"site={site}" / f"{dataset}.parquet"
            assert audit.is_file(), (site, dataset)
    assert (lake / "ingest_audit" / f"date={D}" / "site=_fleet" / "assets.parquet").is_file()
    assert not (lake / "request_costs").exists()  # nothing after the ingest ran
    assert_every_file_accounted(lake)
