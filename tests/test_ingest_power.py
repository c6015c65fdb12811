"""Power-reading parsers: real public samples and hand-made defect fixtures, exact numbers.

Every case runs the pipeline's path: parser -> classify -> accepted / quarantined / audit,
and checks `rows_read = rows_accepted + rows_quarantined` per file.
"""

import csv
import json
from datetime import date, datetime, UTC
from pathlib import Path

import polars as pl
import pytest

from lake.inventory import load_inventory
from lake.json_lines import redfish_sensor_fields
from lake.readers import scan_csv_text, scan_parquet_files, scan_text_lines
from pipelines.checkdata import FASRC_SENSORS, bmc_sample_inventory
from transforms.contracts import POWER_READINGS
from transforms.ingest.common import accepted, audit, classify, quarantined
from transforms.ingest.power import (
    parse_canonical_power,
    parse_dcgm_prometheus,
    parse_facility_csv,
    parse_ipmi_sdr,
    parse_redfish_sensors,
)
from transforms.ingest.power_dcgm import DCGM_MEASURES
from transforms.quality import SuiteContext, validate_frame

DATA = Path(__file__).parent / "data"
REAL = DATA / "real"
INV = load_inventory(DATA / "inventory_small.yaml")
DAY = date(2026, 11, 28)
T0 = 1795824000000  # 2026-11-28T00:00:00Z in ms


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


bmc_inventory = bmc_sample_inventory  # a one-site fleet of BMC hosts (pipelines/checkdata.py)


def ingest(parsed: pl.LazyFrame, day: date) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The pipeline's path after a parser: (accepted rows, quarantine, audit), audit identity checked."""
    classified = classify(parsed, POWER_READINGS, day, day_column="ts").collect().lazy()
    rows = accepted(classified, POWER_READINGS).collect()
    quarantine = quarantined(classified, POWER_READINGS).collect()
    counts = audit(classified, POWER_READINGS).collect()
    assert (counts["rows_read"] == counts["rows_accepted"] + counts["rows_quarantined"]).all()
    assert counts["rows_quarantined"].sum() == quarantine.height
    return rows, quarantine, counts


def text_files(root: Path, files: dict[str, str]) -> pl.LazyFrame:
    for name, text in files.items():
        (root / name).write_text(text)
    return scan_text_lines([root / n for n in files], root)


def reasons(quarantine: pl.DataFrame) -> list[tuple[int, str]]:
    return list(quarantine.select("source_row", "reason").iter_rows())


def counts_of(audit_frame: pl.DataFrame) -> dict[str, tuple[int, int, int]]:
    return {r["source_file"]: (r["rows_read"], r["rows_accepted"], r["rows_quarantined"])
            for r in audit_frame.iter_rows(named=True)}


# --- shape -------------------------------------------------------------------------------

PARSED_COLUMNS = [*POWER_READINGS.names, "_source_file", "_source_row", "_reason", "_detail"]


@pytest.mark.parametrize("parser, raw, measure", [
    (parse_dcgm_prometheus, scan_text_lines([], Path(".")), True),
    (parse_ipmi_sdr, scan_text_lines([], Path(".")), False),
    (parse_redfish_sensors, redfish_sensor_fields(scan_text_lines([], Path("."))), True),
    (parse_facility_csv, scan_csv_text([], Path(".")), False),
    (parse_canonical_power, scan_csv_text([], Path(".")), False),
])
def test_parsers_return_the_parsed_shape_even_without_files(parser, raw, measure):
    out = parser(raw, INV, "metro-east").collect()
    assert out.columns == PARSED_COLUMNS + (["_measure"] if measure else [])
    assert out.height == 0
    assert dict(out.select(POWER_READINGS.names).schema) == dict(POWER_READINGS.schema)
    assert out.schema["_source_row"] == pl.Int64


# --- real samples: Harvard FASRC ipmitool sdr ------------------------------------------

IPMI_DIR = REAL / "harvard_fasrc_ipmi_sdr"
LICHTMAN = "ipmi_sdr_lichtmandce04_2025-06-03_first60min.txt"
HOLYGPU2 = "ipmi_sdr_holygpu2c0701_2025-06-03_first60min.txt"
HOLYGPU8 = "ipmi_sdr_holygpu8a11101_2025-06-03_0208-0308UTC.txt"
# Node power per host, decided from the files (see the two tests below): on the Lenovo nodes
# lichtmandce04 and holygpu2c0701 `Sys Power` is the AC input (the PSUs' AC inputs add up to it);
# on the GPU node holygpu8a11101 `Sys Power` is 20 W (system board only, `GPU Board Power` has no
# reading), `PSU Power` 115-135 W (one supply) and `Chassis Power` 450 W, the whole chassis's
# input: the default (IPMI_DEFAULT_SENSORS) reads it.


def parse_ipmi_file(name: str, sensors: dict[str, str | None]) -> pl.LazyFrame:
    return parse_ipmi_sdr(scan_text_lines([IPMI_DIR / name], IPMI_DIR), bmc_inventory("ipmi", sensors), "mghpcc")


def test_ipmi_real_samples_exact_counts_and_values():
    raw = scan_text_lines(sorted(IPMI_DIR.glob("ipmi_sdr_*.txt")), IPMI_DIR)
    rows, quarantine, counts = ingest(parse_ipmi_sdr(raw, bmc_inventory("ipmi", FASRC_SENSORS), "mghpcc"),
                                      date(2025, 6, 3))
    assert counts_of(counts) == {HOLYGPU2: (60, 60, 0), HOLYGPU8: (60, 30, 30), LICHTMAN: (60, 60, 0)}
    per_meter = {
        m: (g.height, g["power_w"][0], g["ts"][0], g["power_w"][-1], g["ts"][-1], g["power_w"].sum())
        for (m,), g in rows.partition_by("meter_id", as_dict=True).items()
    }
    assert per_meter == {
        "lichtmandce04/bmc": (60, 400.0, utc(2025, 6, 3, 0, 0, 11), 400.0, utc(2025, 6, 3, 0, 59, 12), 24090.0),
        "holygpu2c0701/bmc": (60, 35.0, utc(2025, 6, 3, 0, 0, 11), 35.0, utc(2025, 6, 3, 0, 59, 12), 2100.0),
        # Chassis Power, 450 W in each of the 30 answered samples: 30 x 450 = 13,500.
        "holygpu8a11101/bmc": (30, 450.0, utc(2025, 6, 3, 2, 8, 8), 450.0, utc(2025, 6, 3, 2, 37, 7), 13500.0),
    }
    assert set(rows["scope"]) == {"node"} and set(rows["source"]) == {"ipmi"} and not rows["counter_reset"].any()
    # The BMC of holygpu8a11101 stopped answering at 02:38: 30 `Timestamp:` lines with nothing under them.
    assert set(quarantine["reason"]) == {"sensor_no_reading"}
    assert quarantine["source_row"].to_list() == list(range(8341, 8371))
    assert quarantine["detail"][0] == "sensor `Chassis Power` gave no Watts reading in this sample (no line)"


@pytest.mark.parametrize("name, host", [(LICHTMAN, "lichtmandce04"), (HOLYGPU2, "holygpu2c0701")])
def test_ipmi_sys_power_is_the_default_and_the_psus_ac_input(name, host):
    def watts(sensor):
        return parse_ipmi_file(name, {host: sensor}).collect().sort("_source_row")["power_w"]

    sys_power = watts(None)
    assert sys_power.equals(watts("Sys Power"))  # the default picks Sys Power
    ac_in = watts("PSU1 AC In Pwr") + watts("PSU2 AC In Pwr")
    # Sampled a moment apart and quantized to 5 W, the AC inputs add up to Sys Power within 20 W.
    assert ac_in.null_count() == 0 and (sys_power - ac_in).abs().max() <= 20


def test_ipmi_holygpu8_default_is_the_chassis_input_and_the_inventory_names_another():
    def watts(sensor):
        return parse_ipmi_file(HOLYGPU8, {"holygpu8a11101": sensor}).collect()["power_w"].drop_nulls()

    # The default reads Chassis Power (450 W), not Sys Power (20 W, the system board alone).
    assert watts(None).to_list() == [450.0] * 30
    assert watts(None).equals(watts("Chassis Power"))
    assert set(watts("Sys Power")) == {20.0}  # a meter's `sensor:` still names any sensor
    # PSU Power, one supply: 18 samples at 125 W, 7 at 115, 5 at 135 = 2250 + 805 + 675 = 3730 W summed.
    assert watts("PSU Power").value_counts(sort=True).rows() == [(125.0, 18), (115.0, 7), (135.0, 5)]
    assert watts("PSU Power").sum() == 3730.0
    assert parse_ipmi_file(HOLYGPU8, {"holygpu8a11101": "GPU Board Power"}).collect()["power_w"].null_count() == 60


@pytest.mark.parametrize("holygpu8_sensor, below", [(None, {"holygpu2c0701/bmc": 60}),
                                                    ("Sys Power", {"holygpu2c0701/bmc": 60, "holygpu8a11101/bmc": 30})])
def test_node_power_below_idle_warns(holygpu8_sensor, below):
    """The power_readings suite's warning `power_w.not_below_node_idle` on the real dumps, every node
    at `idle_w` 300 W (bmc_sample_inventory), so a floor of 0.9 x 300 = 270 W: lichtmandce04 reads
    400 W (60 samples, none below),
    holygpu2c0701 35 W (its 60 samples below: the site was powered down), holygpu8a11101 450 W by
    default (Chassis Power) but 20 W when the inventory names `Sys Power` (its 30 answered samples)."""
    inv = bmc_sample_inventory("ipmi", {**FASRC_SENSORS, "holygpu8a11101": holygpu8_sensor})
    rows, _, _ = ingest(parse_ipmi_sdr(scan_text_lines(sorted(IPMI_DIR.glob("ipmi_sdr_*.txt")), IPMI_DIR), inv,
                                       "mghpcc"), date(2025, 6, 3))
    result = validate_frame("power_readings", rows, SuiteContext(inventory=inv, day=date(2025, 6, 3)))
    (idle,) = [r for r in result.results if r.name == "power_readings.power_w.not_below_node_idle"]
    assert (idle.severity, idle.success, idle.unexpected_count) == ("warning", False, sum(below.values()))
    readings = {tuple(e) if isinstance(e, list) else e for e in idle.examples}
    assert readings <= {(35.0, 270.0), (20.0, 270.0)} and (35.0, 270.0) in readings
    # Only warnings: no error of the suite fails on these samples.
    assert all(r.success for r in result.results if r.severity == "error")


# --- real samples: DMTF Redfish mock-ups and the DCGM field catalogue ----------------------

REDFISH_DIR = REAL / "redfish_power_mockups"
RACKMOUNT_SENSORS = ["TotalPower", "TotalEnergy", "PS1InputPower", "PS1Energy"]


def redfish_mockup_file(tmp_path: Path) -> pl.LazyFrame:
    """The 1U rackmount Sensor mock-ups (pretty-printed) compacted to one JSON line each, plus
    a temperature Sensor, as a poller of host `rackmount1` would write them."""
    lines = [json.dumps(json.loads((REDFISH_DIR / f"public-rackmount1__Chassis__1U__Sensors__{s}.json").read_text()))
             for s in RACKMOUNT_SENSORS]
    lines.append(json.dumps(json.loads((REDFISH_DIR / "DSP2046-examples__Sensor-v1-example.json").read_text())))
    return redfish_sensor_fields(text_files(tmp_path, {"redfish_rackmount1_mockups.jsonl": "\n".join(lines) + "\n"}))


def test_redfish_mockups_total_power_and_energy(tmp_path):
    parsed = parse_redfish_sensors(redfish_mockup_file(tmp_path), bmc_inventory("redfish", {"rackmount1": None}),
                                   "mghpcc")
    out = parsed.collect()
    # Only the node meter's power sensor (default TotalPower) and TotalEnergy are records.
    assert out.select("_source_row", "_measure", "power_w", "energy_j", "ts", "_reason").rows() == [
        (1, "power", 374.0, None, utc(2019, 8, 12, 22, 14, 33), None),  # 04:14:33+06:00
        (2, "energy", None, 1_172_430_000_000.0, None, "missing_required_field"),  # 325675 kW.h, no ReadingTime
    ]
    rows, quarantine, counts = ingest(parsed, date(2019, 8, 12))
    assert counts_of(counts) == {"redfish_rackmount1_mockups.jsonl": (2, 1, 1)}
    assert rows.select("meter_id", "ts", "power_w", "energy_j", "source").rows() == [
        ("rackmount1/bmc", utc(2019, 8, 12, 22, 14, 33), 374.0, None, "redfish")]
    assert quarantine["detail"][0] == ("sensor TotalEnergy has no `ReadingTime`; "
                                       "the poller must keep the BMC's reading time")


def test_redfish_mockups_meter_sensor_names_the_power_sensor(tmp_path):
    out = parse_redfish_sensors(redfish_mockup_file(tmp_path),
                                bmc_inventory("redfish", {"rackmount1": "PS1InputPower"}), "mghpcc").collect()
    assert out.select("_source_row", "_measure", "power_w", "energy_j", "_reason").rows() == [
        (2, "energy", None, 1172430000000.0, "missing_required_field"),
        (3, "power", 374.0, None, "missing_required_field"),
    ]


def test_dcgm_catalogue_has_the_fields_and_units_the_parser_assumes():
    with open(REAL / "dcgm_exporter_fields" / "default-counters.csv", newline="") as f:
        fields = {r[0].strip(): (r[1].strip(), r[2].strip()) for r in csv.reader(f)
                  if r and r[0].strip() and not r[0].startswith("#")}
    assert set(DCGM_MEASURES) == {"DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"}
    assert fields["DCGM_FI_DEV_POWER_USAGE"] == ("gauge", "Power draw (in W).")
    assert fields["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"] == ("counter", "Total energy consumption since boot (in mJ).")


# --- DCGM defects -------------------------------------------------------------------------


def dcgm(metric: str, gpu: str, value: str, ms: int | None = T0, host: str = "m-h200-01") -> str:
    name = {"power": "DCGM_FI_DEV_POWER_USAGE", "energy": "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"}[metric]
    labels = f'gpu="{gpu}",UUID="GPU-{gpu}",device="nvidia{gpu}",modelName="NVIDIA H200",Hostname="{host}"'
    return f"{name}{{{labels}}} {value}" + ("" if ms is None else f" {ms}")


def run_dcgm(tmp_path: Path, lines: list[str]):
    raw = text_files(tmp_path, {"scrape.prom": "\n".join(lines) + "\n"})
    return ingest(parse_dcgm_prometheus(raw, INV, "metro-east"), DAY)


def test_dcgm_power_and_energy_join_and_counter_reset_is_flagged(tmp_path):
    rows, quarantine, counts = run_dcgm(tmp_path, [
        "# HELP DCGM_FI_DEV_POWER_USAGE Power draw (in W).",
        "# TYPE DCGM_FI_DEV_POWER_USAGE gauge",
        dcgm("power", "0", "612.500000", T0),
        dcgm("energy", "0", "48213377123", T0),
        'DCGM_FI_DEV_SM_CLOCK{gpu="0",Hostname="m-h200-01"} 1980 1795824000000',  # not a record
        dcgm("power", "0", "600", T0 + 15000),
        dcgm("energy", "0", "48222377123", T0 + 15000),
        dcgm("power", "0", "90.25", T0 + 30000),
        dcgm("energy", "0", "1500", T0 + 30000),  # rebooted: the counter restarted
    ])
    assert counts_of(counts) == {"scrape.prom": (6, 6, 0)}
    assert quarantine.height == 0
    assert rows.select("meter_id", "ts", "power_w", "energy_j", "counter_reset", "node_id", "gpu_index").rows() == [
        ("m-h200-01/gpu0", utc(2026, 11, 28, 0, 0, 0), 612.5, 48213377.123, False, "m-h200-01", 0),
        ("m-h200-01/gpu0", utc(2026, 11, 28, 0, 0, 15), 600.0, 48222377.123, False, "m-h200-01", 0),
        ("m-h200-01/gpu0", utc(2026, 11, 28, 0, 0, 30), 90.25, 1.5, True, "m-h200-01", 0),
    ]


@pytest.mark.parametrize("lines, expected_counts, expected_reasons", [
    pytest.param([dcgm("power", "0", "612.5"), dcgm("energy", "0", "9223372036854775794"),
                  dcgm("power", "1", "140737488355328.000000")],
                 (3, 1, 2), [(2, "sensor_not_supported"), (3, "sensor_not_supported")], id="sentinels"),
    pytest.param([dcgm("power", "0", "612.5"), 'DCGM_FI_DEV_POWER_USAGE{gpu="1",Hostname="m-h200-01" 600 1795824000000',
                  dcgm("power", "2", "not-a-number"), dcgm("power", "3", "600", ms=None)],
                 (4, 1, 3), [(2, "malformed_record"), (3, "invalid_value"), (4, "bad_timestamp")], id="malformed"),
    pytest.param([dcgm("power", "0", "612.5"), dcgm("power", "8", "600"), dcgm("power", "0", "600", host="ghost-01"),
                  dcgm("power", "0", "300", host="r-l40s-std-01")],
                 (4, 1, 3), [(2, "unknown_meter"), (3, "unknown_meter"), (4, "unknown_meter")], id="unknown-meter"),
    pytest.param([dcgm("power", "0", "612.5"), dcgm("power", "0", "500", T0 - 1)],
                 (2, 1, 1), [(2, "outside_partition_day")], id="outside-day"),
    pytest.param([dcgm("power", "0", "612.5"), dcgm("energy", "0", "1000"), dcgm("power", "0", "612.5")],
                 (3, 2, 1), [(3, "exact_duplicate")], id="exact-duplicate"),
    pytest.param([dcgm("power", "0", "612.5"), dcgm("energy", "0", "1000"), dcgm("power", "0", "700")],
                 (3, 1, 2), [(1, "conflicting_duplicate"), (3, "conflicting_duplicate")], id="conflicting-duplicate"),
])
def test_dcgm_defects_land_in_quarantine(tmp_path, lines, expected_counts, expected_reasons):
    rows, quarantine, counts = run_dcgm(tmp_path, lines)
    assert counts_of(counts) == {"scrape.prom": expected_counts}
    assert reasons(quarantine) == expected_reasons


def test_dcgm_details_name_the_problem(tmp_path):
    _, quarantine, _ = run_dcgm(tmp_path, [
        dcgm("power", "0", "300", host="r-l40s-std-01"), dcgm("energy", "0", "9223372036854775794"),
        dcgm("power", "0", "612.5", T0 - 1)])
    assert quarantine["detail"].to_list() == [
        "meter r-l40s-std-01/gpu0 belongs to site remote-plains, not metro-east; "
        "deliver its file in the raw folder of site remote-plains",
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION reported DCGM's blank value 9223372036854775794 "
        "(field not supported or no data on this GPU)",
        "`ts` 2026-11-27T23:59:59.999Z is not on 2026-11-28 UTC; deliver it in the raw folder of its own day",
    ]


def test_dcgm_keeps_the_remaining_measure_of_a_conflicting_key(tmp_path):
    rows, _, _ = run_dcgm(tmp_path, [dcgm("power", "0", "612.5"), dcgm("energy", "0", "1000"),
                                     dcgm("power", "0", "700")])
    assert rows.select("ts", "power_w", "energy_j").rows() == [(utc(2026, 11, 28), None, 1.0)]


# --- IPMI defects -------------------------------------------------------------------------

SDR_BLOCK = """Timestamp: {ts} UTC
Sys Power                | {power:<17} | ok
CPU Power                | no reading        | ns
"""


def sdr(*blocks: tuple[str, str]) -> str:
    return "".join(SDR_BLOCK.format(ts=ts, power=power) for ts, power in blocks)


def run_ipmi(tmp_path: Path, files: dict[str, str]):
    return ingest(parse_ipmi_sdr(text_files(tmp_path, files), INV, "remote-plains"), DAY)


def test_ipmi_defects_land_in_quarantine(tmp_path):
    rows, quarantine, counts = run_ipmi(tmp_path, {
        "ipmi_sdr_r-l40s-std-01_2026-11-28.txt": "Sys Power | 300 Watts | ok\n" + sdr(
            ("2026-11-28 00:00:05", "410 Watts"), ("2026-11-28 00:01:05", "no reading"),
            ("2026-11-28 00:02:05", "Not Readable"), ("2026-11-28 25:03:05", "400 Watts"),
            ("2026-11-27 23:59:05", "400 Watts"), ("2026-11-28 00:00:05", "410 Watts"),
            ("2026-11-28 00:04:05", "-5 Watts")) + "Timestamp: 2026-11-28 00:05:05 UTC\n",
        "ipmi_sdr_ghost-01_2026-11-28.txt": sdr(("2026-11-28 00:00:05", "410 Watts")),
        "ipmi_sdr_m-h200-01_2026-11-28.txt": sdr(("2026-11-28 00:00:05", "410 Watts")),
        "sdr-dump.txt": sdr(("2026-11-28 00:00:05", "410 Watts")),
    })
    assert counts_of(counts) == {
        "ipmi_sdr_ghost-01_2026-11-28.txt": (1, 0, 1),
        "ipmi_sdr_m-h200-01_2026-11-28.txt": (1, 0, 1),
        "ipmi_sdr_r-l40s-std-01_2026-11-28.txt": (9, 1, 8),
        "sdr-dump.txt": (1, 0, 1),
    }
    assert quarantine.select("source_file", "source_row", "reason").rows() == [
        ("ipmi_sdr_ghost-01_2026-11-28.txt", 1, "unknown_node"),
        ("ipmi_sdr_m-h200-01_2026-11-28.txt", 1, "unknown_meter"),  # a node, but read through Redfish
        ("ipmi_sdr_r-l40s-std-01_2026-11-28.txt", 1, "malformed_record"),  # before the first Timestamp:
        ("ipmi_sdr_r-l40s-std-01_2026-11-28.txt", 5, "sensor_no_reading"),
        ("ipmi_sdr_r-l40s-std-01_2026-11-28.txt", 8, "sensor_no_reading"),
        ("ipmi_sdr_r-l40s-std-01_2026-11-28.txt", 11, "bad_timestamp"),
        ("ipmi_sdr_r-l40s-std-01_2026-11-28.txt", 14, "outside_partition_day"),
        ("ipmi_sdr_r-l40s-std-01_2026-11-28.txt", 17, "exact_duplicate"),
        ("ipmi_sdr_r-l40s-std-01_2026-11-28.txt", 20, "negative_value"),
        ("ipmi_sdr_r-l40s-std-01_2026-11-28.txt", 23, "sensor_no_reading"),  # Timestamp: and nothing else
        ("sdr-dump.txt", 1, "unknown_node"),
    ]
    assert rows.select("meter_id", "ts", "power_w").rows() == [("r-l40s-std-01/bmc", utc(2026, 11, 28, 0, 0, 5), 410.0)]
    details = dict(zip(quarantine["source_row"], quarantine["detail"], strict=True))
    assert details[5] == "sensor `Sys Power` gave no Watts reading in this sample (no reading)"
    assert quarantine["detail"][0] == ("host ghost-01 is not a node of the inventory; "
                                       "add it under `nodes:` (and its meter under `meters:`)")


def test_ipmi_conflicting_samples_of_one_instant(tmp_path):
    rows, quarantine, counts = run_ipmi(tmp_path, {
        "ipmi_sdr_r-l40s-std-01_a.txt": sdr(("2026-11-28 00:00:05", "410 Watts"), ("2026-11-28 00:01:05", "400 Watts")),
        "ipmi_sdr_r-l40s-std-01_b.txt": sdr(("2026-11-28 00:00:05", "420 Watts")),
    })
    assert counts_of(counts) == {"ipmi_sdr_r-l40s-std-01_a.txt": (2, 1, 1), "ipmi_sdr_r-l40s-std-01_b.txt": (1, 0, 1)}
    assert quarantine.select("source_file", "reason").rows() == [
        ("ipmi_sdr_r-l40s-std-01_a.txt", "conflicting_duplicate"),
        ("ipmi_sdr_r-l40s-std-01_b.txt", "conflicting_duplicate")]
    assert rows["power_w"].to_list() == [400.0]


# --- Redfish defects ----------------------------------------------------------------------


def sensor(sensor_id: str, reading, units: str, time: str | None) -> str:
    poll = {"@odata.id": f"/redfish/v1/Chassis/1/Sensors/{sensor_id}", "Id": sensor_id, "Reading": reading,
            "ReadingUnits": units, "ReadingType": "Power" if units == "W" else "EnergykWh"}
    return json.dumps(poll | ({"ReadingTime": time} if time else {}))


def run_redfish(tmp_path: Path, files: dict[str, list[str]]):
    raw = text_files(tmp_path, {name: "\n".join(lines) + "\n" for name, lines in files.items()})
    return ingest(parse_redfish_sensors(redfish_sensor_fields(raw), INV, "metro-east"), DAY)


def test_redfish_offsets_energy_counter_and_defects(tmp_path):
    rows, quarantine, counts = run_redfish(tmp_path, {
        "redfish_m-h200-01_2026-11-28.jsonl": [
            sensor("TotalPower", 5210.5, "W", "2026-11-28T09:30:00+09:00"),
            sensor("TotalEnergy", 1500.25, "kW.h", "2026-11-28T09:30:00+09:00"),
            sensor("CPU1Temp", 61, "Cel", "2026-11-28T09:30:00+09:00"),  # not a record
            '{"Id": "TotalPower", "Reading": 5200, ',  # truncated line
            sensor("TotalPower", 5100, "W", "2026-11-27T19:31:00-05:00"),
            sensor("TotalEnergy", 0.5, "kW.h", "2026-11-27T19:31:00-05:00"),  # counter restarted
            sensor("TotalPower", 5000, "W", "2026-11-28T00:32:00"),  # no offset
            sensor("TotalPower", None, "W", "2026-11-28T00:33:00Z"),
            sensor("TotalPower", 5.1, "kW", "2026-11-28T00:34:00Z"),
            sensor("TotalPower", 5000, "W", "2026-11-27T23:59:59+00:00"),
        ],
        "redfish_ghost-01_2026-11-28.jsonl": [sensor("TotalPower", 100, "W", "2026-11-28T00:00:00Z"),
                                              sensor("CPU1Temp", 61, "Cel", "2026-11-28T00:00:00Z")],
    })
    assert counts_of(counts) == {"redfish_ghost-01_2026-11-28.jsonl": (2, 0, 2),
                                 "redfish_m-h200-01_2026-11-28.jsonl": (9, 4, 5)}
    # Every line of a host without a redfish meter is a record: its sensors cannot be told apart.
    assert quarantine.select("source_file", "source_row", "reason").rows() == [
        ("redfish_ghost-01_2026-11-28.jsonl", 1, "unknown_node"),
        ("redfish_ghost-01_2026-11-28.jsonl", 2, "unknown_node"),
        ("redfish_m-h200-01_2026-11-28.jsonl", 4, "malformed_record"),
        ("redfish_m-h200-01_2026-11-28.jsonl", 7, "bad_timestamp"),
        ("redfish_m-h200-01_2026-11-28.jsonl", 8, "sensor_no_reading"),
        ("redfish_m-h200-01_2026-11-28.jsonl", 9, "invalid_value"),
        ("redfish_m-h200-01_2026-11-28.jsonl", 10, "outside_partition_day"),
    ]
    # 09:30+09:00 and 19:31-05:00 are 00:30 and 00:31 UTC; power and energy of one instant join.
    assert rows.select("meter_id", "ts", "power_w", "energy_j", "counter_reset").rows() == [
        ("m-h200-01/bmc", utc(2026, 11, 28, 0, 30), 5210.5, 1500.25 * 3.6e6, False),
        ("m-h200-01/bmc", utc(2026, 11, 28, 0, 31), 5100.0, 0.5 * 3.6e6, True),
    ]
    details = dict(zip(quarantine["source_row"], quarantine["detail"], strict=True))
    assert details[7] == "`ReadingTime` 2026-11-28T00:32:00 is not RFC 3339 with a UTC offset"
    assert details[9] == "sensor TotalPower reads in `kW`, expected `W`"


# --- facility interval CSV ----------------------------------------------------------------


def test_facility_intervals_end_in_utc_and_defects(tmp_path):
    (tmp_path / "utility.csv").write_text(
        "meter_id,interval_start,interval_minutes,kwh\n"
        "metro-east/facility,2026-11-27T19:00:00-05:00,15,12.5\n"
        "metro-east/facility,2026-11-28T01:30:00+01:00,15,10\n"
        "metro-east/facility,2026-11-27T19:30:00-05:00,15,-1.0\n"
        "ghost/facility,2026-11-27T19:30:00-05:00,15,1\n"
        "m-h200-01/bmc,2026-11-27T19:30:00-05:00,15,1\n"
        "metro-east/facility,2026-11-28T00:45:00,15,1\n"
        "metro-east/facility,2026-11-28T18:45:00-05:00,15,1\n"  # ends 2026-11-29T00:00Z: the next day
        "metro-east/facility,2026-11-27T19:00:00-05:00,15,12.5\n"
        "metro-east/facility,2026-11-27T19:45:00-05:00,15,\n"
        "metro-east/facility,2026-11-27T19:45:00-05:00,0,1\n"
    )
    raw = scan_csv_text([tmp_path / "utility.csv"], tmp_path)
    rows, quarantine, counts = ingest(parse_facility_csv(raw, INV, "metro-east"), DAY)
    assert counts_of(counts) == {"utility.csv": (10, 2, 8)}
    assert reasons(quarantine) == [
        (3, "negative_value"), (4, "unknown_meter"), (5, "unknown_meter"), (6, "bad_timestamp"),
        (7, "outside_partition_day"), (8, "exact_duplicate"), (9, "missing_required_field"), (10, "invalid_value")]
    assert rows.select("meter_id", "scope", "site_id", "ts", "interval_s", "interval_energy_j", "source").rows() == [
        ("metro-east/facility", "facility", "metro-east", utc(2026, 11, 28, 0, 15), 900.0, 45_000_000.0,
         "facility_csv"),
        ("metro-east/facility", "facility", "metro-east", utc(2026, 11, 28, 0, 45), 900.0, 36_000_000.0,
         "facility_csv"),
    ]
    details = dict(zip(quarantine["source_row"], quarantine["detail"], strict=True))
    assert details[5] == "meter m-h200-01/bmc is a node meter, not a facility meter; correct the meter id"


def test_facility_meter_of_another_site(tmp_path):
    (tmp_path / "utility.csv").write_text(
        "meter_id,interval_start,interval_minutes,kwh\nmetro-east/facility,2026-11-27T19:00:00-05:00,15,12.5\n")
    _, quarantine, _ = ingest(parse_facility_csv(scan_csv_text([tmp_path / "utility.csv"], tmp_path), INV,
                                                 "remote-plains"), DAY)
    assert quarantine.select("reason", "detail").rows() == [
        ("unknown_meter", "meter metro-east/facility belongs to site metro-east, not remote-plains; "
                          "deliver its file in the raw folder of site metro-east")]


# --- canonical power_readings ---------------------------------------------------------------


def test_canonical_csv_takes_inventory_defaults_and_flags_resets(tmp_path):
    (tmp_path / "power_readings.csv").write_text(
        "meter_id,ts,power_w,energy_j\n"
        "m-h200-01/gpu0,2026-11-28T00:00:00Z,600.5,1000.0\n"
        "m-h200-01/gpu0,2026-11-28T02:00:00+01:00,601,2000\n"
        "m-h200-01/gpu0,2026-11-28T02:00:00Z,602,10\n"
        "ghost/gpu0,2026-11-28T00:00:00Z,1,\n"
        "m-h200-01/gpu1,2026-11-28 00:00:00,1,\n"
        "m-h200-01/gpu1,2026-11-28T00:00:00Z,abc,\n"
        "r-l40s-std-01/bmc,2026-11-28T00:00:00Z,400,\n"
    )
    raw = scan_csv_text([tmp_path / "power_readings.csv"], tmp_path)
    rows, quarantine, counts = ingest(parse_canonical_power(raw, INV, "metro-east"), DAY)
    assert counts_of(counts) == {"power_readings.csv": (7, 3, 4)}
    assert reasons(quarantine) == [(4, "unknown_meter"), (5, "bad_timestamp"), (6, "invalid_value"),
                                   (7, "unknown_meter")]
    assert rows.rows() == [
        ("m-h200-01/gpu0", "gpu", "metro-east", "m-h200-01", 0, utc(2026, 11, 28, 0), 600.5, 1000.0, None, None,
         False, "canonical"),
        ("m-h200-01/gpu0", "gpu", "metro-east", "m-h200-01", 0, utc(2026, 11, 28, 1), 601.0, 2000.0, None, None,
         False, "canonical"),
        ("m-h200-01/gpu0", "gpu", "metro-east", "m-h200-01", 0, utc(2026, 11, 28, 2), 602.0, 10.0, None, None,
         True, "canonical"),
    ]


def test_canonical_parquet_keeps_its_own_columns_and_checks_the_site(tmp_path):
    pl.DataFrame({
        "meter_id": ["m-h200-01/bmc", "m-h200-01/bmc"],
        "ts": [utc(2026, 11, 28, 0, 0, 5), utc(2026, 11, 28, 0, 1, 5)],
        "power_w": [5210.0, 5220.0],
        "site_id": ["metro-east", "remote-plains"],
    }).write_parquet(tmp_path / "power_readings.parquet")
    raw = scan_parquet_files([tmp_path / "power_readings.parquet"], tmp_path)
    rows, quarantine, counts = ingest(parse_canonical_power(raw, INV, "metro-east"), DAY)
    assert counts_of(counts) == {"power_readings.parquet": (2, 1, 1)}
    assert quarantine.select("source_row", "reason", "detail").rows() == [
        (2, "invalid_value",
         "`site_id` remote-plains disagrees with the inventory (meter m-h200-01/bmc is at site metro-east)")]
    assert rows.select("meter_id", "scope", "node_id", "ts", "power_w", "source").rows() == [
        ("m-h200-01/bmc", "node", "m-h200-01", utc(2026, 11, 28, 0, 0, 5), 5210.0, "canonical")]


def test_dcgm_rows_come_in_file_and_line_order_without_a_sort(tmp_path):
    """The DCGM parser keeps its input's order (its join with the GPU meters keeps the left order)
    and is not sorted again: its rows must be those of the sort by file and line, in every case a
    join could reorder. Three files named out of order on the disk; in each, 40 scrapes of GPU 0-7
    of m-h200-01 (known meters) interleaved with GPU 9 (no such meter: `unknown_meter`) and a
    host of another site (r-l40s-std-01/gpu0, a meter of remote-plains: `unknown_meter`), and
    comment lines (not records). Rows: 3 files x 40 scrapes x (8 + 2) samples = 1,200; quarantined
    3 x 40 x 2 = 240, each file's lines numbered from 1 with its 2 header lines first."""
    for name in ("c.prom", "a.prom", "b.prom"):
        lines = ["# HELP DCGM_FI_DEV_POWER_USAGE Power draw (in W).", "# TYPE DCGM_FI_DEV_POWER_USAGE gauge"]
        for k in range(40):
            ms = T0 + k * 1000
            lines += [dcgm("power", "9", "100", ms)] + [dcgm("power", str(g), f"{100 + g}.5", ms) for g in range(8)]
            lines += [dcgm("power", "0", "90", ms, host="r-l40s-std-01")]
        (tmp_path / name).write_text("\n".join(lines) + "\n")
    raw = scan_text_lines(sorted(tmp_path.glob("*.prom")), tmp_path)
    parsed = parse_dcgm_prometheus(raw, INV, "metro-east").collect()
    assert parsed.height == 3 * 40 * (8 + 2) == 1200
    assert parsed.rows() == parsed.sort("_source_file", "_source_row", maintain_order=True).rows()
    assert parsed["_source_file"].unique(maintain_order=True).to_list() == ["a.prom", "b.prom", "c.prom"]
    assert parsed["_source_row"].head(3).to_list() == [3, 4, 5]  # 2 comment lines first
    assert parsed.filter(pl.col("_reason") == "unknown_meter").height == 3 * 40 * 2 == 240
    # the accepted power of one scrape: GPUs 0-7 read 100.5 + ... + 107.5 = 8 x 100.5 + 28 = 832 W
    first = parsed.filter(pl.col("_reason").is_null() & (pl.col("_source_file") == "a.prom")).head(8)
    assert first["power_w"].sum() == 832.0
