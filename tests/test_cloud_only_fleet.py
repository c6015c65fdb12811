"""A fleet of cloud nodes only (issue 16, item 6): no site has a tariff, no meter, no invoice.

The attribution crashed on such a fleet (`SchemaError: site_id str vs null`): the frame of the
priced sites' tariffs was built from empty lists, so its `site_id` had no type. The whole day is
run here through the pipeline (`inferledger run`: ingest, attribution, publish, real Dagster
runs), from a hand-written raw folder of FOCUS lines and canonical request logs."""

import textwrap
from datetime import date

import duckdb
import polars as pl
import pytest

from pipelines.cli import main
from transforms.attribution.reconcile import conservation_failures

DAY = date(2026, 11, 24)

INVENTORY = """\
version: 1
currency: USD
valid_from: 2026-01-01
sites:
- {id: cloud-use1, kind: cloud, cooling: provider, design_pue: 1.2, timezone: UTC}
pools:
- {id: cloud-h100, site: cloud-use1, gpu_model: H100, tiers: [standard]}
nodes:
- {id: c-01, pool: cloud-h100, gpus: 8, gpu_tdp_w: 700, idle_w: 1296, nameplate_w: 10200,
   cloud_resource_id: i-0001, gpu_telemetry: none}
tiers:
- {id: standard, ttft_p95_s: 2.0, e2e_p95_s: 30, price_per_m_input_tokens: 0.8, price_per_m_output_tokens: 3.2,
   idle_policy: pro_rata}
models:
- {id: llama-3.1-8b-instruct, params_b: 8}
"""

FOCUS = """\
ChargePeriodStart,ChargePeriodEnd,ChargeCategory,ServiceCategory,ServiceName,ResourceId,BilledCost,EffectiveCost,BillingCurrency,PricingQuantity,PricingUnit
2026-11-24T00:00:00Z,2026-11-25T00:00:00Z,Usage,Compute,Amazon Elastic Compute Cloud,i-0001,86.40,86.40,USD,24,Hours
2026-11-24T00:00:00Z,2026-11-25T00:00:00Z,Usage,Storage,Amazon Simple Storage Service,bucket-1,5.00,5.00,USD,100,GB-Mo
"""

REQUESTS = """\
request_id,node_id,model,tier,tenant_id,arrived_at,completed_at,queue_s,ttft_s,prefill_s,decode_s,input_tokens,cached_input_tokens,output_tokens,response_bytes,status
r1,c-01,llama-3.1-8b-instruct,standard,acme,2026-11-24T01:00:00Z,2026-11-24T01:01:00Z,,,,,100,0,10,,ok
r2,c-01,llama-3.1-8b-instruct,standard,acme,2026-11-24T02:00:00Z,2026-11-24T02:02:00Z,,,,,100,0,10,,ok
"""


@pytest.fixture(scope="module")
def cloud_day(tmp_path_factory):
    root = tmp_path_factory.mktemp("cloud_only")
    raw = root / "raw"
    site = raw / DAY.isoformat() / "cloud-use1"
    (site / "focus").mkdir(parents=True)
    (site / "canonical").mkdir()
    (raw / "inventory.yaml").write_text(textwrap.dedent(INVENTORY))
    (site / "focus" / "bill.csv").write_text(FOCUS)
    (site / "canonical" / "requests.csv").write_text(REQUESTS)
    code = main(["run", "--date", DAY.isoformat(), "--raw", str(raw), "--lake", str(root / "lake"),
                 "--warehouse", str(root / "warehouse.duckdb")])
    return {"code": code, "lake": root / "lake", "warehouse": root / "warehouse.duckdb"}


def read(lake, name: str) -> pl.DataFrame:
    return pl.read_parquet(lake / name / f"date={DAY}" / "part-0.parquet")


def test_a_cloud_only_day_runs_end_to_end_and_is_published(cloud_day, monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert cloud_day["code"] == 0
    # By hand, 60 s slots: the compute line is 86.40 over the day's 1,440 slots = 0.06 a slot.
    # r1 holds slot 60 alone (01:00-01:01): 0.06; r2 slots 120-121: 0.12. Idle: 86.40 - 0.18 = 86.22,
    # pro rata to direct cost: r1 86.22 x 0.06 / 0.18 = 28.74, r2 57.48; fully loaded 28.80 and 57.60.
    facts = read(cloud_day["lake"], "request_costs").sort("request_id")
    assert facts["cloud_cost"].to_list() == pytest.approx([0.06, 0.12], abs=1e-9)
    assert facts["energy_cost"].to_list() == [0.0, 0.0]  # a cloud node's energy is in its bill
    assert facts["idle_share"].to_list() == pytest.approx([28.74, 57.48], abs=1e-9)
    assert facts["fully_loaded_cost"].to_list() == pytest.approx([28.80, 57.60], abs=1e-9)
    # The storage line matches no node: unattributed, 5.00 USD.
    un = read(cloud_day["lake"], "unattributed")
    assert un.select("reason", "amount", "currency").rows() == [("not_a_serving_cost", 5.0, "USD")]
    rec = read(cloud_day["lake"], "reconciliation")
    assert conservation_failures(rec).height == 0
    money = rec.filter(pl.col("unit") != "J").sort("source_amount")
    assert money["unit"].to_list() == ["USD", "USD"]  # the ISO code, not `currency` (item 8)
    assert money.select("source_amount", "to_requests", "to_idle", "unattributed").rows() == [
        (5.0, 0.0, 0.0, 5.0), (86.40, pytest.approx(0.18, abs=1e-9), pytest.approx(86.22, abs=1e-9), 0.0)]
    with duckdb.connect(str(cloud_day["warehouse"]), read_only=True) as con:
        assert con.execute("select count(*) from request_costs").fetchall() == [(2,)]
