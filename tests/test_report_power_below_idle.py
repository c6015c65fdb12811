"""A node meter reading below its node's idle power reaches the morning report (issue 16,
item 12's warning, shown): `inferledger run` of a one-node day whose IPMI meter reads 100 W
against an idle_w of 1,000 W, then the published mart `node_power_below_idle` and the report's
line naming the node, measured against idle_w, and the sensor to check. Figures by hand."""

import textwrap
from datetime import date

import duckdb
import pytest

from pipelines.cli import main

DAY = date(2026, 11, 24)

INVENTORY = """\
version: 1
currency: USD
valid_from: 2026-01-01
sites:
- {id: m, kind: metro, cooling: liquid, design_pue: 1.2, timezone: UTC, tariff: flat}
pools:
- {id: p1, site: m, gpu_model: H100, tiers: [standard]}
nodes:
- {id: n1, pool: p1, gpus: 8, gpu_tdp_w: 700, idle_w: 1000, nameplate_w: 10200, gpu_telemetry: none}
meters:
- {id: n1/bmc, scope: node, site: m, source: ipmi, node: n1, sensor: Sys Power}
tariffs:
- id: flat
  kind: time_of_use
  currency: USD
  periods: [{name: all, days: all, start: "00:00", end: "24:00", price_per_kwh: 0.1}]
tiers:
- {id: standard, ttft_p95_s: 2.0, e2e_p95_s: 30, price_per_m_input_tokens: 0.8, price_per_m_output_tokens: 3.2,
   idle_policy: pro_rata}
models:
- {id: llama-3.1-8b-instruct, params_b: 8}
"""

REQUESTS = """\
request_id,node_id,model,tier,tenant_id,arrived_at,completed_at,queue_s,ttft_s,prefill_s,decode_s,input_tokens,cached_input_tokens,output_tokens,response_bytes,status
r1,n1,llama-3.1-8b-instruct,standard,acme,2026-11-24T01:00:00Z,2026-11-24T01:01:00Z,,,,,100,0,10,,ok
"""


def readings() -> str:
    """A reading every 10 minutes, 144 in the day: 100 W for the first 96 (00:00-15:50), then
    1,000 W for the last 48 (16:00-23:50)."""
    rows = [f"n1/bmc,2026-11-24T{i // 6:02d}:{i % 6 * 10:02d}:00Z,{100 if i < 96 else 1000}" for i in range(144)]
    return "meter_id,ts,power_w\n" + "\n".join(rows) + "\n"


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    root = tmp_path_factory.mktemp("below_idle")
    raw = root / "raw"
    canonical = raw / DAY.isoformat() / "m" / "canonical"
    canonical.mkdir(parents=True)
    (raw / "inventory.yaml").write_text(textwrap.dedent(INVENTORY))
    (canonical / "requests.csv").write_text(REQUESTS)
    (canonical / "power_readings.csv").write_text(readings())
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("DAGSTER_HOME", raising=False)
        mp.delenv("INFERLEDGER_INVENTORY", raising=False)
        mp.delenv("INFERLEDGER_REPORT", raising=False)
        code = main(["run", "--date", DAY.isoformat(), "--raw", str(raw), "--lake", str(root / "lake"),
                     "--warehouse", str(root / "warehouse.duckdb")])
    return code, root


def test_the_mart_counts_the_readings_below_90_percent_of_idle(published):
    code, root = published
    assert code == 0
    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    try:
        rows = con.sql("SELECT * EXCLUDE (date) FROM node_power_below_idle").fetchall()
    finally:
        con.close()
    # floor 0.9 x 1,000 W = 900 W; 96 of the 144 readings (100 W) below it; the median of 96 x 100 W
    # and 48 x 1,000 W is 100 W (the 72nd and 73rd values are both 100 W); the lowest 100 W.
    assert rows == [("m", "n1", "n1/bmc", "ipmi", "Sys Power", 1000.0, 900.0, 144, 96, 100.0, 100.0)]


def test_the_report_names_the_node_its_power_against_idle_and_the_sensor_to_check(published):
    _, root = published
    page = (root / "report.html").read_text()
    assert 'id="power-below-idle" data-nodes="1"' in page
    assert ("2026-11-24: node <b>n1</b> measured 100 W (median; lowest 100 W, 96 of 144 readings below 900 W) "
            "against its idle_w of 1,000 W. Meter <code>n1/bmc</code> (ipmi, sensor `Sys Power`): check that the "
            "IPMI sensor read is the whole node&#x27;s input power (`Chassis Power`, `Pwr Consumption`), not a "
            "board or single-PSU sensor such as `Sys Power` (the meter's `sensor:` in inventory.yaml), "
            "or the node's idle_w.</li>") in page
