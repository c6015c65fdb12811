"""Extreme values (issue 19, item 12): a number outside the physical bounds of its unit
(transforms/bounds.py), NaN or +/-Inf is quarantined per row as `out_of_range`, naming the file,
row, value and bound, instead of passing the parser to fail a whole site's suite (or, for a
facility 1e308 kWh, being stored as +Inf and ignored by attribution). The suites hold the lake to
the same bounds, declared once; the inventory refuses non-finite and absurd numbers.

Every case runs the real ingest (`pipelines.ingest.ingest_partition`) into a temporary lake and
checks read = accepted + quarantined on every file of the audit."""

import math
from datetime import date, datetime, UTC
from pathlib import Path

import polars as pl
import pytest

from lake.store import FLEET, Lake
from pipelines.ingest import ingest_partition
from pipelines.suites import validate_partition
from tests.test_ingest_assets import REGISTER_HEADER
from tests.test_ingest_bills import ELECTRICITY_HEADER, FOCUS_HEADER
from transforms import bounds
from transforms.inventory import InventoryError, parse_inventory
from transforms.quality import suites as quality_suites

DATA = Path(__file__).parent / "data"
DAY = date(2026, 11, 28)
D = DAY.isoformat()


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def ingest(tmp_path: Path, inventory, dataset: str, site: str | None, files: dict[str, str | pl.DataFrame]) -> dict:
    """Write `files` (path under `<raw>/<day>/<site>/` -> text or a Parquet frame), ingest the
    partition, and return its quarantine, audit, canonical rows and the suite's failures."""
    raw, lake = tmp_path / "raw", Lake(tmp_path / "lake")
    for name, content in files.items():
        path = raw / D / (site or FLEET) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, pl.DataFrame):
            content.write_parquet(path)
        else:
            path.write_text(content)
    out = ingest_partition(dataset, DAY, site, raw, lake, inventory)
    audit = pl.read_parquet(out.paths["ingest_audit"]).filter(pl.col("status") != "ignored")
    assert (audit["rows_read"] == audit["rows_accepted"] + audit["rows_quarantined"]).all()
    assert sorted(audit["source_file"]) == sorted(f"{D}/{site or FLEET}/{n}" for n in files)
    suite = validate_partition(lake.root, dataset, DAY, inventory, site)
    return {"quarantine": pl.read_parquet(out.paths["quarantine"]), "audit": audit,
            "rows": pl.read_parquet(out.paths["canonical"]), "suite_errors": [r.name for r in suite.errors]}


def verdicts(q: pl.DataFrame) -> list[tuple[int, str]]:
    return q.select("source_row", "reason").rows()


def counts(audit: pl.DataFrame) -> list[tuple]:
    return audit.select("source_file", "rows_read", "rows_accepted", "rows_quarantined").rows()


def test_one_declaration_of_each_bound():
    # The suites use the parsers' bounds themselves, not copies.
    for name in ("NAMEPLATE_MULTIPLE", "MAX_BILL_LINE", "MAX_ENERGY_PRICE_PER_KWH", "MAX_ASSET_COST",
                 "MAX_INPUT_TOKENS", "MAX_OUTPUT_TOKENS", "MAX_REQUEST_COST", "MAX_USEFUL_LIFE_MONTHS"):
        assert getattr(quality_suites, name) is getattr(bounds, name), name
    assert bounds.MAX_METER_W * 900 == 250_000 * 3.6e6  # 250,000 kWh in 15 minutes is the bound, exactly


def test_redfish_1e308_and_above_nameplate_are_out_of_range(tmp_path, small_inventory):
    lines = [f'{{"Id": "TotalPower", "Reading": {r}, "ReadingUnits": "W", "ReadingTime": "{D}T10:00:{s:02d}Z"}}'
             for s, r in ((0, "374"), (15, "1e308"), (30, "15301"), (45, "15300"))]
    lines.append(f'{{"Id": "TotalEnergy", "Reading": 1e308, "ReadingUnits": "kW.h", "ReadingTime": "{D}T10:01:00Z"}}')
    out = ingest(tmp_path, small_inventory, "power_readings", "metro-east",
                 {"redfish/redfish_m-h200-01_x.jsonl": "\n".join(lines) + "\n"})
    # m-h200-01's nameplate is 10,200 W: its meter may read up to 1.5 x 10,200 = 15,300 W.
    assert verdicts(out["quarantine"]) == [(2, "out_of_range"), (3, "out_of_range"), (5, "out_of_range")]
    details = dict(out["quarantine"].select("source_row", "detail").rows())
    assert details[2] == ("node meter m-h200-01/bmc sensor TotalPower 1e308 is outside [-inf, 15300.0] W; "
                          "above 1.5 x the node's nameplate; check the sensor's unit (W) and the meter's `sensor:`, "
                          "or the node's `nameplate_w` in the inventory")
    assert details[5].startswith("node meter m-h200-01/bmc sensor TotalEnergy 1e308 is outside [-inf, "
                                 "8.766e+11] kW.h; check the sensor's unit (kW.h)")
    assert counts(out["audit"]) == [(f"{D}/metro-east/redfish/redfish_m-h200-01_x.jsonl", 5, 2, 3)]
    assert out["rows"]["power_w"].to_list() == [374.0, 15300.0]
    assert out["suite_errors"] == []


def test_facility_1e308_kwh_is_quarantined_not_stored_as_infinity(tmp_path, small_inventory):
    head = "meter_id,interval_start,interval_minutes,kwh\n"
    rows = [("05:00", "15", "1.5"), ("05:15", "15", "1e308"), ("05:30", "15", "250000"), ("05:45", "15", "250000.01"),
            ("06:00", "15", "NaN"), ("06:15", "50000", "1.5"), ("06:30", "15", "inf")]
    text = head + "".join(f"metro-east/facility,{D}T{t}:00-05:00,{m},{k}\n" for t, m, k in rows)
    out = ingest(tmp_path, small_inventory, "power_readings", "metro-east", {"facility/fac.csv": text})
    assert verdicts(out["quarantine"]) == [(2, "out_of_range"), (4, "out_of_range"), (5, "invalid_value"),
                                           (6, "out_of_range"), (7, "invalid_value")]
    details = dict(out["quarantine"].select("source_row", "detail").rows())
    assert details[2] == ("meter metro-east/facility `kwh` 1e308 over 15 minutes: mean power inf is outside "
                          "[-inf, 1,000,000,000] W; check the export's unit; no meter of one site carries that much")
    assert details[6] == ("`interval_minutes` 50000 is outside [-inf, 44,640] minutes; write the interval's length in "
                          "minutes")
    assert counts(out["audit"]) == [(f"{D}/metro-east/facility/fac.csv", 7, 2, 5)]
    # 250,000 kWh in 15 minutes is a mean of exactly 1 GW: the bound itself is accepted.
    assert out["rows"]["interval_energy_j"].to_list() == [1.5 * 3.6e6, 250_000 * 3.6e6]
    assert all(math.isfinite(v) for v in out["rows"]["interval_energy_j"])
    assert out["suite_errors"] == []


def test_dcgm_fifty_kilowatts_and_counter_overflow(tmp_path, small_inventory):
    def sample(metric, gpu, value, ms):
        return (f'{metric}{{gpu="{gpu}",UUID="GPU-{gpu}",device="nvidia{gpu}",modelName="NVIDIA H200",'
                f'Hostname="m-h200-01"}} {value} {ms}')
    t0 = 1795824000000 + 3600_000  # 01:00Z
    lines = [sample("DCGM_FI_DEV_POWER_USAGE", 0, "612.5", t0), sample("DCGM_FI_DEV_POWER_USAGE", 1, "50000", t0),
             sample("DCGM_FI_DEV_POWER_USAGE", 3, "1e308", t0),
             sample("DCGM_FI_DEV_POWER_USAGE", 2, "1050", t0)]
    out = ingest(tmp_path, small_inventory, "power_readings", "metro-east",
                 {"dcgm/scrape.prom": "\n".join(lines) + "\n"})
    # An H200 of 700 W TDP reads at most 1.5 x 700 = 1,050 W. Anything from DCGM's int64 blank up
    # (9.2e18, 1e308 included) is its "not supported" value (a counter in mJ never gets there).
    assert verdicts(out["quarantine"]) == [(2, "out_of_range"), (3, "sensor_not_supported")]
    details = dict(out["quarantine"].select("source_row", "detail").rows())
    assert details[2] == ("GPU meter m-h200-01/gpu1 power 50000 is outside [-inf, 1050.0] W; "
                          "above 1.5 x the GPU's TDP; check the exporter's unit (W) or the node's `gpu_tdp_w` "
                          "in the inventory")
    assert counts(out["audit"]) == [(f"{D}/metro-east/dcgm/scrape.prom", 4, 2, 2)]
    assert out["suite_errors"] == []


def test_invoice_and_focus_1e308_and_an_energy_price_in_cents(tmp_path, small_inventory):
    lines = ["INV-1,1,A,2026-11-01,2026-12-01,energy,off_peak,100,kWh,0.065,6.50,USD,",
             "INV-1,2,A,2026-11-01,2026-12-01,tax,,,,,1e308,USD,",
             # 6.50 a kWh: cents read as units
             "INV-1,3,A,2026-11-01,2026-12-01,energy,on_peak,100,kWh,6.50,650.00,USD,",
             "INV-1,4,A,2026-11-01,2026-12-01,fixed,,1,month,10000000,10000000.00,USD,"]  # the bound itself
    out = ingest(tmp_path / "e", small_inventory, "cost_lines", "remote-plains",
                 {"electricity/inv.csv": ELECTRICITY_HEADER + "\n".join(lines) + "\n"})
    assert verdicts(out["quarantine"]) == [(2, "out_of_range"), (3, "out_of_range")]
    details = dict(out["quarantine"].select("source_row", "detail").rows())
    assert details[2] == ("`amount` 1e+308 is outside [-10,000,000, 10,000,000] per line; check the amount's unit "
                          "(cents or thousands read as units?) or split the charge")
    assert details[3] == ("energy line: `amount` / kWh = 650.0 / 100.0: price 6.5 is outside [-5, 5] per kWh; check "
                          "the quantity's unit (kWh) and the amount")
    assert counts(out["audit"]) == [(f"{D}/remote-plains/electricity/inv.csv", 4, 2, 2)]
    assert out["suite_errors"] == []

    focus = ["1,2024-09-01T00:00:00Z,2024-09-01T01:00:00Z,1.50,1.25,USD,Usage,Compute,EC2,i-1,1,Hours",
             "2,2024-09-01T00:00:00Z,2024-09-01T01:00:00Z,1e308,1.25,USD,Usage,Compute,EC2,i-1,1,Hours",
             "3,2024-09-01T00:00:00Z,2024-09-01T01:00:00Z,2.00,-2e7,USD,Usage,Compute,EC2,i-1,1,Hours"]
    out = ingest(tmp_path / "f", small_inventory, "cost_lines", "cloud-use1",
                 {"focus/bill.csv": FOCUS_HEADER + "\n".join(focus) + "\n"})
    assert verdicts(out["quarantine"]) == [(2, "out_of_range"), (3, "out_of_range")]
    assert out["quarantine"]["detail"][1].startswith("`EffectiveCost` -20000000.0 is outside [-10,000,000, 10,000,000]")
    assert counts(out["audit"]) == [(f"{D}/cloud-use1/focus/bill.csv", 3, 1, 2)]
    assert out["suite_errors"] == []


def test_register_1e308_and_a_life_of_fifty_years(tmp_path, small_inventory):
    lines = ["A-1,HGX H200 server,m-h200-01,412000.00,USD,2026-01-15,60,12000,SL,",
             "A-2,L40S server,r-l40s-std-01,1e308,USD,2026-02-01,48,0,SL,",
             "A-3,L40S server,r-l40s-bat-01,48500,USD,2026-02-01,600,0,SL,"]
    out = ingest(tmp_path, small_inventory, "assets", None,
                 {"assets/register.csv": REGISTER_HEADER + "\n".join(lines) + "\n"})
    assert verdicts(out["quarantine"]) == [(2, "out_of_range"), (3, "out_of_range")]
    details = dict(out["quarantine"].select("source_row", "detail").rows())
    assert details[2] == ("`acquisition_cost` 1e+308 is outside [-inf, 10,000,000] per asset; check the amount's unit "
                          "(cents read as units?)")
    assert details[3] == "`useful_life_months` 600 is outside [-inf, 240] months; write the depreciation life in months"
    assert counts(out["audit"]) == [(f"{D}/_fleet/assets/register.csv", 3, 1, 2)]
    assert out["suite_errors"] == []


def test_infinity_in_canonical_parquet(tmp_path, small_inventory):
    at = utc(2026, 11, 28, 10)
    power = pl.DataFrame({"meter_id": ["metro-east/facility"] * 3 + ["m-h200-01/bmc"] * 2,
                          "ts": [at, at.replace(minute=15), at.replace(minute=30), at, at.replace(minute=1)],
                          "power_w": [None, None, None, 3000.0, float("inf")],
                          "energy_j": [None, None, None, float("-inf"), None],
                          "interval_energy_j": [5.4e6, float("inf"), float("nan"), None, None],
                          "interval_s": [900.0, 900.0, 900.0, None, None]})
    out = ingest(tmp_path / "p", small_inventory, "power_readings", "metro-east",
                 {"canonical/power_readings.parquet": power})
    assert verdicts(out["quarantine"]) == [(2, "out_of_range"), (3, "out_of_range"), (4, "out_of_range"),
                                           (5, "out_of_range")]
    assert out["rows"].select("meter_id", "interval_energy_j").rows() == [("metro-east/facility", 5.4e6)]
    assert out["suite_errors"] == []

    cost = pl.DataFrame({"line_id": ["c-1", "c-2", "c-3"], "period_start": [at] * 3,
                         "period_end": [at.replace(hour=11)] * 3, "cost_type": ["other"] * 3,
                         "billed_amount": [10.0, float("inf"), 10.0],
                         "effective_amount": [10.0, 10.0, 10.0], "currency": ["USD"] * 3,
                         "quantity": [1.0, 1.0, float("nan")]})
    out = ingest(tmp_path / "c", small_inventory, "cost_lines", "metro-east", {"canonical/cost_lines.parquet": cost})
    assert verdicts(out["quarantine"]) == [(2, "out_of_range"), (3, "out_of_range")]
    assert out["quarantine"]["detail"][1] == "`quantity` NaN is not a finite number; write the billed quantity"
    assert out["suite_errors"] == []

    assets = pl.DataFrame({"asset_id": ["A-1", "A-2"], "node_id": ["m-h200-01", "r-l40s-std-01"],
                           "acquisition_cost": [1000.0, float("inf")], "currency": ["USD", "USD"],
                           "in_service_date": [date(2026, 1, 1)] * 2, "useful_life_months": [60, 60],
                           "salvage_value": [0.0, 0.0]})
    out = ingest(tmp_path / "a", small_inventory, "assets", None, {"canonical/assets.parquet": assets})
    assert verdicts(out["quarantine"]) == [(2, "out_of_range")]
    assert out["suite_errors"] == []


def test_request_tokens_beyond_any_context_window(tmp_path, small_inventory):
    def line(rid, tokens, e2e="3.3"):
        return ('{"time": "' + D + 'T10:00:00Z", "gen_ai.response.id": "' + rid + '", "server.address": "m-h200-01", '
                '"gen_ai.request.model": "qwen3-32b", "inferledger.tier": "premium", "inferledger.tenant.id": "t", '
                f'"gen_ai.usage.input_tokens": {tokens}, "gen_ai.usage.output_tokens": 10, '
                f'"gen_ai.latency.e2e": {e2e}}}')
    text = "\n".join([line("r-1", 1200), line("r-2", 200_000_000), line("r-3", 100_000_000)]) + "\n"
    out = ingest(tmp_path, small_inventory, "requests", "metro-east", {"requests/m-h200-01.jsonl": text})
    assert verdicts(out["quarantine"]) == [(2, "out_of_range")]
    assert out["quarantine"]["detail"][0] == ("`gen_ai.usage.input_tokens` 200000000 is outside [-inf, 100,000,000] "
                                              "tokens; fix the exporter")
    assert out["rows"]["input_tokens"].to_list() == [1200, 100_000_000]
    # The bound is an error of the suite; 2 M prompt tokens stays a warning (suspicious, possible).
    assert out["suite_errors"] == []


@pytest.mark.parametrize("old, new, expected", [
    ("price_per_m_input_tokens: 3.0", "price_per_m_input_tokens: .inf",
     "tiers[0].price_per_m_input_tokens: Input should be a finite number (found inf); write a finite number in the "
     "key's range (docs/inventory.md)"),
    ("gpu_tdp_w: 700", "gpu_tdp_w: 1.0e+308",
     "nodes[0].gpu_tdp_w: Input should be less than or equal to 200000 (found 1e+308); write a finite number in the "
     "key's range (docs/inventory.md)"),
    ("adder_per_kwh: 0.045", "adder_per_kwh: .nan",
     "tariffs[0].adder_per_kwh: Input should be a finite number (found nan)"),
    ("price_per_kwh: 0.14", "price_per_kwh: 14",
     "tariffs[1].periods[0].price_per_kwh: Input should be less than or equal to 5 (found 14)"),
])
def test_inventory_refuses_non_finite_and_absurd_numbers(old, new, expected):
    text = (DATA / "inventory_small.yaml").read_text()
    assert old in text
    with pytest.raises(InventoryError) as e:
        parse_inventory(text.replace(old, new, 1), "inventory.yaml")
    assert str(e.value).startswith("inventory.yaml: 1 problem(s) in the inventory:\n  - " + expected)
