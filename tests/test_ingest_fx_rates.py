"""Reference exchange rates as a lake dataset (issue 16, item 5): the ECB's file as it ships
(the real sample in tests/data/real/ecb_eurofxref_hist) and the canonical `date,currency,rate`
table, delivered in `<raw>/<day>/_fleet/fx/`, ingested with quarantine and audit, and read back by
the attribution as one rate per date and currency (the latest delivery wins)."""

import shutil
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from lake.store import FLEET, Lake
from pipelines.attribution import delivered_fx_rates
from pipelines.ingest import ingest_partition

REAL = Path(__file__).parent / "data" / "real" / "ecb_eurofxref_hist" / "eurofxref-hist.csv"
DAY = date(2025, 4, 25)


def deliver(raw: Path, day: date, name: str, text: str | None = None) -> Path:
    folder = raw / day.isoformat() / FLEET / "fx"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if text is None:
        shutil.copy(REAL, path)
    else:
        path.write_text(text)
    return path


def test_the_ecb_file_is_read_as_it_ships(tmp_path, small_inventory):
    raw, lake = tmp_path / "raw", Lake(tmp_path / "lake")
    deliver(raw, DAY, "eurofxref-hist.csv")
    out = ingest_partition("fx_rates", DAY, None, raw, lake, small_inventory)
    # 8 business days x 30 currencies quoted (CYP, EEK, LTL, LVL, MTL, ROL, SIT, SKK, HRK, RUB, TRL
    # are N/A: no record); nothing quarantined.
    assert (out.rows_read, out.rows_accepted, out.rows_quarantined) == (240, 240, 0)
    rates = pl.read_parquet(lake.partition_file("fx_rates", DAY))
    assert rates.columns == ["date", "currency", "rate"]
    last_two = rates.filter(pl.col("currency").is_in(["USD", "JPY", "GBP"]) & (pl.col("date") >= date(2025, 4, 24)))
    assert last_two.rows() == [
        (date(2025, 4, 24), "GBP", 0.855), (date(2025, 4, 24), "JPY", 162.16), (date(2025, 4, 24), "USD", 1.1376),
        (date(2025, 4, 25), "GBP", 0.8531), (date(2025, 4, 25), "JPY", 162.8), (date(2025, 4, 25), "USD", 1.1357)]
    assert rates.filter(pl.col("date") == date(2025, 4, 18)).height == 0  # Good Friday: no row in the file
    assert "CYP" not in set(rates["currency"])


def test_bad_rates_are_quarantined_with_their_row(tmp_path, small_inventory):
    raw, lake = tmp_path / "raw", Lake(tmp_path / "lake")
    deliver(raw, DAY, "eurofxref-bad.csv", "Date,USD,JPY,usd,\n"
            "2025-04-25,1.1357,N/A,1.2,\n"      # row 1: USD kept, JPY not quoted, `usd` not a code
            "25/04/2025,1.1,162.8,,\n"          # row 2: no date this layout allows (2 records)
            "2025-04-24,-1.0,one,,\n")          # row 3: a negative rate, a word
    deliver(raw, DAY, "fx_rates-treasury.csv", "date,currency,rate\n2025-04-25,chf,0.9411\n2025-04-25,USD,1.2\n")
    out = ingest_partition("fx_rates", DAY, None, raw, lake, small_inventory)
    assert out.by_reason == {"bad_timestamp": 2, "conflicting_duplicate": 2, "invalid_value": 1, "out_of_range": 1,
                             "unknown_currency": 1}
    q = pl.read_parquet(lake.partition_file("quarantine", DAY, FLEET, name="fx_rates"))
    assert q.filter(pl.col("reason") == "out_of_range")["detail"].item().startswith("rate -1.0 per EUR is not above 0")
    rates = pl.read_parquet(lake.partition_file("fx_rates", DAY))
    # USD of 04-25 came twice with two rates (ECB 1.1357, treasury 1.2): neither is kept, and the
    # day takes the latest rate before it. The canonical `chf` is upper-cased.
    assert rates.rows() == [(date(2025, 4, 25), "CHF", 0.9411)]


def test_the_attribution_reads_every_delivery_the_latest_winning(tmp_path, small_inventory):
    raw, lake = tmp_path / "raw", Lake(tmp_path / "lake")
    deliver(raw, date(2025, 4, 24), "fx_rates.csv", "date,currency,rate\n2025-04-24,USD,1.10\n2025-04-23,USD,1.09\n")
    deliver(raw, DAY, "fx_rates.csv", "date,currency,rate\n2025-04-24,USD,1.1376\n")  # a correction, delivered later
    for d in (date(2025, 4, 24), DAY):
        ingest_partition("fx_rates", d, None, raw, lake, small_inventory)
    rates = delivered_fx_rates(lake).collect()
    assert rates.rows() == [(date(2025, 4, 23), "USD", 1.09), (date(2025, 4, 24), "USD", 1.1376)]


@pytest.mark.parametrize("name", ["EUROFXREF-hist.csv", "rates.csv"])
def test_other_names_in_the_fx_folder_are_listed_as_ignored(tmp_path, small_inventory, name):
    raw, lake = tmp_path / "raw", Lake(tmp_path / "lake")
    deliver(raw, DAY, name)
    out = ingest_partition("fx_rates", DAY, None, raw, lake, small_inventory)
    assert out.rows_read == 0 and list(out.ignored) == [f"{DAY}/{FLEET}/fx/{name}"]
