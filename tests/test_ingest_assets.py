"""Asset register parsers: the ERP export and the canonical form, judged by the same checks."""

from datetime import date
from pathlib import Path

import polars as pl

from lake.readers import scan_csv_text
from transforms.contracts import ASSETS
from transforms.ingest.assets import parse_asset_register, parse_canonical_assets
from transforms.ingest.common import accepted, audit, classify, empty_parsed, quarantined

DAY = date(2026, 11, 24)
REGISTER_HEADER = ("asset_id,description,node_id,acquisition_cost,currency,in_service_date,useful_life_months,"
                   "salvage_value,depreciation_method,disposal_date\n")


def ingest(parser, raw, inventory):
    judged = classify(parser(raw, inventory, None), ASSETS, DAY).collect().lazy()
    acc, q, a = (f(judged, ASSETS).collect() for f in (accepted, quarantined, audit))
    assert (a["rows_read"] == a["rows_accepted"] + a["rows_quarantined"]).all()
    assert a["rows_accepted"].sum() == acc.height and a["rows_quarantined"].sum() == q.height
    return acc, q, a


def register(tmp_path: Path, lines: list[str]) -> pl.LazyFrame:
    p = tmp_path / "_fleet" / "assets" / "register.csv"
    p.parent.mkdir(parents=True)
    p.write_text(REGISTER_HEADER + "\n".join(lines) + "\n")
    return scan_csv_text([p], tmp_path)


def test_erp_register(tmp_path, small_inventory):
    lines = [
        "A-1,HGX H200 server,m-h200-01,412000.00,USD,2026-01-15,60,12000,SL,",
        "A-2,L40S server,r-l40s-std-01,\"$48,500.00\",usd,2026-02-01,48,0,db,2030-01-31",
        "A-3,L40S server,r-l40s-bat-01,48500,USD,2026-02-01,48,0,,",  # empty method: straight line
        "A-4,ghost,x-unknown-01,1000,USD,2026-02-01,48,0,SL,",  # unknown node
        "A-5,bad method,m-h200-01,1000,USD,2026-02-01,48,0,MACRS,",
        "A-6,negative,m-h200-01,-1000,USD,2026-02-01,48,0,SL,",
        "A-7,salvage too high,m-h200-01,1000,USD,2026-02-01,48,1500,SL,",
        "A-8,foreign,m-h200-01,1000,XXX,2026-02-01,48,0,SL,",  # unknown currency
        "A-9,disposed early,m-h200-01,1000,USD,2026-02-01,48,0,SL,2026-01-31",
        "A-10,no life,m-h200-01,1000,USD,2026-02-01,0,0,SL,",
        "A-11,bad date,m-h200-01,1000,USD,01/02/2026,48,0,SL,",
        "A-12,bad life,m-h200-01,1000,USD,2026-02-01,4 years,0,SL,",
        "A-13,no salvage,m-h200-01,1000,USD,2026-02-01,48,,SL,",
        "A-14,negative salvage,m-h200-01,1000,USD,2026-02-01,48,-1,SL,",
    ]
    acc, q, a = ingest(parse_asset_register, register(tmp_path, lines), small_inventory)
    assert a.rows() == [("assets", "_fleet/assets/register.csv", 14, 3, 11, "read", None)]
    assert q.select("record_key", "reason").rows() == [
        ("A-4", "unknown_node"), ("A-5", "invalid_value"), ("A-6", "negative_value"), ("A-7", "invalid_value"),
        ("A-8", "unknown_currency"), ("A-9", "end_before_start"), ("A-10", "invalid_value"),
        ("A-11", "invalid_value"), ("A-12", "invalid_value"), ("A-13", "missing_required_field"),
        ("A-14", "negative_value")]
    details = dict(q.select("record_key", "detail").rows())
    assert details["A-4"] == ("node x-unknown-01 is not in the inventory; "
                              "add it to inventory.yaml or correct the register")
    assert details["A-5"] == "depreciation_method MACRS is not SL (straight line) or DB (declining balance)"
    assert details["A-9"] == "disposal_date 2026-01-31 is before in_service_date 2026-02-01; correct the dates"
    assert details["A-11"] == "`in_service_date` 01/02/2026 is not a date YYYY-MM-DD"
    assert acc.rows() == [
        ("A-1", "m-h200-01", 412000.0, "USD", date(2026, 1, 15), 60, 12000.0, "straight_line", None, "metro-east"),
        ("A-2", "r-l40s-std-01", 48500.0, "USD", date(2026, 2, 1), 48, 0.0, "declining_balance", date(2030, 1, 31),
         "remote-plains"),
        ("A-3", "r-l40s-bat-01", 48500.0, "USD", date(2026, 2, 1), 48, 0.0, "straight_line", None, "remote-plains"),
    ]


def test_erp_register_duplicates(tmp_path, small_inventory):
    lines = [
        "A-1,server,m-h200-01,1000,USD,2026-01-15,60,0,SL,",
        "A-1,server (re-exported),m-h200-01,1000,USD,2026-01-15,60,0,SL,",  # same asset, same values
        "A-2,server,c-h100-01,1000,USD,2026-01-15,60,0,SL,",
        "A-2,server,c-h100-01,1100,USD,2026-01-15,60,0,SL,",  # same asset, another cost
    ]
    acc, q, _ = ingest(parse_asset_register, register(tmp_path, lines), small_inventory)
    assert acc.select("asset_id", "site_id").rows() == [("A-1", "metro-east")]
    assert q.select("source_row", "reason").rows() == [
        (2, "exact_duplicate"), (3, "conflicting_duplicate"), (4, "conflicting_duplicate")]


def test_canonical_assets_share_the_checks(small_inventory):
    raw = pl.LazyFrame({
        "asset_id": ["C-1", "C-2", "C-3", "C-4", "C-5"],
        "node_id": ["c-h100-01", "m-h200-01", "nope", "m-h200-01", "m-h200-01"],
        "acquisition_cost": [250000.0, 1000.0, 1000.0, 1000.0, 1000.0],
        "currency": ["EUR", "USD", "USD", "USD", "USD"],
        "in_service_date": [date(2026, 3, 1)] * 5,
        "useful_life_months": [72, 60, 60, 60, 60],
        "salvage_value": [0.0, 0.0, 0.0, 2000.0, 0.0],
        "method": ["declining_balance", None, "straight_line", "straight_line", "SL"],
        "site_id": [None, "remote-plains", None, None, None],
        "_source_file": ["_fleet/canonical/assets.parquet"] * 5,
        "_source_row": [1, 2, 3, 4, 5],
    })
    acc, q, _ = ingest(parse_canonical_assets, raw, small_inventory)
    assert q.select("record_key", "reason").rows() == [
        ("C-2", "invalid_value"), ("C-3", "unknown_node"), ("C-4", "invalid_value"), ("C-5", "invalid_value")]
    assert q["detail"][0] == ("site_id remote-plains is not the site of node m-h200-01 (metro-east) in the inventory; "
                              "correct one of them")
    assert acc.rows() == [("C-1", "c-h100-01", 250000.0, "EUR", date(2026, 3, 1), 72, 0.0, "declining_balance", None,
                           "cloud-use1")]


def test_parsers_give_the_parsed_shape_without_files(small_inventory):
    for parser in (parse_asset_register, parse_canonical_assets):
        parsed = parser(scan_csv_text([], Path(".")), small_inventory)
        assert parsed.collect_schema() == empty_parsed(ASSETS).collect_schema()
        assert parsed.collect().height == 0


def test_a_column_missing_from_a_canonical_file_is_named_with_the_file(tmp_path, small_inventory):
    """Two canonical CSVs: `a.csv` has every column; `b.csv` leaves out `acquisition_cost` (required)
    and `site_id`, `method` (which a canonical asset file may omit: transforms/ingest/canonical.py).
    Its 2 rows are quarantined naming the column to add and the file; `a.csv`'s row with an empty
    `acquisition_cost` cell is the ordinary "required field is empty". 3 rows read, 1 accepted."""
    folder = tmp_path / "_fleet" / "canonical"
    folder.mkdir(parents=True)
    (folder / "a.csv").write_text(
        "asset_id,node_id,acquisition_cost,currency,in_service_date,useful_life_months,salvage_value,method,site_id\n"
        "C-1,c-h100-01,250000,USD,2026-03-01,72,0,straight_line,\n"
        "C-2,c-h100-01,,USD,2026-03-01,72,0,straight_line,\n")
    (folder / "b.csv").write_text("asset_id,node_id,currency,in_service_date,useful_life_months,salvage_value\n"
                                  "C-3,m-h200-01,USD,2026-03-01,60,0\nC-4,m-h200-01,USD,2026-03-01,60,0\n")
    acc, q, a = ingest(parse_canonical_assets, scan_csv_text(sorted(folder.glob("*.csv")), tmp_path), small_inventory)
    assert acc["asset_id"].to_list() == ["C-1"]
    assert q.select("source_file", "record_key", "reason").rows() == [
        ("_fleet/canonical/a.csv", "C-2", "missing_required_field"),
        ("_fleet/canonical/b.csv", "C-3", "missing_required_field"),
        ("_fleet/canonical/b.csv", "C-4", "missing_required_field")]
    assert q["detail"][0] == "required field `acquisition_cost` is empty; fill it in the source or fix the exporter"
    assert q["detail"][1] == ("column `acquisition_cost` is missing from _fleet/canonical/b.csv (its header or "
                              "schema): add the column (the `assets` contract, docs/data-contracts.md)")
    assert a.select("source_file", "rows_read", "rows_accepted", "rows_quarantined").rows() == [
        ("_fleet/canonical/a.csv", 2, 1, 1), ("_fleet/canonical/b.csv", 2, 0, 2)]


def test_a_column_missing_from_every_canonical_file_is_named(small_inventory):
    """One typed frame (a Parquet file's) without `useful_life_months`: its row names the column."""
    raw = pl.LazyFrame({"asset_id": ["C-1"], "node_id": ["c-h100-01"], "acquisition_cost": [1000.0],
                        "currency": ["USD"], "in_service_date": [date(2026, 3, 1)], "salvage_value": [0.0],
                        "_source_file": ["_fleet/canonical/assets.parquet"], "_source_row": [1]})
    _, q, _ = ingest(parse_canonical_assets, raw, small_inventory)
    assert q.select("reason", "detail").rows() == [(
        "missing_required_field", "column `useful_life_months` is missing from _fleet/canonical/assets.parquet (its "
        "header or schema): add the column (the `assets` contract, docs/data-contracts.md)")]
