"""The demo fleet simulator: deterministic, in the raw formats, with exactly the defects it reports."""

import csv
import hashlib
import json
import re
from collections import Counter
from datetime import date, datetime, timedelta, UTC
from pathlib import Path

import pytest

import fleetsim
from fleetsim import Fleet, FleetSpec
from lake.inventory import load_inventory

DAY = date(2026, 11, 28)  # a Saturday, not the last day of its month
REQUESTS = 10_000

# docs/raw-formats.md: every file the simulator may write, relative to the raw directory.
LAYOUT = {
    "inventory": r"inventory\.yaml",
    "prices": r"prices/[^/]+\.csv",
    "profiles": r"profiles/[^/]+\.csv",
    "assets": r"\d{4}-\d\d-\d\d/_fleet/assets/[^/]+\.csv",
    "requests": r"\d{4}-\d\d-\d\d/(?P<site>[^/_][^/]*)/requests/[^/]+\.jsonl",
    "dcgm": r"\d{4}-\d\d-\d\d/(?P<site>[^/_][^/]*)/dcgm/[^/]+\.prom",
    "ipmi": r"\d{4}-\d\d-\d\d/(?P<site>[^/_][^/]*)/ipmi/ipmi_sdr_(?P<host>[^_/]+)_[^/]*\.txt",
    "redfish": r"\d{4}-\d\d-\d\d/(?P<site>[^/_][^/]*)/redfish/redfish_(?P<host>[^_/]+)_[^/]*\.jsonl",
    "facility": r"\d{4}-\d\d-\d\d/(?P<site>[^/_][^/]*)/facility/[^/]+\.csv",
    "focus": r"\d{4}-\d\d-\d\d/(?P<site>[^/_][^/]*)/focus/[^/]+\.csv",
    "electricity": r"\d{4}-\d\d-\d\d/(?P<site>[^/_][^/]*)/electricity/[^/]+\.csv",
    "colocation": r"\d{4}-\d\d-\d\d/(?P<site>[^/_][^/]*)/colocation/[^/]+\.csv",
}
DCGM_RECORD = re.compile(r"^(DCGM_FI_DEV_POWER_USAGE|DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION)\{")


def tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def family_of(rel: str) -> str:
    for family, pattern in LAYOUT.items():
        if re.fullmatch(pattern, rel):
            return family
    raise AssertionError(f"{rel} is not a path of docs/raw-formats.md")


def count_records(path: Path, family: str) -> int:
    text = path.read_text()
    lines = text.splitlines()
    if family in ("requests", "redfish"):
        return sum(1 for line in lines if line.strip())
    if family == "dcgm":
        return sum(1 for line in lines if DCGM_RECORD.match(line))
    if family == "ipmi":
        return sum(1 for line in lines if line.startswith("Timestamp:"))
    if family == "inventory":
        return len(load_inventory(path).nodes)
    return len(lines) - 1  # CSV data rows


def request_lines(root: Path):
    """(file, line number, raw line) of every request log line."""
    for p in sorted(root.glob("*/*/requests/*.jsonl")):
        for i, line in enumerate(p.read_text().splitlines(), 1):
            yield p, i, line


@pytest.fixture(scope="module")
def day_dir(tmp_path_factory) -> tuple[Path, fleetsim.SimulationSummary]:
    root = tmp_path_factory.mktemp("raw")
    return root, fleetsim.simulate(root, DAY, requests=REQUESTS, seed=7)


def test_same_seed_gives_identical_files_and_another_seed_does_not(day_dir, tmp_path):
    root, _ = day_dir
    fleetsim.simulate(tmp_path / "again", DAY, requests=REQUESTS, seed=7)
    fleetsim.simulate(tmp_path / "other", DAY, requests=REQUESTS, seed=8)
    assert tree_digest(tmp_path / "again") == tree_digest(root)
    assert tree_digest(tmp_path / "other") != tree_digest(root)


def test_inventory_validates_and_names_nodes_like_the_test_inventory(day_dir):
    root, summary = day_dir
    inv = load_inventory(root / "inventory.yaml")
    ids = {n.id for n in inv.nodes}
    assert {"m-h200-01", "r-l40s-std-01", "r-l40s-bat-01", "c-h100-01"} <= ids
    assert {m.id for m in inv.meters} >= {"m-h200-01/bmc", "r-l40s-std-01/bmc", "metro-east/facility"}
    assert len(inv.models) >= 5 and {t.id for t in inv.tiers} == {"premium", "standard", "batch"}
    assert next(t for t in inv.tiers if t.id == "premium").idle_policy == "reserved"
    assert all(n.cloud_resource_id for n in inv.nodes if n.pool == "cloud-h100")
    assert summary.nodes == {p.id: sum(1 for n in inv.nodes if n.pool == p.id) for p in inv.pools}


def test_layout_matches_raw_formats_and_counts_match_the_files(day_dir):
    root, summary = day_dir
    inv = load_inventory(root / "inventory.yaml")
    node_site = inv.nodes_frame().collect().select("node_id", "site_id").rows()
    site_of = dict(node_site)
    files, records = Counter(), Counter()
    for p in sorted(root.rglob("*")):
        if not p.is_file():
            continue
        rel = p.relative_to(root).as_posix()
        family = family_of(rel)
        m = re.fullmatch(LAYOUT[family], rel)
        if "site" in m.groupdict():
            assert m["site"] in inv.site_ids, rel
        if "host" in m.groupdict():
            assert site_of[m["host"]] == m["site"], rel
        files[family] += 1
        records[family] += count_records(p, family)
    assert dict(files) == summary.files
    assert dict(records) == summary.records
    assert sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) == summary.bytes


def test_every_request_is_served_by_a_node_of_its_folders_site_inside_the_day(day_dir):
    root, summary = day_dir
    inv = load_inventory(root / "inventory.yaml")
    site_of = dict(inv.nodes_frame().collect().select("node_id", "site_id").rows())
    start = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC)
    local = 0
    for p, _, line in request_lines(root):
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue  # the truncated line, counted below
        site = p.parent.parent.name
        assert site_of[r["server.address"]] == site
        arrived = datetime.fromisoformat(r["time"])
        local += arrived.utcoffset() != timedelta(0)
        assert start <= arrived and arrived + timedelta(seconds=r["gen_ai.latency.e2e"]) < start + timedelta(days=1)
        assert r["gen_ai.latency.time_in_queue"] + r["gen_ai.latency.time_in_model_prefill"] <= r["gen_ai.latency.e2e"]
        # Prompt and completion text are in the raw logs: the ingest must drop them.
        assert "gen_ai.input.messages" in r and "gen_ai.output.messages" in r
    assert local == summary.local_offset_lines > 0


def test_defects_are_exactly_the_ones_summarised(day_dir):
    root, summary = day_dir
    assert summary.defects == {"gpu_counter_reset": 1, "negative_output_tokens": 1, "exact_duplicate": 3,
                               "bmc_gap": 20, "malformed_line": 1, "dcgm_blank_energy": 3,
                               "conflicting_duplicate": 1}
    assert summary.expected_quarantine == {
        "requests": {"exact_duplicate": 3, "conflicting_duplicate": 2, "malformed_record": 1, "negative_value": 1},
        "power_readings": {"sensor_not_supported": 3, "sensor_no_reading": 20}}

    # Requests, read back from the raw text.
    by_id: dict[str, list[str]] = {}
    malformed, negative = 0, 0
    for _, _, line in request_lines(root):
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            malformed += 1
            continue
        by_id.setdefault(r["gen_ai.response.id"], []).append(line)
        negative += r["gen_ai.usage.output_tokens"] < 0
    copies = {k: v for k, v in by_id.items() if len(v) > 1}
    exact = sum(len(v) - 1 for v in copies.values() if len(set(v)) == 1)
    conflicting = [k for k, v in copies.items() if len(set(v)) > 1]
    assert (malformed, negative, exact, len(conflicting)) == (1, 1, 3, 1)

    # Power, read back from the raw text.
    blanks = resets = 0
    for p in root.glob("*/*/dcgm/*.prom"):
        last: dict[str, int] = {}
        for line in p.read_text().splitlines():
            if line.startswith("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{"):
                labels, value, _ = line.rsplit(" ", 2)
                if int(value) >= 9223372036854775792:
                    blanks += 1
                    continue
                resets += int(value) < last.get(labels, 0)
                last[labels] = int(value)
    silent = 0
    for p in root.glob("*/*/ipmi/*.txt"):
        lines = p.read_text().splitlines()
        silent += sum(1 for a, b in zip(lines, lines[1:] + ["Timestamp:"], strict=True) if a.startswith("Timestamp:")
                      and b.startswith("Timestamp:"))
    assert (blanks, resets, silent) == (3, 1, 20)
    # The log points at each defect.
    for d in summary.defect_log:
        assert (root / d["file"]).is_file()


def test_a_clean_day_has_no_defects(tmp_path):
    s = fleetsim.simulate(tmp_path, DAY, requests=REQUESTS, seed=3, defects=False)
    assert s.defects == {} and s.expected_quarantine == {} and s.local_offset_lines == 0
    ids = [json.loads(line)["gen_ai.response.id"] for _, _, line in request_lines(tmp_path)]
    assert len(ids) == len(set(ids)) == REQUESTS


def test_invoices_only_on_the_last_day_of_the_month_or_when_asked(day_dir, tmp_path):
    root, summary = day_dir
    assert not summary.invoices and not list(root.glob("*/*/electricity/*.csv"))
    last = fleetsim.simulate(tmp_path / "a", date(2026, 11, 30), requests=REQUESTS)
    asked = fleetsim.simulate(tmp_path / "b", DAY, requests=REQUESTS, invoices=True)
    assert last.invoices and asked.invoices
    assert asked.files["electricity"] == asked.files["colocation"] == 1
    for p in (tmp_path / "b").glob("*/*/*/*.csv"):
        if p.parent.name not in ("electricity", "colocation"):
            continue
        for row in csv.DictReader(p.open()):
            price = float(row.get("rate") or row.get("unit_price"))
            assert abs(float(row["quantity"]) * price - float(row["amount"])) <= 0.01 + 1e-9
            assert (row["period_start"], row["period_end"]) == ("2026-11-01", "2026-12-01")
    # The demand charge is set on the simulated day, where the lake has the slots that caused it.
    assert asked.facts["electricity_invoice"]["peak_on_simulated_day"]


def test_the_fleet_grows_with_the_requests():
    spec = FleetSpec()
    small, big, huge = (spec.node_counts(n) for n in (10_000, 10_000_000, 100_000_000))
    assert sum(small.values()) <= 12 and all(n >= spec.pool(p).min_nodes >= 1 for p, n in small.items())
    assert all(big[p] >= small[p] for p in small) and sum(big.values()) > 5 * sum(small.values())
    assert sum(huge.values()) > 5 * sum(big.values())
    fleet = Fleet.build(spec, 100_000_000)
    assert len({n.id for n in fleet.nodes}) == len(fleet.nodes)
    assert sum(spec.pool_requests(123_457).values()) == 123_457
