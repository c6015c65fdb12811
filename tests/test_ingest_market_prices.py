"""Market prices as a lake dataset: each day's fleet-wide ingest reads the price files the
inventory names, keeps the day's hours, quarantines what it cannot read with a reason, and the
attribution prices its slots from the lake (docs/raw-formats.md, "Market prices")."""

from datetime import date, datetime, timedelta, UTC

import polars as pl
import pytest

from lake.store import FLEET, Lake
from pipelines.attribution import MissingInput, load_day_inputs
from pipelines.ingest import ingest_partition
from transforms.contracts import MARKET_PRICES
from transforms.ingest.market_prices import market_price_files

DAY = date(2026, 11, 24)
FILE = "prices/nyiso-zone-j.csv"  # tests/data/inventory_small.yaml's market tariff


def hours(day: date, n: int = 24, price=lambda h: f"0.0{40 + h}") -> list[str]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return [f"{(start + timedelta(hours=h)):%Y-%m-%dT%H:%M:%SZ},{price(h)}" for h in range(n)]


def write_prices(raw, lines: list[str]) -> None:
    path = raw / FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(["hour_utc,price_per_kwh", *lines]) + "\n")


def ingest(raw, lake, inventory):
    return ingest_partition("market_prices", DAY, None, raw, Lake(lake), inventory)


def test_the_inventory_names_the_files_and_their_tariffs(small_inventory):
    assert market_price_files(small_inventory) == {FILE: ["nyiso-zone-j"]}


def test_a_day_keeps_its_hours_and_quarantines_what_it_cannot_read(tmp_path, small_inventory):
    raw, lake = tmp_path / "raw", tmp_path / "lake"
    day_hours = hours(DAY)
    write_prices(raw, [
        *hours(DAY - timedelta(days=1)),       # rows 1-24: the day before, another partition's
        *day_hours[:20],                       # rows 25-44
        day_hours[3],                          # 45: the same price again: exact duplicate
        day_hours[20], "2026-11-24T20:00:00Z,0.099",  # 46, 47: two prices for 20:00: neither kept
        "2026-11-24T21:30:00Z,0.05",           # 48: not the start of an hour
        "24/11/2026 22:00,0.05",               # 49: not RFC 3339: no day; every day reports it
        "2026-11-24T22:00:00Z,five cents",     # 50
        day_hours[23],                         # 51
        "",                                    # a blank line is not a record
        *hours(DAY + timedelta(days=1), 2),    # 52, 53: the next day's
    ])
    out = ingest(raw, lake, small_inventory)
    canonical = pl.read_parquet(out.paths["canonical"])
    assert canonical.schema == MARKET_PRICES.schema
    assert canonical["hour_utc"].dt.hour().to_list() == [*range(20), 23]
    assert canonical["tariff_id"].unique().to_list() == ["nyiso-zone-j"]
    assert canonical.filter(pl.col("hour_utc").dt.hour() == 3)["price_per_kwh"].item() == 0.043
    quarantine = pl.read_parquet(out.paths["quarantine"])
    assert quarantine.select("source_file", "source_row", "reason").rows() == [
        (FILE, 45, "exact_duplicate"), (FILE, 46, "conflicting_duplicate"), (FILE, 47, "conflicting_duplicate"),
        (FILE, 48, "invalid_value"), (FILE, 49, "bad_timestamp"), (FILE, 50, "invalid_value")]
    assert "not the start of an hour" in quarantine.filter(pl.col("source_row") == 48)["detail"].item()
    audit = pl.read_parquet(out.paths["ingest_audit"])
    counts = audit.select("dataset", "source_file", "rows_read", "rows_accepted", "rows_quarantined", "status")
    assert counts.rows() == [("market_prices", FILE, 27, 21, 6, "read")]
    assert out.paths["ingest_audit"].endswith(f"ingest_audit/date={DAY}/site={FLEET}/market_prices.parquet")


def test_the_attribution_prices_the_day_from_the_lake_hours_of_the_raw_file(tmp_path, small_inventory):
    """The file spans three days: the day's partition holds exactly its 24 hours, at the prices
    written (negative ones included), and that is what the attribution reads."""
    raw, lake = tmp_path / "raw", tmp_path / "lake"
    write_prices(raw, [*hours(DAY - timedelta(days=1)), *hours(DAY, price=lambda h: f"{0.01 * h - 0.05:.4f}"),
                       *hours(DAY + timedelta(days=1))])
    ingest(raw, lake, small_inventory)
    start = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC)
    written = pl.DataFrame({"tariff_id": ["nyiso-zone-j"] * 24,
                            "hour_utc": [start + timedelta(hours=h) for h in range(24)],
                            "price_per_kwh": [float(f"{0.01 * h - 0.05:.4f}") for h in range(24)]},
                           schema=MARKET_PRICES.schema)
    from_lake = load_day_inputs(Lake(lake), small_inventory, DAY).market_prices.collect()
    assert from_lake.equals(written)
    assert from_lake["price_per_kwh"].min() == -0.05  # negative prices are prices


def test_a_named_file_that_is_missing_is_unreadable_and_the_attribution_says_what_to_run(tmp_path, small_inventory):
    raw, lake = tmp_path / "raw", tmp_path / "lake"
    raw.mkdir()
    with pytest.raises(MissingInput, match="market prices of 2026-11-24 are not ingested"):
        load_day_inputs(Lake(lake), small_inventory, DAY)
    out = ingest(raw, lake, small_inventory)
    assert out.rows_read == 1 and out.by_reason == {"unreadable_file": 1}
    audit = pl.read_parquet(out.paths["ingest_audit"]).row(0, named=True)
    assert (audit["source_file"], audit["status"]) == (FILE, "unreadable")
    assert "is named by market tariff nyiso-zone-j" in audit["status_detail"]
    assert "does not exist" in audit["status_detail"]
    assert load_day_inputs(Lake(lake), small_inventory, DAY).market_prices.collect().height == 0
