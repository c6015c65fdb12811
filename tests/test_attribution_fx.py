"""Currency (issue 16, item 5; DOMAIN.md section 7): every amount converted to the reporting
currency at the reference rate of the cost's day, on the production functions, with the ECB's
real reference rates (tests/data/real/ecb_eurofxref_hist, 2025-04-14 .. 2025-04-25) and
hand-computed figures."""

from datetime import date
from pathlib import Path

import polars as pl
import pytest

from lake.readers import scan_csv_text
from tests.test_attribution_prices import PLAINS, flat_market, node_energy, with_tariff
from tests.test_attribution_rates import NODES, assets, lines, utc
from transforms.attribution.electricity import energy_costs
from transforms.attribution.fx import day_rates
from transforms.attribution.grid import SlotGrid
from transforms.attribution.prices import site_slot_prices
from transforms.attribution.rates import amortization_allocations, asset_depreciation, cloud_allocations
from transforms.contracts import FX_RATES
from transforms.ingest.common import accepted, classify
from transforms.ingest.fx_rates import parse_ecb_rates

REAL = Path(__file__).parent / "data" / "real"
FRI = date(2025, 4, 25)  # ECB: USD 1.1357, GBP 0.8531, CHF 0.9411 per EUR


@pytest.fixture(scope="module")
def ecb() -> pl.LazyFrame:
    """The real ECB sample as the lake holds it (parsed, judged, accepted)."""
    raw = scan_csv_text([REAL / "ecb_eurofxref_hist" / "eurofxref-hist.csv"], REAL)
    return accepted(classify(parse_ecb_rates(raw), FX_RATES, FRI), FX_RATES).collect().lazy()


def rate(ecb: pl.LazyFrame, day: date, currency: str, reporting: str = "USD") -> tuple[float, date] | None:
    r = day_rates(ecb, day, reporting).filter(pl.col("currency") == currency).collect()
    return (r["fx_rate"].item(), r["rate_date"].item()) if r.height else None


def test_rate_of_the_day_else_the_last_published_within_a_week(ecb):
    # EUR -> USD: 1.1357 USD per EUR on Friday 2025-04-25.
    assert rate(ecb, FRI, "EUR") == (pytest.approx(1.1357, abs=1e-15), FRI)
    # Saturday and Sunday take Friday's rate (the ECB publishes none on weekends).
    assert rate(ecb, date(2025, 4, 27), "EUR") == (pytest.approx(1.1357, abs=1e-15), FRI)
    # Good Friday 04-18 and Easter Monday 04-21 are TARGET holidays: Thursday 04-17's 1.136.
    assert rate(ecb, date(2025, 4, 21), "EUR") == (pytest.approx(1.136, abs=1e-15), date(2025, 4, 17))
    # Seven days after the last rate (05-02) still takes it; eight (05-03) is too old: no rate.
    assert rate(ecb, date(2025, 5, 2), "EUR")[1] == FRI
    assert rate(ecb, date(2025, 5, 3), "EUR") is None
    assert rate(ecb, date(2025, 5, 3), "USD") == (1.0, date(2025, 5, 3))  # the reporting currency needs none
    # Neither side EUR: GBP -> USD through EUR = 1.1357 / 0.8531 = 1.33126245...
    assert rate(ecb, FRI, "GBP") == (pytest.approx(1.1357 / 0.8531, rel=1e-15), FRI)
    # Reporting in EUR: USD -> EUR = 1 / 1.1357.
    assert rate(ecb, FRI, "USD", reporting="EUR") == (pytest.approx(1 / 1.1357, rel=1e-15), FRI)
    # A currency the ECB does not quote (AED), or quotes N/A (CYP, retired): no rate.
    assert rate(ecb, FRI, "AED") is None and rate(ecb, FRI, "CYP") is None


def test_eur_asset_in_a_usd_register_converted_at_the_days_ecb_rate(ecb):
    # 10,000 EUR, no salvage, straight line over 12 months from 2025-01-01 (365 days):
    # 10,000 / 365 = 27.39726027 EUR a day, x 1.1357 USD/EUR = 11,357 / 365 = 31.11506849 USD.
    grid = SlotGrid(FRI)
    register = assets({"currency": "EUR", "acquisition_cost": 10_000.0, "salvage_value": 0.0,
                       "in_service_date": date(2025, 1, 1), "useful_life_months": 12})
    alloc, unattributed, line_days = (f.collect() for f in amortization_allocations(
        asset_depreciation(register, grid), grid, "USD", day_rates(ecb, FRI, "USD")))
    assert unattributed.height == 0
    assert alloc.select("node_id", "slot_from", "slot_to", "amount").rows() == [
        ("m-01", 0, 1440, pytest.approx(11_357 / 365, abs=1e-12))]
    assert line_days.select("day_amount", "currency", "source_currency", "source_amount", "fx_rate").rows() == [
        (pytest.approx(31.11506849315068, abs=1e-12), "USD", "EUR", pytest.approx(10_000 / 365, abs=1e-12),
         pytest.approx(1.1357, abs=1e-15))]


def test_a_currency_without_a_rate_stays_unattributed_in_its_own_currency(ecb):
    # 50 AED of compute (the ECB quotes no AED) and 80 GBP of compute on the same day: the GBP line
    # is converted (80 x 1.1357 / 0.8531 = 106.50099637 USD) and placed on c-02's 60 slots of
    # 10:00-11:00; the AED line stays unattributed, 50 AED, `no_fx_rate`.
    grid = SlotGrid(FRI)
    hour = {"period_start": utc(2025, 4, 25, 10), "period_end": utc(2025, 4, 25, 11)}
    bill = lines({"line_id": "AED1", "currency": "AED", "effective_amount": 50.0, "billed_amount": 50.0, **hour},
                 {"line_id": "GBP1", "resource_id": "i-c02", "currency": "GBP", "effective_amount": 80.0,
                  "billed_amount": 80.0, **hour})
    alloc, unattributed, line_days, _ = (f.collect() for f in cloud_allocations(
        bill, NODES, grid, "USD", day_rates(ecb, FRI, "USD")))
    assert unattributed.select("line_id", "amount", "currency", "reason").rows() == [
        ("AED1", 50.0, "AED", "no_fx_rate")]
    assert alloc.select("line_id", "node_id", "slot_from", "slot_to", "amount").rows() == [
        ("GBP1", "c-02", 600, 660, pytest.approx(80 * 1.1357 / 0.8531, abs=1e-12))]
    assert line_days.sort("line_id").select("currency", "source_currency", "source_amount", "fx_rate").rows() == [
        ("AED", "AED", 50.0, None), ("USD", "GBP", 80.0, pytest.approx(1.1357 / 0.8531, rel=1e-15))]


def test_eur_tariff_priced_and_converted(small_inventory, ecb):
    # remote-plains buys at plains-tou, here in EUR: off_peak 0.065 EUR/kWh all weekend; on
    # Saturday 2025-04-26 (Friday's rate, 1.1357): 0.065 x 1.1357 = 0.0738205 USD/kWh. 2 kWh of
    # one node in slot 40 (10:00-10:15 UTC, 05:00 CDT on Saturday) cost 2 x 0.0738205 = 0.147641 USD.
    sat = date(2025, 4, 26)
    inv = with_tariff(small_inventory, "plains-tou", currency="EUR")
    grid = SlotGrid(sat, 900)
    rates = day_rates(ecb, sat, "USD")
    prices = site_slot_prices(inv, flat_market(inv, sat), grid, rates).collect()
    plains = prices.filter(pl.col("site_id") == PLAINS)
    assert plains.height == 96
    assert plains.filter(pl.col("slot") == 40)["price_per_kwh"].item() == pytest.approx(0.065 * 1.1357, abs=1e-15)
    result = energy_costs(node_energy({("r-l40s-std-01", 40): 2}), inv.nodes_frame(), prices.lazy(),
                          lines().clear(), inv, grid, rates)
    costs = result.node_slot_costs.filter(pl.col("node_id") == "r-l40s-std-01").collect()
    assert costs.filter(pl.col("slot") == 40)["energy_cost"].item() == pytest.approx(0.147641, abs=1e-12)


def test_a_tariff_without_a_rate_leaves_its_energy_unattributed_and_the_day_goes_on(small_inventory, ecb):
    # Saturday 2025-05-10: the sample's last rate (04-25) is 15 days old, so EUR has none. The EUR
    # tariff's energy stays in EUR, unattributed: 2 kWh x 0.065 EUR = 0.13 EUR; the node-slot costs
    # 0. The USD market site is priced as ever: 1 kWh x (0.05 + adder 0.045) = 0.095 USD.
    sat = date(2025, 5, 10)
    inv = with_tariff(small_inventory, "plains-tou", currency="EUR")
    grid = SlotGrid(sat, 900)
    rates = day_rates(ecb, sat, "USD")
    prices = site_slot_prices(inv, flat_market(inv, sat), grid, rates)
    result = energy_costs(node_energy({("r-l40s-std-01", 40): 2, ("m-h200-01", 40): 1}), inv.nodes_frame(), prices,
                          lines().clear(), inv, grid, rates)
    costs = dict(result.node_slot_costs.filter(pl.col("slot") == 40).select("node_id", "energy_cost").collect().rows())
    assert costs["r-l40s-std-01"] == 0.0
    assert costs["m-h200-01"] == pytest.approx(0.095, abs=1e-12)
    assert result.unattributed.collect().select("source", "line_id", "amount", "currency", "reason").rows() == [
        ("tariff", "remote-plains:2025-05-10", pytest.approx(0.13, abs=1e-12), "EUR", "no_fx_rate")]
    assert result.line_site_slots.filter(pl.col("site_id") == PLAINS).collect().height == 0
