"""A FOCUS file, an invoice or an asset register whose header lacks a column a line cannot do
without says so: "column X is missing from FILE; add it (...)", on every line of that file only,
rather than "required field is empty" (issue 16, item 14's wording, for these formats too)."""

from datetime import date
from pathlib import Path

import polars as pl

from lake.readers import scan_csv_text
from transforms.contracts import ASSETS, COST_LINES
from transforms.ingest.assets import parse_asset_register
from transforms.ingest.bills import parse_colocation_invoice, parse_electricity_invoice, parse_focus
from transforms.ingest.common import classify, quarantined

FOCUS_1_0 = Path(__file__).parent / "data" / "real" / "focus_sample_data_v1.0" / "focus_sample.csv"
DAY = date(2026, 11, 24)


def judged(parser, contract, root: Path, files: dict[str, str], inventory, site_id) -> pl.DataFrame:
    paths = []
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
        paths.append(root / name)
    parsed = parser(scan_csv_text(paths, root, null_values=["NULL"]), inventory, site_id)
    return quarantined(classify(parsed, contract, DAY), contract).collect()


def test_a_focus_export_without_effectivecost_names_the_column_on_each_of_its_lines(tmp_path, small_inventory):
    """The real FOCUS 1.0 sample (1,000 lines) written again without its EffectiveCost column,
    beside a two-line file that has it: the 1,000 lines of the first are quarantined naming the
    column and the file; the other file's lines are not."""
    sample = pl.read_csv(FOCUS_1_0, infer_schema=False)
    without = sample.drop("EffectiveCost")
    first_two = sample.head(2)
    (tmp_path / "cloud-use1" / "focus").mkdir(parents=True)
    without.write_csv(tmp_path / "cloud-use1" / "focus" / "a.csv")
    first_two.write_csv(tmp_path / "cloud-use1" / "focus" / "b.csv")
    parsed = parse_focus(scan_csv_text(sorted((tmp_path / "cloud-use1" / "focus").glob("*.csv")), tmp_path,
                                       null_values=["NULL"]), small_inventory, "cloud-use1")
    q = quarantined(classify(parsed, COST_LINES, DAY), COST_LINES).collect()
    missing = q.filter(pl.col("detail").str.starts_with("column `EffectiveCost` is missing"))
    assert missing.height == 1_000 and set(missing["source_file"]) == {"cloud-use1/focus/a.csv"}
    assert set(missing["reason"]) == {"missing_required_field"}
    assert missing["detail"][0] == (
        "column `EffectiveCost` is missing from cloud-use1/focus/a.csv; add it (FOCUS 1.0 column EffectiveCost: the "
        "amortized cost, in BillingCurrency; never assumed equal to BilledCost)")
    assert q.filter(pl.col("source_file") == "cloud-use1/focus/b.csv")["detail"].str.contains("is missing").sum() == 0


def test_an_electricity_invoice_without_amount_and_a_colocation_invoice_without_currency(tmp_path, small_inventory):
    electricity = {"metro-east/electricity/inv.csv": (
        "invoice_id,line_no,account,period_start,period_end,line_type,tou_period,quantity,unit,rate,currency,peak_at\n"
        "E-1,1,acct,2026-11-01,2026-12-01,energy,,1000,kWh,0.1,USD,\n"
        "E-1,2,acct,2026-11-01,2026-12-01,fixed,,,,,USD,\n")}
    q = judged(parse_electricity_invoice, COST_LINES, tmp_path, electricity, small_inventory, "metro-east")
    assert q.select("source_row", "reason").rows() == [(1, "missing_required_field"), (2, "missing_required_field")]
    assert q["detail"][0] == ("column `amount` is missing from metro-east/electricity/inv.csv; add it (the "
                              "electricity invoice's header, docs/raw-formats.md)")
    no_type = {"metro-east/electricity/inv2.csv": (
        "invoice_id,line_no,account,period_start,period_end,quantity,unit,rate,amount,currency\n"
        "E-2,1,acct,2026-11-01,2026-12-01,1000,kWh,0.1,100.00,USD\n")}
    q = judged(parse_electricity_invoice, COST_LINES, tmp_path, no_type, small_inventory, "metro-east")
    assert q.select("source_row", "reason", "detail").rows() == [(1, "missing_required_field", (
        "column `line_type` is missing from metro-east/electricity/inv2.csv; add it (the electricity invoice's "
        "header, docs/raw-formats.md)"))]
    colocation = {"metro-east/colocation/inv.csv": (
        "invoice_id,line_no,period_start,period_end,item,quantity,unit,unit_price,amount\n"
        "C-1,1,2026-11-01,2026-12-01,space,1,cabinet-month,900,900\n")}
    q = judged(parse_colocation_invoice, COST_LINES, tmp_path, colocation, small_inventory, "metro-east")
    assert q.select("source_row", "reason", "detail").rows() == [(1, "missing_required_field", (
        "column `currency` is missing from metro-east/colocation/inv.csv; add it (the colocation invoice's header, "
        "docs/raw-formats.md)"))]


def test_an_asset_register_without_salvage_value_names_it(tmp_path, small_inventory):
    register = {"_fleet/assets/register.csv": (
        "asset_id,description,node_id,acquisition_cost,currency,in_service_date,useful_life_months,"
        "depreciation_method,disposal_date\n"
        "A-1,server,m-h200-01,250000,USD,2025-01-01,48,SL,\n")}
    q = judged(parse_asset_register, ASSETS, tmp_path, register, small_inventory, None)
    assert q.select("source_row", "reason", "detail").rows() == [(1, "missing_required_field", (
        "column `salvage_value` is missing from _fleet/assets/register.csv; add it (the asset register's header, "
        "docs/raw-formats.md)"))]
    # An empty cell in a column the header has is still "required field is empty" (the contract's
    # wording): the column is there, the value is not.
    register = {"_fleet/assets/register.csv": (
        "asset_id,description,node_id,acquisition_cost,currency,in_service_date,useful_life_months,salvage_value\n"
        "A-1,server,m-h200-01,250000,USD,2025-01-01,48,\n")}
    q = judged(parse_asset_register, ASSETS, tmp_path, register, small_inventory, None)
    assert q["detail"].to_list() == ["required field `salvage_value` is empty; fill it in the source or fix the "
                                     "exporter"]
