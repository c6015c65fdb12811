"""Market price files in other layouts than the canonical one (issue 16, "real exports without
hand-work"): Energinet's Elspotprices export exactly as downloaded (the real slice in
tests/data/real/energinet_elspot_dk2/), and a generic hourly CSV described by its tariff, across
a clock change in Europe/Copenhagen. Each is ingested by the production ingest (real CSV files,
real Parquet partitions) into the same `market_prices` rows as the canonical file; figures by hand."""

import shutil
import textwrap
from datetime import date, datetime, timedelta, UTC
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from lake.readers import scan_csv_text
from lake.store import Lake
from pipelines.cli import main
from pipelines.ingest import ingest_partition
from tests.conftest import examples
from transforms.attribution.grid import SlotGrid
from transforms.attribution.prices import site_slot_prices
from transforms.attribution.reconcile import conservation_failures
from transforms.contracts import MARKET_PRICES
from transforms.ingest.common import accepted, classify
from transforms.ingest.market_prices import hours_of_day, parse_market_price_csv
from transforms.inventory import InventoryError, parse_inventory

ELSPOT = Path(__file__).parent / "data" / "real" / "energinet_elspot_dk2" / "Elspotprices.csv"
DAY = date(2022, 10, 18)  # lines 24-47 of the slice: all 24 hours of the UTC day

INVENTORY = """\
version: 1
currency: EUR
valid_from: 2022-01-01
sites:
- {id: dk-east, kind: metro, cooling: liquid, design_pue: 1.25, timezone: Europe/Copenhagen, tariff: dk2-spot}
pools:
- {id: p1, site: dk-east, gpu_model: H100, tiers: [standard]}
nodes:
- {id: n1, pool: p1, gpus: 8, gpu_tdp_w: 700, idle_w: 1200, nameplate_w: 10200, gpu_telemetry: none}
tariffs:
- {id: dk2-spot, kind: market, currency: EUR, market_price_file: prices/Elspotprices.csv,
   market_price_format: energinet_elspot, market_price_area: DK2, adder_per_kwh: 0.09}
tiers:
- {id: standard, ttft_p95_s: 2.0, e2e_p95_s: 30, price_per_m_input_tokens: 0.8, price_per_m_output_tokens: 3.2,
   idle_policy: pro_rata}
models:
- {id: llama-3.1-8b-instruct, params_b: 8}
"""


def inventory(tariff: str | None = None):
    """INVENTORY, or with `tariff` (YAML list items) for its tariffs; the site buys at the first."""
    if tariff is None:
        return parse_inventory(INVENTORY, "inventory.yaml")
    first = tariff.split("id: ", 1)[1].split(",", 1)[0]
    text = (INVENTORY.split("tariffs:\n")[0].replace("tariff: dk2-spot", f"tariff: {first}") + "tariffs:\n" + tariff
            + "tiers:\n" + INVENTORY.split("\ntiers:\n", 1)[1])
    return parse_inventory(textwrap.dedent(text), "inventory.yaml")


def ingest(tmp_path: Path, inv, day: date = DAY):
    out = ingest_partition("market_prices", day, None, tmp_path / "raw", Lake(tmp_path / "lake"), inv)
    read = {k: pl.read_parquet(out.paths[k]) for k in ("canonical", "quarantine", "ingest_audit")}
    return out, read


def at(frame: pl.DataFrame, hour: datetime) -> float:
    return frame.filter(pl.col("hour_utc") == hour)["price_per_kwh"].item()


# --- Energinet's Elspotprices export ----------------------------------------------------------

def test_the_real_energinet_slice_gives_the_days_24_hours_per_kwh_exactly(tmp_path):
    (tmp_path / "raw" / "prices").mkdir(parents=True)
    shutil.copy(ELSPOT, tmp_path / "raw" / "prices" / "Elspotprices.csv")
    out, read = ingest(tmp_path, inventory())
    prices = read["canonical"]
    assert prices.height == 24 and prices["tariff_id"].unique().to_list() == ["dk2-spot"]
    # Line 47: `2022-10-18 00:00;2022-10-18 02:00;DK2;1043,859985;140,350006`: 140,350006 EUR/MWh
    # / 1000 = 0.140350006 EUR/kWh. Line 26: `2022-10-18 21:00;...;1144,780029;153,919998`.
    assert at(prices, datetime(2022, 10, 18, 0, tzinfo=UTC)) == 0.140350006
    assert at(prices, datetime(2022, 10, 18, 21, tzinfo=UTC)) == 0.153919998
    assert read["quarantine"].height == 0
    # The file's 49 rows: 24 of the day's hours read, the 25 of 2022-10-17/19 belong to other days.
    assert read["ingest_audit"].select("source_file", "rows_read", "rows_accepted", "rows_quarantined",
                                       "status").rows() == [("prices/Elspotprices.csv", 24, 24, 0, "read")]
    # The day after: the slice ends at 2022-10-19 21:00 (line 2): 22 hours, 00:00-21:00;
    # 131,570007 EUR/MWh is 0.131570007 EUR/kWh, exactly the decimal (no float division).
    _, after = ingest(tmp_path, inventory(), date(2022, 10, 19))
    assert after["canonical"].height == 22
    assert at(after["canonical"], datetime(2022, 10, 19, 21, tzinfo=UTC)) == 0.131570007


def test_broken_rows_are_quarantined_with_their_reason_and_other_areas_are_not_records(tmp_path):
    """The real slice (49 data rows) with four rows appended for the day (data rows 50-53)."""
    (tmp_path / "raw" / "prices").mkdir(parents=True)
    broken = ELSPOT.read_text() + "".join(line + "\n" for line in (
        "2022-10-18 05:00;2022-10-18 07:00;DK2;1234,500000;1.234,5",   # 50: a thousands mark: not guessed
        "2022-10-18 06:00;2022-10-18 08:00;DK2;1234,500000;",          # 51: no EUR price: not a zero price
        "2022-10-18 07:00;2022-10-18 09:00;DK1;700,000000;94,100000",  # 52: DK1: no tariff's record
        "18-10-2022 08:00;18-10-2022 10:00;DK2;700,000000;94,100000",  # 53: not a time
    ))
    (tmp_path / "raw" / "prices" / "Elspotprices.csv").write_text(broken)
    _, read = ingest(tmp_path, inventory())
    assert read["canonical"].height == 24  # the real hours 05:00-07:00 are kept (the copies were refused)
    q = read["quarantine"]
    assert q.select("source_row", "reason").rows() == [
        (50, "invalid_value"), (51, "missing_required_field"), (53, "bad_timestamp")]
    detail = dict(zip(q["source_row"], q["detail"], strict=True))
    assert detail[50].startswith("`SpotPriceEUR` 1.234,5 is not a number per MWh with a decimal comma")
    assert "an hour without a price is not a zero price" in detail[51]
    assert detail[53].startswith("`HourUTC` 18-10-2022 08:00 is not a time")
    # Every row of the day's hours counted once: 24 + 3 quarantined = 27 read; the DK1 row (52) is
    # of an area no tariff reads: not a record, an ignored entry of its own (docs/raw-formats.md).
    audit = read["ingest_audit"].select("source_file", "rows_read", "rows_accepted", "rows_quarantined", "status")
    assert audit.rows() == [("prices/Elspotprices.csv", 27, 24, 3, "read"),
                            ("prices/Elspotprices.csv:PriceArea=DK1", 0, 0, 0, "ignored")]
    assert read["ingest_audit"]["status_detail"][1] == (
        "`Elspotprices.csv:PriceArea=DK1` holds 1 row(s) of 2022-10-18's hours of price area DK1, which no market "
        "tariff naming the file reads (`market_price_area:`): not records of any tariff, not read. Nothing to do "
        "unless a site buys in DK1 (then add its tariff)")


def test_a_dk1_and_a_dk2_tariff_read_one_file_each_its_own_area_and_currency(tmp_path):
    (tmp_path / "raw" / "prices").mkdir(parents=True)
    text = ELSPOT.read_text() + "2022-10-18 03:00;2022-10-18 05:00;DK1;700,000000;94,100000\n"
    (tmp_path / "raw" / "prices" / "Elspotprices.csv").write_text(text)
    inv = inventory("""\
- {id: dk2-spot, kind: market, currency: EUR, market_price_file: prices/Elspotprices.csv,
   market_price_format: energinet_elspot, market_price_area: DK2}
- {id: dk1-spot, kind: market, currency: DKK, market_price_file: prices/Elspotprices.csv,
   market_price_format: energinet_elspot, market_price_area: DK1}
""")
    _, read = ingest(tmp_path, inv)
    dk1 = read["canonical"].filter(pl.col("tariff_id") == "dk1-spot")
    # 700,000000 DKK/MWh = 0.7 DKK/kWh (DKK picks SpotPriceDKK).
    assert dk1.select("hour_utc", "price_per_kwh").rows() == [(datetime(2022, 10, 18, 3, tzinfo=UTC), 0.7)]
    assert read["canonical"].filter(pl.col("tariff_id") == "dk2-spot").height == 24
    # One audit row for the file: 24 DK2 rows + 1 DK1 row, each read by its own tariff (no area unread).
    assert read["ingest_audit"].select("source_file", "rows_read", "rows_accepted").rows() == [
        ("prices/Elspotprices.csv", 25, 25)]


def test_a_missing_price_column_is_named_as_missing_from_the_file(tmp_path):
    (tmp_path / "raw" / "prices").mkdir(parents=True)
    (tmp_path / "raw" / "prices" / "Elspotprices.csv").write_text(
        "HourUTC;HourDK;PriceArea;SpotPriceEUR\n2022-10-18 00:00;2022-10-18 02:00;DK2;140,350006\n")
    inv = inventory("""\
- {id: dk2-spot, kind: market, currency: DKK, market_price_file: prices/Elspotprices.csv,
   market_price_format: energinet_elspot, market_price_area: DK2}
""")
    _, read = ingest(tmp_path, inv)
    q = read["quarantine"].row(0, named=True)
    assert (q["source_row"], q["reason"]) == (1, "missing_required_field")
    assert q["detail"].startswith("column `SpotPriceDKK` is missing from prices/Elspotprices.csv; add it "
                                  "(tariff dk2-spot, `market_price_format: energinet_elspot` reads it")


REQUESTS = """\
request_id,node_id,model,tier,tenant_id,arrived_at,completed_at,queue_s,ttft_s,prefill_s,decode_s,input_tokens,cached_input_tokens,output_tokens,response_bytes,status
r1,n1,llama-3.1-8b-instruct,standard,acme,2022-10-18T21:00:00Z,2022-10-18T21:01:00Z,,,,,100,0,10,,ok
"""


@pytest.fixture(scope="module")
def energinet_day(tmp_path_factory):
    """`inferledger run` of 2022-10-18 (ingest, attribution, publish: real Dagster runs) for a
    fleet of one node whose site buys at DK2's spot price, from the real export as downloaded."""
    root = tmp_path_factory.mktemp("energinet_day")
    raw = root / "raw"
    (raw / "prices").mkdir(parents=True)
    shutil.copy(ELSPOT, raw / "prices" / "Elspotprices.csv")
    (raw / "inventory.yaml").write_text(INVENTORY)
    requests = raw / DAY.isoformat() / "dk-east" / "canonical"
    requests.mkdir(parents=True)
    (requests / "requests.csv").write_text(REQUESTS)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INFERLEDGER_FIRST_DAY", "2022-01-01")
        mp.delenv("DAGSTER_HOME", raising=False)
        mp.delenv("INFERLEDGER_INVENTORY", raising=False)
        code = main(["run", "--date", DAY.isoformat(), "--raw", str(raw), "--lake", str(root / "lake"),
                     "--warehouse", str(root / "warehouse.duckdb")])
    return code, root / "lake"


def test_a_pipeline_day_prices_its_energy_at_the_energinet_hour(energinet_day):
    code, lake = energinet_day
    assert code == 0
    part = f"date={DAY}"
    prices = pl.read_parquet(lake / "market_prices" / part / "part-0.parquet")
    assert at(prices, datetime(2022, 10, 18, 21, tzinfo=UTC)) == 0.153919998  # 153,919998 EUR/MWh, line 26
    slot = pl.read_parquet(lake / "node_slots" / part / "part-0.parquet").filter(pl.col("slot") == 21 * 60)
    # Slot 1260 (21:00-21:01 UTC) of n1, no meter: estimated at idle_w, 1,200 W x 60 s = 72,000 J IT;
    # overhead (design_pue 1.25 - 1) x 72,000 = 18,000 J; 90,000 J = 0.025 kWh at
    # 0.153919998 + 0.09 (adder) = 0.243919998 EUR/kWh = 0.00609799995 EUR, all r1's (it occupies the slot).
    assert slot.select("it_energy_j", "overhead_j").row(0) == (72_000.0, 18_000.0)
    r1 = pl.read_parquet(lake / "request_costs" / part / "part-0.parquet").row(0, named=True)
    assert (r1["request_id"], r1["currency"]) == ("r1", "EUR")
    assert r1["energy_cost"] == pytest.approx(0.025 * 0.243919998, abs=1e-15)
    assert conservation_failures(pl.read_parquet(lake / "reconciliation" / part / "part-0.parquet")).height == 0


def test_an_hour_missing_from_the_export_stops_the_attribution_naming_the_file_and_its_layout(tmp_path):
    """The slice without line 42 (2022-10-18 05:00 UTC), parsed as the pipeline does: the slots
    of 05:00 have no price, and the message names the file and how it is written."""
    lines = ELSPOT.read_text().splitlines(keepends=True)
    assert lines[41].startswith("2022-10-18 05:00;")
    (tmp_path / "prices").mkdir()
    (tmp_path / "prices" / "Elspotprices.csv").write_text("".join(lines[:41] + lines[42:]))
    inv = inventory()
    raw = scan_csv_text([tmp_path / "prices" / "Elspotprices.csv"], tmp_path, separator=";")
    prices = accepted(classify(hours_of_day(parse_market_price_csv(raw, inv), DAY), MARKET_PRICES, DAY), MARKET_PRICES)
    assert prices.collect().height == 23
    with pytest.raises(ValueError) as e:
        site_slot_prices(inv, prices, SlotGrid(DAY, 60))
    assert ("no market price for 60 slot(s), first slot 300 at 2022-10-18T05:00:00Z (hour 2022-10-18T05:00:00Z); "
            "add the missing hours to prices/Elspotprices.csv (Energinet's Elspotprices export, PriceArea DK2), "
            "or see the day's market_prices quarantine for the rows refused") in str(e.value)


# --- the inventory ---------------------------------------------------------------------------

@pytest.mark.parametrize(("tariff", "message"), [
    ("{id: t, kind: market, currency: EUR, market_price_file: p.csv, market_price_format: nordpool}",
     "tariffs[0].market_price_format: Input should be 'canonical', 'energinet_elspot' or 'hourly_csv'"),
    ("{id: t, kind: market, currency: EUR, market_price_file: p.csv, market_price_format: energinet_elspot}",
     "tariffs[0]: an energinet_elspot tariff needs `market_price_area:` (the PriceArea its site buys in"),
    ("{id: t, kind: market, currency: USD, market_price_file: p.csv, market_price_format: energinet_elspot, "
     "market_price_area: DK2}",
     "tariffs[0]: an energinet_elspot tariff is priced in EUR (SpotPriceEUR) or DKK (SpotPriceDKK), not USD"),
    ("{id: t, kind: market, currency: EUR, market_price_file: p.csv, market_price_format: hourly_csv}",
     "tariffs[0]: an hourly_csv tariff needs `market_price_columns: {hour: <column>, price: <column>}`"),
    ("{id: t, kind: market, currency: EUR, market_price_file: p.csv, market_price_unit: MWh}",
     "tariffs[0]: market_price_unit is read by the hourly_csv format only, not canonical"),
    ("{id: t, kind: market, currency: EUR, market_price_file: p.csv, market_price_format: hourly_csv, "
     "market_price_columns: {hour: h, price: p}, market_price_timezone: Europe/Copenhagn}",
     "tariffs[0]: `market_price_timezone: Europe/Copenhagn` is not an IANA time zone"),
])
def test_the_inventory_refuses_an_unknown_format_and_a_format_missing_what_it_needs(tariff, message):
    with pytest.raises(InventoryError) as e:
        inventory(f"- {tariff}\n")
    assert message in str(e.value)


def test_two_tariffs_read_one_file_one_way():
    with pytest.raises(InventoryError, match=r"tariffs\[1\].market_price_format: p.csv is read by tariffs\[0\] as "
                                             r"energinet_elspot \(separator ';'\), here as canonical"):
        inventory("""\
- {id: a, kind: market, currency: EUR, market_price_file: p.csv, market_price_format: energinet_elspot,
   market_price_area: DK2}
- {id: b, kind: market, currency: EUR, market_price_file: p.csv}
""")


# --- a generic hourly CSV across the clock changes of Europe/Copenhagen --------------------------

HOURLY = """\
- {id: cph, kind: market, currency: EUR, market_price_file: prices/cph.csv, market_price_format: hourly_csv,
   market_price_columns: {hour: Tid, price: Pris}, market_price_separator: ";", market_price_decimal: ",",
   market_price_unit: MWh, market_price_timezone: Europe/Copenhagen}
"""

# The local day of 2022-10-30 in Copenhagen has 25 hours: 00:00 and 01:00 CEST (UTC+2: 22:00 and
# 23:00 UTC on the 29th), 02:00 CEST (00:00 UTC), 02:00 again in CET (UTC+1: 01:00 UTC), then
# 03:00-23:00 CET (02:00-22:00 UTC). Price of local row i (0-24) = 100 + i EUR/MWh.
FALL = [f"2022-10-30 {h:02d}:00" for h in (0, 1, 2, 2, *range(3, 24))]


def _write_hourly(tmp_path: Path, rows: list[str]) -> None:
    (tmp_path / "raw" / "prices").mkdir(parents=True, exist_ok=True)
    (tmp_path / "raw" / "prices" / "cph.csv").write_text("Tid;Område;Pris\n" + "".join(r + "\n" for r in rows))


@pytest.mark.parametrize("newest_first", [False, True])
def test_the_autumn_day_has_25_local_hours_each_priced_at_its_utc_hour(tmp_path, newest_first):
    rows = [f"{t};DK2;{100 + i},5" for i, t in enumerate(FALL)]
    _write_hourly(tmp_path, rows[::-1] if newest_first else rows)
    _, read = ingest(tmp_path, inventory(HOURLY), date(2022, 10, 30))
    prices = read["canonical"].sort("hour_utc")
    # UTC day 2022-10-30: local rows 2..24 (23 rows, 00:00-22:00 UTC); rows 0, 1 are the 29th's.
    assert prices.height == 23 and read["quarantine"].height == 0
    assert prices["hour_utc"].to_list() == [datetime(2022, 10, 30, h, tzinfo=UTC) for h in range(23)]
    # The repeated 02:00: its first row in time order (102,5 EUR/MWh) is summer time, 00:00 UTC;
    # the second (103,5) winter time, 01:00 UTC; in a newest-first file the order is reversed
    # and so is the reading. 102,5 EUR/MWh = 0.1025 EUR/kWh.
    assert at(prices, datetime(2022, 10, 30, 0, tzinfo=UTC)) == 0.1025
    assert at(prices, datetime(2022, 10, 30, 1, tzinfo=UTC)) == 0.1035
    assert at(prices, datetime(2022, 10, 30, 22, tzinfo=UTC)) == 0.1245  # 23:00 CET, row 24


def test_the_spring_day_has_23_hours_and_a_nonexistent_or_lone_repeated_hour_is_refused(tmp_path):
    # 2023-03-26: 02:00 local does not exist (01:00 CET = 00:00 UTC, then 03:00 CEST = 01:00 UTC).
    spring = [f"2023-03-26 {h:02d}:00;DK2;{50 + h}" for h in range(24) if h != 2]  # 23 local hours
    _write_hourly(tmp_path, [*spring, "2023-03-26 02:00;DK2;99",    # row 24: no such local time
                             "2022-10-30 02:00;DK2;99",              # row 25: the repeated hour, given once
                             "2023-03-26T12:00:00Z;DK2;1,5"])         # row 26: an offset: UTC 12:00 itself
    _, read = ingest(tmp_path, inventory(HOURLY), date(2023, 3, 26))
    prices = read["canonical"].sort("hour_utc")
    # Local 01:00-23:00 less 02:00 = 22 rows of the UTC day (00:00 local is 23:00 UTC on the 25th),
    # 01:00-21:00 UTC from 03:00 CEST on (row h for h >= 3). 12:00 UTC from local 14:00 (row 14,
    # 64 EUR/MWh) and row 26 (1,5 EUR/MWh) are conflicting duplicates: neither kept. 22 - 1 = 21.
    assert at(prices, datetime(2023, 3, 26, 0, tzinfo=UTC)) == 0.051    # 01:00 CET, 51 EUR/MWh
    assert at(prices, datetime(2023, 3, 26, 1, tzinfo=UTC)) == 0.053    # 03:00 CEST, 53 EUR/MWh
    assert prices.height == 21
    q = read["quarantine"]
    assert q.select("source_row", "reason").rows() == [
        (14, "conflicting_duplicate"), (24, "bad_timestamp"), (25, "bad_timestamp"), (26, "conflicting_duplicate")]
    detail = dict(zip(q["source_row"], q["detail"], strict=True))
    assert "does not exist in Europe/Copenhagen (the clocks go forward over it)" in detail[24]
    assert "is given 1 time(s) and is ambiguous in Europe/Copenhagen" in detail[25]


def test_a_canonical_file_and_a_comma_separated_hourly_csv_are_read_together(tmp_path):
    """Both files are read with `,` (one source, their headers aligned): each tariff gets its own
    file's rows, in UTC by default, per kWh with a decimal point."""
    prices = tmp_path / "raw" / "prices"
    prices.mkdir(parents=True)
    (prices / "a.csv").write_text("hour_utc,price_per_kwh\n2022-10-18T05:00:00Z,0.0431\n")
    (prices / "b.csv").write_text("time,eur_per_kwh,note\n2022-10-18 05:00,0.1015,x\n2022-10-18T06:00:00+01:00,0.2,\n")
    inv = inventory("""\
- {id: a, kind: market, currency: EUR, market_price_file: prices/a.csv}
- {id: b, kind: market, currency: EUR, market_price_file: prices/b.csv, market_price_format: hourly_csv,
   market_price_columns: {hour: time, price: eur_per_kwh}}
""")
    _, read = ingest(tmp_path, inv)
    # b's second row: 06:00+01:00 is 05:00 UTC, a second price for b's 05:00: both refused.
    assert read["canonical"].select("tariff_id", "price_per_kwh").rows() == [("a", 0.0431)]
    assert read["quarantine"].select("source_file", "source_row", "reason").rows() == [
        ("prices/b.csv", 1, "conflicting_duplicate"), ("prices/b.csv", 2, "conflicting_duplicate")]
    assert read["ingest_audit"].select("source_file", "rows_read", "rows_accepted").rows() == [
        ("prices/a.csv", 1, 1), ("prices/b.csv", 2, 0)]


# --- properties ------------------------------------------------------------------------------

def _read_as_text(path_name: str, columns: dict[str, list[str]]) -> pl.LazyFrame:
    """The frame `scan_csv_text` gives for a file of these text columns (rows numbered from 1)."""
    n = len(next(iter(columns.values())))
    return pl.LazyFrame({**columns, "_source_row": list(range(1, n + 1)), "_source_file": [path_name] * n},
                        schema={**dict.fromkeys(columns, pl.String), "_source_row": pl.Int64,
                                "_source_file": pl.String})


@settings(max_examples=examples(100), deadline=None)
@given(st.lists(st.tuples(st.integers(-500, 4_000), st.integers(0, 999_999)), min_size=1, max_size=24))
def test_an_energinet_price_is_the_decimal_divided_by_1000(prices):
    """`-50,040000`, `871,000000`: the price per kWh is the float nearest the decimal / 1000,
    whatever the digits (no float division of a float)."""
    text = [f"{'-' if whole < 0 else ''}{abs(whole)},{frac:06d}" for whole, frac in prices]
    hours = [f"2022-10-18 {h:02d}:00" for h in range(len(text))]
    raw = _read_as_text("prices/Elspotprices.csv", {"HourUTC": hours, "HourDK": hours, "PriceArea": ["DK2"] * len(text),
                                                    "SpotPriceDKK": text, "SpotPriceEUR": text})
    got = parse_market_price_csv(raw, inventory()).collect()
    assert got["_reason"].null_count() == len(text)
    assert got["price_per_kwh"].to_list() == [float(Decimal(t.replace(",", ".")) / 1000) for t in text]


@settings(max_examples=examples(50), deadline=None)
@given(st.dates(date(2020, 1, 1), date(2030, 12, 31)), st.booleans())
@example(date(2022, 10, 30), True).via("the autumn change, newest first: 25 hours")
@example(date(2023, 3, 26), False).via("the spring change: 23 hours")
def test_a_local_day_of_copenhagen_prices_maps_to_its_own_utc_hours(day, newest_first):
    """Any local day (23, 24 or 25 hours), written as naive local times in either order: each row
    is read at its own UTC hour, none refused, none twice."""
    zone = ZoneInfo("Europe/Copenhagen")
    start = datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)
    end = (datetime(day.year, day.month, day.day, tzinfo=zone) + timedelta(days=1)).astimezone(UTC)
    utc_hours = [start + timedelta(hours=h) for h in range(int((end - start).total_seconds()) // 3600)]
    local = [h.astimezone(zone).strftime("%Y-%m-%d %H:%M") for h in utc_hours]
    prices = [f"{i},5" for i in range(len(local))]
    order = slice(None, None, -1) if newest_first else slice(None)
    raw = _read_as_text("prices/cph.csv", {"Tid": local[order], "Pris": prices[order]})
    got = parse_market_price_csv(raw, inventory(HOURLY)).collect()
    assert got["_reason"].null_count() == len(local) == got.height
    assert dict(zip(got["hour_utc"], got["price_per_kwh"], strict=True)) == {
        h: (i + 0.5) / 1000 for i, h in enumerate(utc_hours)}
