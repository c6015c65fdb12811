"""Bill parsers on the real FOCUS samples and on hand-made invoices with one defect each."""

import shutil
from datetime import date, datetime, UTC
from pathlib import Path

import polars as pl
import pytest

from lake.readers import scan_csv_text
from transforms.contracts import COST_LINES
from transforms.ingest.bills import (
    _local_day_start_utc,
    parse_canonical_cost_lines,
    parse_colocation_invoice,
    parse_electricity_invoice,
    parse_focus,
    stable_hex_id,
)
from transforms.ingest.common import accepted, audit, classify, empty_parsed, quarantined

REAL = Path(__file__).parent / "data" / "real"
FOCUS_1_0 = REAL / "focus_sample_data_v1.0"
FOCUS_1_2 = REAL / "focus_spec_v1.2_examples"
DAY = date(2026, 11, 24)  # delivery day: bills are not judged by it
CLOUD = "cloud-use1"


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def ingest(parser, paths, root, inventory, site_id, **reader):
    """Parse, classify and split like the pipeline does: (accepted, quarantined, audit), collected."""
    judged = classify(parser(scan_csv_text(paths, root, **reader), inventory, site_id), COST_LINES, DAY)
    judged = judged.collect().lazy()
    acc, q, a = (f(judged, COST_LINES).collect() for f in (accepted, quarantined, audit))
    assert (a["rows_read"] == a["rows_accepted"] + a["rows_quarantined"]).all()
    assert a["rows_accepted"].sum() == acc.height and a["rows_quarantined"].sum() == q.height
    return acc, q, a


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text.lstrip("\n"))
    return p


def reasons(q: pl.DataFrame) -> list[tuple[int, str]]:
    return q.select("source_row", "reason").rows()


# --- FOCUS 1.0 real sample -------------------------------------------------------------------

@pytest.fixture(scope="module")
def focus_sample(small_inventory):
    return ingest(parse_focus, [FOCUS_1_0 / "focus_sample.csv"], FOCUS_1_0, small_inventory, CLOUD,
                  null_values=["NULL"])


def test_focus_1_0_sample_is_accepted_whole(focus_sample):
    # Its real defects (NULL literals, naive timestamps, the extra `Id` column, `Usage-based`)
    # are all read; no line is a genuine error, and no two lines are identical (even without `Id`).
    acc, q, a = focus_sample
    assert a.rows() == [("cost_lines", "focus_sample.csv", 1000, 1000, 0, "read", None)]
    assert q.height == 0
    assert acc["line_id"].n_unique() == 1000 and acc["line_id"].str.contains(r"^[0-9a-f]{16}$").all()
    assert round(acc["billed_amount"].sum(), 2) == 20.52
    assert round(acc["effective_amount"].sum(), 2) == 14.98
    assert acc["billed_amount"].sum() == pytest.approx(20.52022672899, abs=1e-9)
    assert acc["effective_amount"].sum() == pytest.approx(14.97651418586, abs=1e-9)
    by_type = dict(acc.group_by("cost_type").len().rows())
    assert by_type == {"egress": 103, "cloud_compute": 449, "other": 448}
    assert dict(acc.group_by("charge_category").len().rows()) == {"Usage": 997, "Adjustment": 2, "Credit": 1}
    assert acc["currency"].unique().to_list() == ["USD"]
    assert acc["site_id"].unique().to_list() == [CLOUD]
    assert acc["resource_id"].null_count() == 75  # `NULL` in the file
    assert acc.select(pl.col("period_start").min(), pl.col("period_end").max()).row(0) == (
        utc(2024, 9, 1), utc(2024, 10, 1))


def test_focus_1_0_first_row_mapping(focus_sample):
    acc, _, _ = focus_sample
    row = acc.filter(pl.col("resource_id") == "arn:ats:sqs:us-test-2:347410479675:mibelllmel-i-032l64f2065481b12").row(
        0, named=True)
    assert row == {
        "source": "focus", "line_id": "ec99f0c7d6649c1b", "site_id": CLOUD, "resource_id": row["resource_id"],
        "period_start": utc(2024, 9, 18, 22), "period_end": utc(2024, 9, 18, 23),  # naive = UTC
        "cost_type": "other", "billed_amount": 0.0000008, "effective_amount": 0.0, "currency": "USD",
        "quantity": 2.0, "unit": "Requests", "service_name": "Amazon Simple Queue Service",
        "charge_category": "Usage", "tou_period": None, "peak_at": None}


def test_focus_1_0_credit_without_consumed_quantity_uses_pricing_quantity(focus_sample):
    acc, _, _ = focus_sample
    credit = acc.filter(pl.col("charge_category") == "Credit").row(0, named=True)
    assert (credit["quantity"], credit["unit"], credit["cost_type"]) == (0.0, "Hours", "other")


def test_focus_null_literal_is_read_by_the_parser_whatever_the_reader(focus_sample, small_inventory):
    without, _, _ = ingest(parse_focus, [FOCUS_1_0 / "focus_sample.csv"], FOCUS_1_0, small_inventory, CLOUD)
    assert without.equals(focus_sample[0])


# --- FOCUS 1.2 specification examples ----------------------------------------------------------

CD = "commitment_discount_"
SAAS = "saas_examples__"
MISSING = "missing_required_field"  # these abridged examples have no BillingCurrency column
# file: (rows read, accepted, quarantined by reason, accepted billed sum, accepted effective sum)
FOCUS_1_2_EXPECTED = {
    f"{CD}flexibility__one_hundred_percent_utilization_with_"
    f"{CD}flexibility_with_1_resource.csv": (3, 0, {MISSING: 3}, 0, 0),
    f"{CD}flexibility__one_hundred_percent_utilization_with_"
    f"{CD}flexibility_with_2_resources.csv": (3, 0, {MISSING: 3}, 0, 0),
    f"{CD}flexibility__one_hundred_percent_utilization_without_{CD}flexibility.csv": (2, 0, {MISSING: 2}, 0, 0),
    f"{CD}flexibility__zero_percent_utilization_without_{CD}flexibility.csv": (3, 0, {MISSING: 3}, 0, 0),
    f"{CD}scenarios__{CD}purchase_scenario_1.csv": (1, 0, {MISSING: 1}, 0, 0),
    f"{CD}scenarios__{CD}purchase_scenario_2.csv": (3, 0, {MISSING: 2, "bad_timestamp": 1}, 0, 0),
    f"{CD}scenarios__{CD}purchase_scenario_3.csv": (4, 0, {MISSING: 3, "bad_timestamp": 1}, 0, 0),
    f"{CD}scenarios__{CD}usage_scenario_1.csv": (1, 0, {MISSING: 1}, 0, 0),
    f"{CD}scenarios__{CD}usage_scenario_2.csv": (1, 0, {MISSING: 1}, 0, 0),
    f"{CD}scenarios__{CD}usage_scenario_3.csv": (2, 0, {MISSING: 2}, 0, 0),
    f"{CD}scenarios__{CD}usage_scenario_4.csv": (2, 0, {MISSING: 2}, 0, 0),
    f"{SAAS}simple_agreements__simple_saas_agreements_a1.csv": (1, 1, {}, 10000, 10000),
    f"{SAAS}simple_agreements__simple_saas_agreements_a2.csv": (1, 1, {}, 50000, 50000),
    f"{SAAS}simple_agreements__simple_saas_agreements_a3.csv": (1, 1, {}, 1000, 1000),
    f"{SAAS}simple_agreements__simple_saas_agreements_b.csv": (1, 1, {}, 50000, 50000),
    f"{SAAS}simple_agreements__simple_saas_agreements_c.csv": (3, 3, {}, 35800, 35800),
    f"{SAAS}spend_agreements__saas_spend_agreements_a1.csv": (4, 4, {}, 1200, 1200),
    f"{SAAS}spend_agreements__saas_spend_agreements_a2.csv": (13, 13, {}, 1200, 1200),
    f"{SAAS}spend_agreements__saas_spend_agreements_b1.csv": (5, 5, {}, 1200, 1200),
    f"{SAAS}spend_agreements__saas_spend_agreements_b2.csv": (14, 14, {}, 1200, 1200),
    f"{SAAS}virtual_currency_pricing_model_a1.csv": (1, 1, {}, 200000, 0),
    f"{SAAS}virtual_currency_pricing_model_a2.csv": (3, 3, {}, 0, 1230),
    f"{SAAS}virtual_currency_pricing_model_b1.csv": (1, 1, {}, 100000, 0),
    f"{SAAS}virtual_currency_pricing_model_b2.csv": (3, 3, {}, 0, 615),
    f"{SAAS}virtual_currency_pricing_model_b3.csv": (3, 3, {}, 0, 495),
    f"{SAAS}virtual_currency_pricing_model_c.csv": (2, 2, {}, 53000, 0),
}


def test_every_focus_1_2_example_is_listed():
    # 26 CSV files (the folder's 27th file is the licence).
    assert sorted(p.name for p in FOCUS_1_2.glob("*.csv")) == sorted(FOCUS_1_2_EXPECTED)
    assert len(FOCUS_1_2_EXPECTED) == 26


@pytest.mark.parametrize("name", sorted(FOCUS_1_2_EXPECTED), ids=lambda n: n.removesuffix(".csv")[-40:])
def test_focus_1_2_example(name, small_inventory):
    rows, n_ok, by_reason, billed, effective = FOCUS_1_2_EXPECTED[name]
    acc, q, a = ingest(parse_focus, [FOCUS_1_2 / name], FOCUS_1_2, small_inventory, CLOUD)
    assert a.rows() == [("cost_lines", name, rows, n_ok, rows - n_ok, "read", None)]  # blank lines are not rows
    assert dict(q.group_by("reason").len().rows()) == by_reason
    assert round(acc["billed_amount"].sum(), 2) == billed
    assert round(acc["effective_amount"].sum(), 2) == effective
    assert acc["currency"].eq("USD").all() and acc["cost_type"].eq("other").all()


def test_focus_1_2_hour_30_is_a_bad_timestamp(small_inventory):
    name = f"{CD}scenarios__{CD}purchase_scenario_2.csv"
    _, q, _ = ingest(parse_focus, [FOCUS_1_2 / name], FOCUS_1_2, small_inventory, CLOUD)
    bad = q.filter(pl.col("reason") == "bad_timestamp").row(0, named=True)
    assert bad["source_row"] == 3 and bad["detail"].startswith("`ChargePeriodEnd` 2023-02-01T30:00:00Z is not")


def test_focus_1_2_saas_us_dates_and_spreadsheet_money(small_inventory):
    name = f"{SAAS}simple_agreements__simple_saas_agreements_c.csv"
    acc, _, _ = ingest(parse_focus, [FOCUS_1_2 / name], FOCUS_1_2, small_inventory, CLOUD)
    assert acc.sort("period_start").select("period_start", "period_end", "billed_amount", "quantity",
                                           "unit").rows() == [
        (utc(2025, 4, 1), utc(2025, 5, 1), 10100.0, 505.0, "Count"),
        (utc(2025, 5, 1), utc(2025, 6, 1), 13000.0, 650.0, "Count"),
        (utc(2025, 6, 1), utc(2025, 7, 1), 12700.0, 635.0, "Count"),
    ]


def test_focus_1_2_virtual_currency_keeps_billing_currency(small_inventory):
    name = f"{SAAS}virtual_currency_pricing_model_a2.csv"  # BOM, CRLF, PricingCurrency = Token
    acc, _, _ = ingest(parse_focus, [FOCUS_1_2 / name], FOCUS_1_2, small_inventory, CLOUD)
    assert acc.sort("effective_amount").select("effective_amount", "currency", "quantity", "unit",
                                               "resource_id").rows() == [
        (20.0, "USD", 5.0, "Execution", "adbd-12af3-1234"),
        (490.0, "USD", 245.0, "Execution", "adbd-12af3-1234"),
        (720.0, "USD", 120.0, "Workflow operation", "718239-abd0-12353"),
    ]


# The commitment examples completed with the BillingCurrency they leave out: the golden cases of
# amortization. file: (accepted, quarantined reasons, billed sum, effective sum)
COMMITMENT_WITH_CURRENCY = {
    f"{CD}flexibility__one_hundred_percent_utilization_with_{CD}flexibility_with_1_resource.csv": (3, [], 2.75, 2.75),
    f"{CD}flexibility__one_hundred_percent_utilization_with_{CD}flexibility_with_2_resources.csv": (3, [], 2.0, 2.0),
    f"{CD}flexibility__one_hundred_percent_utilization_without_{CD}flexibility.csv": (2, [], 1.5, 1.5),
    f"{CD}flexibility__zero_percent_utilization_without_{CD}flexibility.csv": (3, [], 3.5, 3.5),
    f"{CD}scenarios__{CD}purchase_scenario_1.csv": (1, [], 8760.0, 0.0),
    f"{CD}scenarios__{CD}purchase_scenario_2.csv": (2, ["bad_timestamp"], 2.0, 0.0),
    f"{CD}scenarios__{CD}purchase_scenario_3.csv": (3, ["bad_timestamp"], 4381.0, 0.0),
    f"{CD}scenarios__{CD}usage_scenario_1.csv": (1, [], 0.0, 1.0),
    f"{CD}scenarios__{CD}usage_scenario_2.csv": (1, [], 0.0, 1.0),
    f"{CD}scenarios__{CD}usage_scenario_3.csv": (2, [], 0.0, 1.0),
    f"{CD}scenarios__{CD}usage_scenario_4.csv": (2, [], 0.5, 1.5),
}


@pytest.mark.parametrize("name", sorted(COMMITMENT_WITH_CURRENCY), ids=lambda n: n.removesuffix(".csv")[-40:])
def test_focus_1_2_commitment_examples_with_their_currency(name, small_inventory):
    n_ok, why, billed, effective = COMMITMENT_WITH_CURRENCY[name]
    raw = scan_csv_text([FOCUS_1_2 / name], FOCUS_1_2).with_columns(
        pl.when(pl.col("ChargePeriodStart").is_not_null()).then(pl.lit("USD")).alias("BillingCurrency"))
    judged = classify(parse_focus(raw, small_inventory, CLOUD), COST_LINES, DAY)
    acc, q = accepted(judged, COST_LINES).collect(), quarantined(judged, COST_LINES).collect()
    assert (acc.height, q["reason"].to_list()) == (n_ok, why)
    assert acc.select(pl.col("billed_amount", "effective_amount").sum().round(2)).row(0) == (billed, effective)


def test_focus_identical_lines_in_one_file_are_distinct_charges(small_inventory):
    # The spec's example bills two medium VMs with two identical lines: both are kept (with ids
    # `<h>` and `<h>-2`), and the commitment's 2.00 is fully amortized (see the table above).
    name = f"{CD}flexibility__one_hundred_percent_utilization_with_{CD}flexibility_with_2_resources.csv"
    parsed = parse_focus(scan_csv_text([FOCUS_1_2 / name], FOCUS_1_2), small_inventory, CLOUD).collect()
    ids = parsed.filter(pl.col("charge_category") == "Usage").sort("_source_row")["line_id"].to_list()
    assert len(ids) == 2 and ids[1] == ids[0] + "-2"


def test_focus_file_delivered_twice_collapses(tmp_path, small_inventory):
    name = f"{SAAS}simple_agreements__simple_saas_agreements_c.csv"
    shutil.copy(FOCUS_1_2 / name, tmp_path / "a.csv")
    shutil.copy(FOCUS_1_2 / name, tmp_path / "b.csv")
    acc, q, a = ingest(parse_focus, [tmp_path / "a.csv", tmp_path / "b.csv"], tmp_path, small_inventory, CLOUD)
    assert acc.height == 3 and acc["billed_amount"].sum() == 35800.0
    assert q.select("source_file", "source_row", "reason").rows() == [
        ("b.csv", 1, "exact_duplicate"), ("b.csv", 2, "exact_duplicate"), ("b.csv", 3, "exact_duplicate")]
    assert a.select("source_file", "rows_accepted", "rows_quarantined").rows() == [("a.csv", 3, 0), ("b.csv", 0, 3)]


def murmur3_x86_32(data: bytes) -> int:
    """Reference MurmurHash3 (x86, 32-bit, seed 0), to pin line ids independently of Polars."""
    def rotl(x, r):
        return ((x << r) | (x >> (32 - r))) & 0xFFFFFFFF

    def mix(k):
        return (rotl((k * 0xCC9E2D51) & 0xFFFFFFFF, 15) * 0x1B873593) & 0xFFFFFFFF

    h, n = 0, len(data) // 4
    for i in range(n):
        h = (rotl(h ^ mix(int.from_bytes(data[4 * i:4 * i + 4], "little")), 13) * 5 + 0xE6546B64) & 0xFFFFFFFF
    if tail := data[4 * n:]:
        h ^= mix(int.from_bytes(tail, "little"))
    h ^= len(data)
    for shift, mult in ((16, 0x85EBCA6B), (13, 0xC2B2AE35)):
        h = ((h ^ (h >> shift)) * mult) & 0xFFFFFFFF
    return h ^ (h >> 16)


def test_stable_hex_id_is_murmur3_as_iceberg_fixes_it():
    assert murmur3_x86_32(b"iceberg") == 1210000089  # the Iceberg specification's test vector
    for text in ("iceberg", "BilledCost=1.00\x1fBillingCurrency=USD", "é"):
        got = pl.select(stable_hex_id(pl.lit(text))).item()
        assert got == f"{murmur3_x86_32(text.encode()):08x}{murmur3_x86_32(('inferledger/' + text).encode()):08x}"


# --- FOCUS defects, one per line -----------------------------------------------------------------

FOCUS_HEADER = ("Id,ChargePeriodStart,ChargePeriodEnd,BilledCost,EffectiveCost,BillingCurrency,ChargeCategory,"
                "ServiceCategory,ServiceName,ResourceId,ConsumedQuantity,ConsumedUnit\n")


def test_focus_defects(tmp_path, small_inventory):
    lines = [
        "1,2024-09-01T02:00:00+02:00,2024-09-01T03:00:00+02:00,1.50,1.25,USD,usage,compute,EC2,i-0c1a0d0000000001,1,Hours",
        "2,2024-09-01T00:00:00Z,2024-09-01T01:00:00Z,2.00,2.00,XYZ,Usage,Compute,EC2,i-1,1,Hours",  # unknown currency
        "3,2024-09-01T00:00:00Z,2024-09-01T01:00:00Z,NULL,2.00,USD,Usage,Compute,EC2,i-2,1,Hours",  # no BilledCost
        "4,2024-09-01T00:00:00Z,2024-09-01T01:00:00Z,12.3.4,2.00,USD,Usage,Compute,EC2,i-3,1,Hours",  # unreadable
        "5,,2024-09-01T01:00:00Z,2.00,2.00,USD,Usage,Compute,EC2,i-4,1,Hours",  # no ChargePeriodStart
        "6,2024-09-01T00:00:00Z,2024-09-01T01:00:00Z,2.00,,USD,Usage,Compute,EC2,i-5,1,Hours",  # no EffectiveCost
        "7,2024-09-01T00:00:00Z,2024-09-01T01:00:00Z,2.00,2.00,Token,Usage,Compute,EC2,i-6,1,Hours",  # not ISO
        "8,2024-09-01T01:00:00Z,2024-09-01T00:00:00Z,2.00,2.00,USD,Usage,Compute,EC2,i-7,1,Hours",  # reversed
        "9,2024-09-01T00:00:00Z,2024-09-01T01:00:00Z,2.00,2.00,USD,Refund,Compute,EC2,i-8,1,Hours",  # not a category
        "10,2024-09-01,2024-09-02,0.25,0.25,usd,Usage,Networking,VPC,NULL,10,GB",
        "11,2024-09-01T00:00:00Z,2024-09-01T01:00:00Z,2.00,2.00,USD,Usage,Compute,EC2,i-9,lots,Hours",  # quantity
    ]
    acc, q, _ = ingest(parse_focus, [write(tmp_path, "bill.csv", FOCUS_HEADER + "\n".join(lines) + "\n")],
                       tmp_path, small_inventory, CLOUD)
    assert reasons(q) == [(2, "unknown_currency"), (3, "missing_required_field"), (4, "invalid_value"),
                          (5, "missing_required_field"), (6, "missing_required_field"), (7, "unknown_currency"),
                          (8, "end_before_start"), (9, "invalid_value"), (11, "invalid_value")]
    details = dict(q.select("source_row", "detail").rows())
    assert details[3] == "required field `billed_amount` is empty; fill it in the source or fix the exporter"
    assert details[4] == "`BilledCost` 12.3.4 is not a number; write a plain decimal (e.g. 1234.56)"
    assert details[6].startswith("required field `effective_amount` is empty")
    assert details[7].startswith("currency TOKEN is not an ISO 4217 code")
    assert details[11].startswith("`ConsumedQuantity` lots is not a number")
    assert acc.sort("billed_amount").select(
        "period_start", "period_end", "billed_amount", "effective_amount", "currency", "cost_type",
        "charge_category", "resource_id", "quantity", "unit").rows() == [
        (utc(2024, 9, 1), utc(2024, 9, 2), 0.25, 0.25, "USD", "egress", "Usage", None, 10.0, "GB"),
        # +02:00 converted: 02:00+02:00 is 00:00 UTC
        (utc(2024, 9, 1, 0), utc(2024, 9, 1, 1), 1.5, 1.25, "USD", "cloud_compute", "Usage", "i-0c1a0d0000000001",
         1.0, "Hours"),
    ]


def test_focus_folder_of_an_unknown_site(tmp_path, small_inventory):
    line = "1,2024-09-01T00:00:00Z,2024-09-01T01:00:00Z,1.50,1.25,USD,Usage,Compute,EC2,i-1,1,Hours\n"
    _, q, _ = ingest(parse_focus, [write(tmp_path, "bill.csv", FOCUS_HEADER + line)], tmp_path, small_inventory,
                     "nowhere")
    assert reasons(q) == [(1, "unknown_site")]
    assert "site 'nowhere', which is not in the inventory" in q["detail"][0]


# --- electricity and colocation invoices ---------------------------------------------------------

ELECTRICITY_HEADER = ("invoice_id,line_no,account,period_start,period_end,line_type,tou_period,quantity,unit,rate,"
                      "amount,currency,peak_at\n")


def test_electricity_invoice_across_the_dst_change(tmp_path, small_inventory):
    # remote-plains is in America/Chicago; DST starts on 2026-03-08: the March invoice starts at
    # CST midnight (06:00Z) and ends at CDT midnight (05:00Z).
    lines = [
        "INV-3,1,ACC-9,2026-03-01,2026-04-01,energy,on_peak,1000,kWh,0.14,140.00,USD,",
        "INV-3,2,ACC-9,2026-03-01,2026-04-01,energy,off_peak,2000.5,kWh,0.065,130.03,USD,",
        "INV-3,3,ACC-9,2026-03-01,2026-04-01,demand,,85.2,kW,12.50,1065.00,USD,2026-03-10T14:15:00-05:00",
        "INV-3,4,ACC-9,2026-03-01,2026-04-01,fixed,,1,month,250,250.00,USD,",
        "INV-3,5,ACC-9,2026-03-01,2026-04-01,tax,,,,,31.50,USD,",
    ]
    acc, q, _ = ingest(parse_electricity_invoice, [write(tmp_path, "inv.csv", ELECTRICITY_HEADER + "\n".join(lines))],
                       tmp_path, small_inventory, "remote-plains")
    assert q.height == 0
    assert acc.select("line_id", "period_start", "period_end", "cost_type", "service_name", "tou_period",
                      "billed_amount", "effective_amount", "quantity", "unit", "peak_at", "charge_category").rows() == [
        ("INV-3:1", utc(2026, 3, 1, 6), utc(2026, 4, 1, 5), "energy", "energy", "on_peak", 140.0, 140.0, 1000.0,
         "kWh", None, "Usage"),
        ("INV-3:2", utc(2026, 3, 1, 6), utc(2026, 4, 1, 5), "energy", "energy", "off_peak", 130.03, 130.03, 2000.5,
         "kWh", None, "Usage"),
        ("INV-3:3", utc(2026, 3, 1, 6), utc(2026, 4, 1, 5), "demand", "demand", None, 1065.0, 1065.0, 85.2, "kW",
         utc(2026, 3, 10, 19, 15), "Usage"),
        ("INV-3:4", utc(2026, 3, 1, 6), utc(2026, 4, 1, 5), "other", "fixed", None, 250.0, 250.0, 1.0, "month",
         None, "Usage"),
        ("INV-3:5", utc(2026, 3, 1, 6), utc(2026, 4, 1, 5), "other", "tax", None, 31.5, 31.5, None, None,
         None, "Usage"),
    ]
    assert acc["source"].unique().to_list() == ["electricity_invoice"]
    assert acc["site_id"].unique().to_list() == ["remote-plains"]


def test_electricity_invoice_defects(tmp_path, small_inventory):
    lines = [
        "INV-11,1,A,2026-11-01,2026-12-01,energy,off_peak,100,kWh,0.065,6.50,USD,",
        "INV-11,2,A,2026-11-01,2026-12-01,energy,on_peak,100,kWh,0.14,15.00,USD,",  # 100 x 0.14 = 14.00
        "INV-11,3,A,2026-11-01,2026-12-01,energy,on_peak,100,kWh,0.14,14.00,EUX,",  # unknown currency
        "INV-11,4,A,2026-11-01,2026-12-01,fixed,,1,month,250,250.00,USD,",
        "INV-11,4,A,2026-11-01,2026-12-01,fixed,,1,month,260,260.00,USD,",  # same line id, other amount
        "INV-11,5,A,2026-11-01,2026-12-01,tax,,,,,9.99,USD,",
        "INV-11,5,A,2026-11-01,2026-12-01,tax,,,,,9.99,USD,",  # exact copy
        "INV-11,6,A,2026-11-01,2026-12-01,rebate,,,,,-5.00,USD,",  # unknown line type
        "INV-11,7,A,2026-11-01,2026-12-01,energy,on_peak,-10,kWh,0.14,-1.40,USD,",  # negative quantity
        "INV-11,8,A,2026-11-01,2026-12-01,demand,,80,kW,12.5,1000.00,USD,2026-11-10 14:15:00",  # no offset
        "INV-11,9,A,2026-11-31,2026-12-01,energy,off_peak,1,kWh,0.065,0.07,USD,",  # no such date
        "INV-11,10,A,2026-12-01,2026-11-01,energy,off_peak,1,kWh,0.065,0.07,USD,",  # reversed period
        ",11,A,2026-11-01,2026-12-01,energy,off_peak,1,kWh,0.065,0.07,USD,",  # no invoice id
        "INV-11,12,A,2026-11-01,2026-12-01,,,1,kWh,0.065,0.07,USD,",  # no line type
    ]
    acc, q, _ = ingest(parse_electricity_invoice, [write(tmp_path, "inv.csv", ELECTRICITY_HEADER + "\n".join(lines))],
                       tmp_path, small_inventory, "remote-plains")
    assert reasons(q) == [(2, "invalid_value"), (3, "unknown_currency"), (4, "conflicting_duplicate"),
                          (5, "conflicting_duplicate"), (7, "exact_duplicate"), (8, "invalid_value"),
                          (9, "negative_value"), (10, "bad_timestamp"), (11, "bad_timestamp"),
                          (12, "end_before_start"), (13, "missing_required_field"), (14, "missing_required_field")]
    details = dict(q.select("source_row", "detail").rows())
    assert details[2] == ("amount 15.00 differs from quantity x rate = 100 x 0.14 = 14.0 by more than a cent; "
                          "correct the invoice line")
    assert details[4] == ("key electricity_invoice|INV-11:4 appears with different values; "
                          "correct the source so one version remains")
    # November: CDT midnight (05:00Z) to CST midnight (06:00Z), DST ends 2026-11-01.
    assert acc.select("line_id", "period_start", "period_end", "billed_amount").rows() == [
        ("INV-11:1", utc(2026, 11, 1, 5), utc(2026, 12, 1, 6), 6.5),
        ("INV-11:5", utc(2026, 11, 1, 5), utc(2026, 12, 1, 6), 9.99),
    ]


def test_local_day_start_where_midnight_does_not_exist():
    # America/Santiago springs forward at 00:00 on 2026-09-06: that day starts at 01:00 -03.
    starts = pl.select(*[_local_day_start_utc(pl.lit(d), "America/Santiago").alias(d)
                         for d in ("2026-09-05", "2026-09-06")]).row(0)
    assert starts == (utc(2026, 9, 5, 4), utc(2026, 9, 6, 4))


def test_colocation_invoice(tmp_path, small_inventory):
    header = "invoice_id,line_no,period_start,period_end,item,quantity,unit,unit_price,amount,currency\n"
    lines = [
        "CO-7,1,2026-11-01,2026-12-01,power_commit,10.2,kW-month,184,1876.80,USD",
        "CO-7,2,2026-11-01,2026-12-01,space,1,cabinet-month,1500,1500.00,USD",
        "CO-7,3,2026-11-01,2026-12-01,cross_connect,2,each,300,600.00,USD",
        "CO-7,4,2026-11-01,2026-12-01,cross_connect,2,each,300,\"$650.00\",USD",  # off by 50
    ]
    acc, q, _ = ingest(parse_colocation_invoice, [write(tmp_path, "colo.csv", header + "\n".join(lines) + "\n\n")],
                       tmp_path, small_inventory, "metro-east")
    assert reasons(q) == [(4, "invalid_value")]
    assert acc.select("source", "line_id", "period_start", "period_end", "cost_type", "service_name", "quantity",
                      "unit", "billed_amount", "effective_amount", "currency").rows() == [
        ("colocation_invoice", "CO-7:1", utc(2026, 11, 1, 4), utc(2026, 12, 1, 5), "colocation", "power_commit",
         10.2, "kW-month", 1876.8, 1876.8, "USD"),
        ("colocation_invoice", "CO-7:2", utc(2026, 11, 1, 4), utc(2026, 12, 1, 5), "colocation", "space",
         1.0, "cabinet-month", 1500.0, 1500.0, "USD"),
        ("colocation_invoice", "CO-7:3", utc(2026, 11, 1, 4), utc(2026, 12, 1, 5), "colocation", "cross_connect",
         2.0, "each", 600.0, 600.0, "USD"),
    ]


# --- canonical cost lines ----------------------------------------------------------------------

def test_canonical_cost_lines(tmp_path, small_inventory):
    header = "line_id,site_id,period_start,period_end,cost_type,billed_amount,effective_amount,currency,service_name\n"
    lines = [
        "L1,,2026-11-01T00:00:00-05:00,2026-11-02T00:00:00-05:00,other,10.5,10.5,USD,network",
        "L2,remote-plains,2026-11-01T00:00:00Z,2026-11-02T00:00:00Z,other,1,1,USD,x",  # another site
        "L3,metro-east,2026-11-01T00:00:00Z,2026-11-02T00:00:00Z,fuel,1,1,USD,x",  # not a cost type
        "L4,metro-east,2026-11-01T00:00:00Z,2026-11-02T00:00:00Z,other,1,1,ABC,x",  # unknown currency
        "L5,metro-east,2026-11-01T00:00:00,2026-11-02T00:00:00Z,other,1,1,USD,x",  # no offset
        "L6,metro-east,2026-11-01T00:00:00Z,2026-11-02T00:00:00Z,other,1,1,USD,x",
        "L6,metro-east,2026-11-01T00:00:00Z,2026-11-02T00:00:00Z,other,1,1,USD,x",  # exact copy
    ]
    acc, q, _ = ingest(parse_canonical_cost_lines, [write(tmp_path, "c.csv", header + "\n".join(lines))],
                       tmp_path, small_inventory, "metro-east")
    assert reasons(q) == [(2, "unknown_site"), (3, "invalid_value"), (4, "unknown_currency"), (5, "bad_timestamp"),
                          (7, "exact_duplicate")]
    assert acc.select("source", "line_id", "site_id", "period_start", "billed_amount").rows() == [
        ("canonical", "L1", "metro-east", utc(2026, 11, 1, 5), 10.5),
        ("canonical", "L6", "metro-east", utc(2026, 11, 1), 1.0),
    ]


@pytest.mark.parametrize("parser", [parse_focus, parse_electricity_invoice, parse_colocation_invoice,
                                    parse_canonical_cost_lines])
def test_parsers_give_the_parsed_shape_without_files(parser, small_inventory):
    parsed = parser(scan_csv_text([], REAL), small_inventory, "metro-east")
    assert parsed.collect_schema() == empty_parsed(COST_LINES).collect_schema()
    assert parsed.collect().height == 0
