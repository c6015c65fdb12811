"""Step 5 of docs/attribution.md on hand-made frames: tariff prices per site and slot (time of
use in local time across DST, market prices plus adder), and node-slot energy, demand and
fixed costs trued up to an electricity invoice, every number computed by hand below.

Slots are 900 s (96 a day) to keep the numbers readable: slot k starts at k x 15 min UTC.
remote-plains is in America/Chicago: CST = UTC-6, CDT = UTC-5 (2026-03-08 08:00 UTC to
2026-11-01 07:00 UTC).
"""

from datetime import date, datetime, UTC

import polars as pl
import pytest

from transforms.attribution.electricity import energy_costs
from transforms.attribution.grid import SlotGrid
from transforms.attribution.prices import site_slot_prices, stranded_sites
from transforms.contracts import COST_LINES, MARKET_PRICES
from transforms.ingest.common import accepted, classify, quarantined
from transforms.ingest.market_prices import hours_of_day, parse_market_price_csv
from transforms.inventory import Inventory

PLAINS = "remote-plains"
STD, BAT, CLOUD_NODE = "r-l40s-std-01", "r-l40s-bat-01", "c-h100-01"
MARKET_FILE = "prices/nyiso-zone-j.csv"  # the file of the market tariff of tests/data/inventory_small.yaml


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def grid(d: date) -> SlotGrid:
    return SlotGrid(d, 900)


def with_tariff(inv: Inventory, tariff_id: str, **changes) -> Inventory:
    data = inv.model_dump()
    data["tariffs"] = [{**t, **changes} if t["id"] == tariff_id else t for t in data["tariffs"]]
    return Inventory.model_validate(data)


def period(name, days, start, end, price):
    return {"name": name, "days": days, "start": start, "end": end, "price_per_kwh": price}


def judged_market(inv: Inventory, d: date, text: dict[str, list[str]]) -> pl.LazyFrame:
    """Rows of the market price file (columns as text) judged as the pipeline's ingest judges them
    (pipelines/ingest.py): parsed, the day's hours kept, duplicates judged by the contract."""
    rows = len(text["hour_utc"])
    raw = pl.LazyFrame({**text, "_source_file": [MARKET_FILE] * rows, "_source_row": list(range(1, rows + 1))})
    return classify(hours_of_day(parse_market_price_csv(raw, inv), d), MARKET_PRICES, d)


def market(inv: Inventory, d: date, text: dict[str, list[str]]) -> pl.LazyFrame:
    """The day's market prices as the lake holds them (the accepted rows)."""
    return accepted(judged_market(inv, d, text), MARKET_PRICES)


def flat_market(inv: Inventory, d: date, price: str = "0.05") -> pl.LazyFrame:
    return market(inv, d, {"hour_utc": [f"{d.isoformat()}T{h:02d}:00:00Z" for h in range(24)],
                           "price_per_kwh": [price] * 24})


def plains_prices(inv: Inventory, d: date) -> dict[int, tuple[float, str]]:
    p = site_slot_prices(inv, flat_market(inv, d), grid(d)).filter(pl.col("site_id") == PLAINS).collect()
    assert p["slot"].to_list() == list(range(96))
    assert set(p["price_source"]) == {"time_of_use"}
    return {s: (price, tou) for s, price, tou in p.select("slot", "price_per_kwh", "tou_period").rows()}


def runs(prices: dict[int, tuple[float, str]]) -> list[tuple[int, int, str, float]]:
    """(first slot, last slot, period, price) of each run of equal prices."""
    out = []
    for s in range(96):
        price, tou = prices[s]
        if out and out[-1][2:] == (tou, price):
            out[-1] = (out[-1][0], s, tou, price)
        else:
            out.append((s, s, tou, price))
    return out


# --- time of use ---------------------------------------------------------------------------

WEEKEND_TOU = [period("on_peak", "weekdays", "14:00", "20:00", 0.14),
               period("off_peak", "weekdays", "00:00", "14:00", 0.065),
               period("off_peak", "weekdays", "20:00", "24:00", 0.065),
               period("weekend", "weekends", "00:00", "24:00", 0.05)]


def test_weekday_and_weekend_by_local_date_around_dst(small_inventory):
    inv = with_tariff(small_inventory, "plains-tou", periods=WEEKEND_TOU)
    # Fri 2026-03-06, CST: 00:00-02:00 UTC is Thu 18:00-20:00 on peak; on peak again from 20:00 UTC (14:00).
    assert runs(plains_prices(inv, date(2026, 3, 6))) == [
        (0, 7, "on_peak", 0.14), (8, 79, "off_peak", 0.065), (80, 95, "on_peak", 0.14)]
    # Sat 2026-03-07 UTC: Fri 18:00-24:00 CST first (weekday), the local Saturday from 06:00 UTC.
    assert runs(plains_prices(inv, date(2026, 3, 7))) == [
        (0, 7, "on_peak", 0.14), (8, 23, "off_peak", 0.065), (24, 95, "weekend", 0.05)]
    # Sun 2026-03-08 UTC (spring forward 08:00 UTC): Sat 18:00 CST to Sun 19:00 CDT, all weekend.
    assert runs(plains_prices(inv, date(2026, 3, 8))) == [(0, 95, "weekend", 0.05)]
    # Mon 2026-03-09, CDT: the local Sunday ends at 05:00 UTC (20 slots); on peak 14:00 CDT = 19:00 UTC.
    # So the local Sunday 2026-03-08 lasted 18 h on 03-08 UTC (06:00-24:00) + 5 h = 23 hours.
    assert runs(plains_prices(inv, date(2026, 3, 9))) == [
        (0, 19, "weekend", 0.05), (20, 75, "off_peak", 0.065), (76, 95, "on_peak", 0.14)]
    # Mon 2026-11-02, CST again: the local Sunday ends at 06:00 UTC (24 slots); on peak from 20:00 UTC.
    assert runs(plains_prices(inv, date(2026, 11, 2))) == [
        (0, 23, "weekend", 0.05), (24, 79, "off_peak", 0.065), (80, 95, "on_peak", 0.14)]
    # Sun 2026-11-01 UTC (fall back 07:00 UTC): Sat 19:00 CDT to Sun 18:00 CST, all weekend;
    # the local Sunday: 19 h on 11-01 UTC (05:00-24:00) + 6 h on 11-02 = 25 hours.
    assert runs(plains_prices(inv, date(2026, 11, 1))) == [(0, 95, "weekend", 0.05)]


# Every day alike, off peak wrapping past local midnight (end < start).
DAILY_TOU = [period("on_peak", "all", "14:00", "20:00", 0.14), period("off_peak", "all", "20:00", "14:00", 0.065)]


def test_on_peak_window_moves_in_utc_on_the_dst_change_days(small_inventory):
    inv = with_tariff(small_inventory, "plains-tou", periods=DAILY_TOU)
    spring = plains_prices(inv, date(2026, 3, 8))
    # 00:00-02:00 UTC = Sat 18:00-20:00 CST: on peak; 02:00 UTC = 20:00 CST: off.
    assert spring[0] == spring[7] == (0.14, "on_peak") and spring[8] == (0.065, "off_peak")
    # After 08:00 UTC the clocks say CDT: 18:45 UTC = 13:45 CDT off, 19:00 UTC = 14:00 CDT on
    # (in CST 19:00 UTC would be 13:00, off peak).
    assert spring[75] == (0.065, "off_peak") and spring[76] == (0.14, "on_peak") and spring[95] == (0.14, "on_peak")
    assert runs(spring) == [(0, 7, "on_peak", 0.14), (8, 75, "off_peak", 0.065), (76, 95, "on_peak", 0.14)]

    fall = plains_prices(inv, date(2026, 11, 1))
    # 00:00-01:00 UTC = Sat 19:00-20:00 CDT on peak; 01:00 UTC = 20:00 CDT off.
    assert fall[3] == (0.14, "on_peak") and fall[4] == (0.065, "off_peak")
    # After 07:00 UTC it is CST: 19:45 UTC = 13:45 CST off, 20:00 UTC = 14:00 CST on.
    assert fall[76] == fall[79] == (0.065, "off_peak") and fall[80] == (0.14, "on_peak")
    assert runs(fall) == [(0, 3, "on_peak", 0.14), (4, 79, "off_peak", 0.065), (80, 95, "on_peak", 0.14)]


def test_tou_gap_raises_naming_site_slot_local_time_and_fix(small_inventory):
    weekdays_only = [p for p in WEEKEND_TOU if p["days"] == "weekdays"]
    inv = with_tariff(small_inventory, "plains-tou", periods=weekdays_only)
    with pytest.raises(ValueError) as e:
        site_slot_prices(inv, flat_market(inv, date(2026, 11, 28)), grid(date(2026, 11, 28)))
    msg = str(e.value)
    # Sat 2026-11-28 UTC: slots 0..23 are Fri 18:00-24:00 CST (priced); slot 24 = 06:00 UTC = Sat 00:00 CST.
    assert "site 'remote-plains' (tariff 'plains-tou') on 2026-11-28" in msg
    assert "no time-of-use period covers 72 slot(s), first slot 24 at 2026-11-28T06:00:00Z" in msg
    assert "local Sat 2026-11-28 00:00 CST in America/Chicago" in msg
    assert "`periods:` in the inventory" in msg and "must not cost 0" in msg


def test_overlapping_periods_raise(small_inventory):
    inv = with_tariff(small_inventory, "plains-tou",
                      periods=[*WEEKEND_TOU, period("promo", "all", "13:00", "15:00", 0.01)])
    with pytest.raises(ValueError, match=r"2 time-of-use periods \(off_peak, promo\) cover slot 76 at "
                                         r"2026-11-24T19:00:00Z \(local Tue 2026-11-24 13:00 CST"):
        site_slot_prices(inv, flat_market(inv, date(2026, 11, 24)), grid(date(2026, 11, 24)))


def test_tariff_in_another_currency_without_a_rate_keeps_its_prices_in_its_currency(small_inventory):
    # With a rate it is converted (tests/test_attribution_fx.py); without one its slots keep the
    # tariff's own prices (0.065 EUR off peak at 00:00 UTC, 18:00 CST: on_peak 0.14 EUR), and
    # electricity.energy_costs leaves that energy unattributed in EUR (`no_fx_rate`).
    inv = with_tariff(small_inventory, "plains-tou", currency="EUR")
    g = grid(date(2026, 11, 24))
    assert stranded_sites(inv, None, g) == {PLAINS: "EUR"}
    p = site_slot_prices(inv, flat_market(inv, g.day), g).filter(pl.col("site_id") == PLAINS).collect()
    assert p.filter(pl.col("slot") == 0)["price_per_kwh"].item() == 0.14


# --- market prices ---------------------------------------------------------------------------

def market_text(day: str, hours=range(24)) -> dict[str, list[str]]:
    # 0.030 + h/1000 $/kWh, except a windy night at 03:00 (negative).
    return {"hour_utc": [f"{day}T{h:02d}:00:00Z" for h in hours],
            "price_per_kwh": ["-0.004" if h == 3 else f"{0.03 + h / 1000:.3f}" for h in hours]}


def test_market_price_of_the_slots_hour_plus_adder(small_inventory):
    raw = market_text("2026-11-24")
    # The file repeats an hour identically (merged months) and states one hour with an offset.
    raw["hour_utc"] += ["2026-11-24T05:00:00Z", "2026-11-24T01:00:00-05:00"]
    raw["price_per_kwh"] += ["0.035", "0.036"]
    prices = market(small_inventory, date(2026, 11, 24), raw)
    assert prices.collect().height == 24
    p = site_slot_prices(small_inventory, prices, grid(date(2026, 11, 24))).collect()
    assert p.columns == ["site_id", "slot", "price_per_kwh", "tou_period", "price_source"]
    assert p["site_id"].unique().sort().to_list() == ["metro-east", "remote-plains"]  # no cloud site
    metro = p.filter(pl.col("site_id") == "metro-east")
    assert metro.height == 96 and metro["tou_period"].null_count() == 96 and set(metro["price_source"]) == {"market"}
    price = dict(metro.select("slot", "price_per_kwh").rows())
    assert price[0] == pytest.approx(0.030 + 0.045, abs=1e-12)   # 00:00 UTC
    assert price[21] == pytest.approx(0.035 + 0.045, abs=1e-12)  # 05:15 UTC: hour 05
    assert price[12] == pytest.approx(-0.004 + 0.045, abs=1e-12)  # 03:00 UTC: negative market price
    assert price[95] == pytest.approx(0.053 + 0.045, abs=1e-12)  # 23:45 UTC


def test_missing_market_hour_raises_naming_site_hour_and_file(small_inventory):
    prices = market(small_inventory, date(2026, 11, 24), market_text("2026-11-24", [h for h in range(24) if h != 5]))
    with pytest.raises(ValueError) as e:
        site_slot_prices(small_inventory, prices, grid(date(2026, 11, 24)))
    msg = str(e.value)
    assert ("site 'metro-east' (tariff 'nyiso-zone-j') on 2026-11-24: no market price for 4 slot(s), first slot 20 "
            "at 2026-11-24T05:00:00Z (hour 2026-11-24T05:00:00Z); "
            "add the missing hours to prices/nyiso-zone-j.csv") in msg
    with pytest.raises(ValueError, match="buys at market tariff 'nyiso-zone-j' but no market prices were given; "
                                         "pass the day's market prices .* from prices/nyiso-zone-j.csv"):
        site_slot_prices(small_inventory, None, grid(date(2026, 11, 24)))


def test_market_file_rows_it_cannot_use_are_quarantined_naming_the_row(small_inventory):
    d = date(2026, 11, 24)
    judged = judged_market(small_inventory, d, {
        "hour_utc": ["2026-11-24T00:00:00Z", "2026-11-24T01:30:00Z", "yesterday", "2026-11-24T02:00:00Z",
                     "2026-11-24T02:00:00Z"],
        "price_per_kwh": ["0.03", "0.04", "0.05", "0.03", "0.031"]})
    assert accepted(judged, MARKET_PRICES).collect()["price_per_kwh"].to_list() == [0.03]  # 00:00 alone
    lost = quarantined(judged, MARKET_PRICES).collect()
    assert lost.select("source_file", "source_row", "reason").rows() == [
        (MARKET_FILE, 2, "invalid_value"), (MARKET_FILE, 3, "bad_timestamp"),
        (MARKET_FILE, 4, "conflicting_duplicate"), (MARKET_FILE, 5, "conflicting_duplicate")]
    detail = dict(lost.select("source_row", "detail").rows())
    assert "`hour_utc` 2026-11-24T01:30:00Z is not the start of an hour" in detail[2]
    assert "`hour_utc` yesterday is not an RFC 3339 time" in detail[3]


# --- energy costs and the invoice true-up ----------------------------------------------------

def node_energy(kwh: dict[tuple[str, int], float]) -> pl.LazyFrame:
    """IT 80% and overhead 20% of each node-slot's kWh (the sum is what is bought)."""
    keys = list(kwh)
    return pl.LazyFrame({"node_id": [n for n, _ in keys], "slot": [s for _, s in keys],
                         "it_energy_j": [kwh[k] * 0.8 * 3.6e6 for k in keys],
                         "overhead_j": [kwh[k] * 0.2 * 3.6e6 for k in keys]},
                        schema_overrides={"slot": pl.Int32})


# Tue 2026-12-15, CST: slots 78, 79 (19:30-20:00 UTC = 13:30-14:00) off peak at 0.065,
# slots 80, 81 (20:00-20:30 UTC = 14:00-14:30) on peak at 0.14. Site energy: off 4 + 2 = 6 kWh,
# on 6 + 8 = 14 kWh, 20 kWh in all. The cloud node's energy is in its cloud bill.
ENERGY = {(STD, 78): 2, (STD, 79): 2, (STD, 80): 4, (STD, 81): 2,
          (BAT, 78): 1, (BAT, 79): 1, (BAT, 80): 6, (BAT, 81): 2,
          (CLOUD_NODE, 80): 5}

DEC_START, DEC_END = utc(2026, 12, 1, 6), utc(2027, 1, 1, 6)  # local December, CST: 31 days


def line(line_no, cost_type, amount, quantity=None, unit=None, tou=None, peak_at=None, *, site=PLAINS,
         start=DEC_START, end=DEC_END, currency="USD", invoice="PLN-202612-4417"):
    return {"source": "electricity_invoice", "line_id": f"{invoice}:{line_no}", "site_id": site, "resource_id": None,
            "period_start": start, "period_end": end, "cost_type": cost_type, "billed_amount": amount,
            "effective_amount": amount, "currency": currency, "quantity": quantity, "unit": unit,
            "service_name": {"energy": "energy", "demand": "demand"}.get(cost_type, "fixed"),
            "charge_category": "Usage", "tou_period": tou, "peak_at": peak_at}


def lines_frame(*rows) -> pl.LazyFrame:
    return pl.LazyFrame(list(rows), schema=COST_LINES.schema)


# December invoice: on peak 600 kWh at 0.168 (= 0.14 x 1.2), off peak 1000 kWh at 0.0715
# (= 0.065 x 1.1), demand 40 kW x 12.5 set in the 15 minutes from 20:00 UTC on Dec 15,
# a customer charge of 310 and a tax of 62 (8% of 775; 10 and 2 a day over 31 days).
DECEMBER = [line(1, "energy", 100.80, 600, "kWh", "on_peak"), line(2, "energy", 71.50, 1000, "kWh", "off_peak"),
            line(3, "demand", 500.00, 40, "kW", peak_at=utc(2026, 12, 15, 20)),
            line(4, "other", 310.00, 1, "month"), line(5, "other", 62.00, 775, "USD")]


def run(inv: Inventory, d: date, energy: dict, lines: list[dict]):
    g = grid(d)
    result = energy_costs(node_energy(energy), inv.nodes_frame(), site_slot_prices(inv, flat_market(inv, d), g),
                          lines_frame(*lines), inv, g)
    return {name: getattr(result, name).collect()
            for name in ("node_slot_costs", "true_up", "line_allocations", "line_days", "unattributed")}


def costs_by_node_slot(costs: pl.DataFrame) -> dict[tuple[str, int], tuple[float, float, float]]:
    return {(n, s): (e, d, f) for n, s, e, d, f in costs.select(
        "node_id", "slot", "energy_cost", "demand_cost", "fixed_cost").rows()}


def assert_costs(actual: pl.DataFrame, expected: dict):
    got = costs_by_node_slot(actual)
    assert set(got) == set(expected)
    for key, want in expected.items():
        assert got[key] == pytest.approx(want, abs=1e-12), key


def allocations(out) -> dict[str, tuple[str, float, float, str | None]]:
    """line_id -> (component, day_amount, unattributed_amount, reason code)."""
    return {lid: (c, d, u, r) for lid, c, d, u, r in out["line_allocations"].select(
        "line_id", "component", "day_amount", "unattributed_amount", "reason").rows()}


def details(out) -> dict[str, str | None]:
    return dict(out["line_allocations"].select("line_id", "detail").rows())


def test_invoice_true_up_with_demand_charge(small_inventory):
    out = run(small_inventory, date(2026, 12, 15), ENERGY, DECEMBER)
    # energy: kWh x invoiced rate (0.0715 off, 0.168 on); demand 500 over slot 80 by energy
    # (4 : 6 kWh -> 200 : 300); fixed (10 + 2) / 20 kWh = 0.6 per kWh.
    assert_costs(out["node_slot_costs"], {
        (STD, 78): (0.143, 0.0, 1.2), (STD, 79): (0.143, 0.0, 1.2),
        (STD, 80): (0.672, 200.0, 2.4), (STD, 81): (0.336, 0.0, 1.2),
        (BAT, 78): (0.0715, 0.0, 0.6), (BAT, 79): (0.0715, 0.0, 0.6),
        (BAT, 80): (1.008, 300.0, 3.6), (BAT, 81): (0.336, 0.0, 1.2),
        (CLOUD_NODE, 80): (0.0, 0.0, 0.0),
    })
    tu = out["true_up"]
    assert tu.columns == ["site_id", "tou_period", "invoice_line_id", "day_kwh", "tariff_cost", "invoiced_rate",
                          "energy_cost", "true_up_factor"]
    rows = {r[1]: r for r in tu.rows()}
    assert set(rows) == {"off_peak", "on_peak"} and tu.height == 2
    assert rows["off_peak"][:3] == (PLAINS, "off_peak", "PLN-202612-4417:2")
    assert rows["off_peak"][3:] == pytest.approx((6.0, 0.39, 0.0715, 0.429, 1.1), abs=1e-12)
    assert rows["on_peak"][2] == "PLN-202612-4417:1"
    assert rows["on_peak"][3:] == pytest.approx((14.0, 1.96, 0.168, 2.352, 1.2), abs=1e-12)
    # Each line's day share: energy amount x day kWh / invoice kWh; all of the demand; 1/31 of the rest.
    alloc = allocations(out)
    assert alloc == {
        "PLN-202612-4417:1": ("energy_cost", pytest.approx(100.80 * 14 / 600, abs=1e-12), 0.0, None),  # 2.352
        "PLN-202612-4417:2": ("energy_cost", pytest.approx(71.50 * 6 / 1000, abs=1e-12), 0.0, None),   # 0.429
        "PLN-202612-4417:3": ("demand_cost", 500.0, 0.0, None),
        "PLN-202612-4417:4": ("fixed_cost", pytest.approx(10.0, abs=1e-12), 0.0, None),
        "PLN-202612-4417:5": ("fixed_cost", pytest.approx(2.0, abs=1e-12), 0.0, None),
    }
    assert out["unattributed"].height == 0
    days = out["line_days"]
    assert days.columns == ["source", "line_id", "component", "day_amount", "billed_day_amount", "currency",
                            "source_currency", "source_amount", "fx_rate"]
    assert days["day_amount"].to_list() == pytest.approx([2.352, 0.429, 500.0, 10.0, 2.0], abs=1e-12)
    assert days["billed_day_amount"].to_list() == pytest.approx(days["day_amount"].to_list(), abs=1e-12)
    assert_conserved(out, small_inventory, date(2026, 12, 15))


def assert_conserved(out, inv: Inventory, d: date):
    """Per line: the node-slot costs it causes = day_amount - unattributed_amount, to 1e-9. With
    one energy line per TOU period and one demand line, lines are told apart by the TOU period
    of their slots and by component; the fixed lines share `fixed_cost`."""
    tou = site_slot_prices(inv, flat_market(inv, d), grid(d)).filter(pl.col("site_id") == PLAINS).select(
        "slot", "tou_period")
    costs = out["node_slot_costs"].filter(pl.col("node_id") != CLOUD_NODE)
    energy_by_tou = dict(costs.join(tou.collect(), on="slot").group_by("tou_period")
                         .agg(pl.col("energy_cost").sum()).rows())
    placed = {lid: (comp, day - un) for lid, (comp, day, un, _) in allocations(out).items()}
    assert energy_by_tou["on_peak"] == pytest.approx(placed["PLN-202612-4417:1"][1], abs=1e-9)
    assert energy_by_tou["off_peak"] == pytest.approx(placed["PLN-202612-4417:2"][1], abs=1e-9)
    assert costs["demand_cost"].sum() == pytest.approx(placed["PLN-202612-4417:3"][1], abs=1e-9)
    fixed = sum(v for comp, v in placed.values() if comp == "fixed_cost")
    assert costs["fixed_cost"].sum() == pytest.approx(fixed, abs=1e-9)


def test_day_without_invoice_is_priced_at_the_tariff(small_inventory):
    # Tue 2026-11-24, CST like Dec 15: same slots, same periods. The December invoice in the lake
    # does not cover the day; nothing of it is touched.
    out = run(small_inventory, date(2026, 11, 24), ENERGY, DECEMBER)
    assert_costs(out["node_slot_costs"], {
        (STD, 78): (0.13, 0.0, 0.0), (STD, 79): (0.13, 0.0, 0.0),
        (STD, 80): (0.56, 0.0, 0.0), (STD, 81): (0.28, 0.0, 0.0),
        (BAT, 78): (0.065, 0.0, 0.0), (BAT, 79): (0.065, 0.0, 0.0),
        (BAT, 80): (0.84, 0.0, 0.0), (BAT, 81): (0.28, 0.0, 0.0),
        (CLOUD_NODE, 80): (0.0, 0.0, 0.0),
    })
    tu = {r[1]: r for r in out["true_up"].rows()}
    assert tu["off_peak"][2] is None and tu["off_peak"][5] is None
    assert tu["off_peak"][3:5] + tu["off_peak"][6:] == pytest.approx((6.0, 0.39, 0.39, 1.0), abs=1e-12)
    assert tu["on_peak"][3:5] + tu["on_peak"][6:] == pytest.approx((14.0, 1.96, 1.96, 1.0), abs=1e-12)
    assert out["line_allocations"].height == 0 and out["unattributed"].height == 0


def test_day_partly_covered_by_the_invoice_period(small_inventory):
    # Tue 2026-12-01 UTC: the December invoice starts at 06:00 UTC (local midnight, CST), so
    # slot 20 (05:00 UTC = Nov 30 23:00 CST) is at the tariff and slot 24 (06:00 UTC) at the
    # invoiced rate; fixed lines carry 18 of the 744 hours of the period: 310 x 18/744 = 7.5 and
    # 62 x 18/744 = 1.5, all on slot 24 (the only covered slot with energy). The demand peak is
    # on Dec 15: nothing today.
    out = run(small_inventory, date(2026, 12, 1), {(STD, 20): 2, (STD, 24): 2}, DECEMBER)
    assert_costs(out["node_slot_costs"], {(STD, 20): (0.13, 0.0, 0.0), (STD, 24): (0.143, 0.0, 9.0)})
    alloc = allocations(out)
    assert alloc["PLN-202612-4417:4"][:3] == ("fixed_cost", pytest.approx(7.5, abs=1e-12), 0.0)
    assert alloc["PLN-202612-4417:5"][1] == pytest.approx(1.5, abs=1e-12)
    assert alloc["PLN-202612-4417:3"] == ("demand_cost", 0.0, 0.0, "peak_on_other_day")
    assert details(out)["PLN-202612-4417:3"] == ("demand peak interval starts 2026-12-15T20:00:00Z, not on this day: "
                                                 "nothing of the line is due today")
    assert alloc["PLN-202612-4417:2"][1] == pytest.approx(71.50 * 2 / 1000, abs=1e-12)  # 0.143
    assert alloc["PLN-202612-4417:1"][1:] == (0.0, 0.0, "no_energy_today")  # no on-peak energy today
    assert "no energy at site remote-plains in on_peak slots" in details(out)["PLN-202612-4417:1"]
    tu = {(r[1], r[2]): r[3:] for r in out["true_up"].rows()}
    assert tu == {("off_peak", None): pytest.approx((2.0, 0.13, None, 0.13, 1.0), abs=1e-12),
                  ("off_peak", "PLN-202612-4417:2"): pytest.approx((2.0, 0.13, 0.0715, 0.143, 1.1), abs=1e-12)}


def test_what_cannot_be_placed_stays_unattributed(small_inventory):
    lines = [*DECEMBER[:2],
             # A TOU period the tariff does not have: its time share (31.00 / 31 days) is unattributed.
             line(6, "energy", 31.00, 100, "kWh", "mid_peak"),
             # A demand without peak_at: 170 x day kWh / period kWh = 170 x 20 / 1700 = 2.0, 0.1 per kWh.
             line(7, "demand", 170.00, 13.6, "kW"),
             # A peak at 03:00 UTC (slot 12), when the site's nodes drew nothing metered.
             line(8, "demand", 500.00, 40, "kW", peak_at=utc(2026, 12, 15, 3)),
             # Another site's invoice, a cloud site's line: not used here.
             line(9, "other", 99.0, site="cloud-use1")]
    out = run(small_inventory, date(2026, 12, 15), ENERGY, lines)
    assert_costs(out["node_slot_costs"], {
        (STD, 78): (0.143, 0.2, 0.0), (STD, 79): (0.143, 0.2, 0.0),
        (STD, 80): (0.672, 0.4, 0.0), (STD, 81): (0.336, 0.2, 0.0),
        (BAT, 78): (0.0715, 0.1, 0.0), (BAT, 79): (0.0715, 0.1, 0.0),
        (BAT, 80): (1.008, 0.6, 0.0), (BAT, 81): (0.336, 0.2, 0.0),
        (CLOUD_NODE, 80): (0.0, 0.0, 0.0),
    })
    alloc = allocations(out)
    assert set(alloc) == {f"PLN-202612-4417:{i}" for i in (1, 2, 6, 7, 8)}
    comp, day, unattributed, reason = alloc["PLN-202612-4417:6"]
    assert (comp, day, unattributed) == ("energy_cost", pytest.approx(1.0, abs=1e-12), pytest.approx(1.0, abs=1e-12))
    assert reason == "tou_period_not_in_tariff"
    assert details(out)["PLN-202612-4417:6"].startswith(
        "TOU period mid_peak of the invoice is not a period of tariff plains-tou of site remote-plains "
        "(periods: on_peak, off_peak)")
    assert alloc["PLN-202612-4417:7"] == ("demand_cost", pytest.approx(2.0, abs=1e-12), 0.0, None)
    assert alloc["PLN-202612-4417:8"] == ("demand_cost", 500.0, 500.0, "no_energy_in_peak_interval")
    assert details(out)["PLN-202612-4417:8"] == ("no energy at site remote-plains's nodes in the demand peak "
                                                 "interval starting 2026-12-15T03:00:00Z")
    un = out["unattributed"]
    assert un.columns == ["source", "line_id", "component", "amount", "currency", "reason", "service_name"]
    assert un.select("line_id", "component", "currency", "reason", "service_name").rows() == [
        ("PLN-202612-4417:6", "energy_cost", "USD", "tou_period_not_in_tariff", "energy"),
        ("PLN-202612-4417:8", "demand_cost", "USD", "no_energy_in_peak_interval", "demand")]
    assert un["amount"].to_list() == pytest.approx([1.0, 500.0], abs=1e-12)
    # Conservation: placed demand = 2.0 = the node-slots' demand cost.
    assert out["node_slot_costs"]["demand_cost"].sum() == pytest.approx(2.0, abs=1e-9)
    assert out["node_slot_costs"]["energy_cost"].sum() == pytest.approx(2.352 + 0.429, abs=1e-9)


def test_inconsistent_invoice_lines_raise(small_inventory):
    d = date(2026, 12, 15)
    # The same invoice delivered twice identically is fine (the lake holds both deliveries).
    out = run(small_inventory, d, ENERGY, [*DECEMBER, *DECEMBER])
    assert out["line_allocations"].height == 5
    revised = line(1, "energy", 101.00, 600, "kWh", "on_peak")
    with pytest.raises(ValueError, match=r"lines delivered in different versions \(line PLN-202612-4417:1\)"):
        run(small_inventory, d, ENERGY, [*DECEMBER, revised])
    # Another currency without a rate no longer raises: the line's time share (1 of the 31 days
    # of December) stays unattributed in EUR: 100.80 / 31 = 3.2516...
    eur = run(small_inventory, d, ENERGY, [line(1, "energy", 100.80, 600, "kWh", "on_peak", currency="EUR")])
    assert eur["unattributed"].select("amount", "currency", "reason").rows() == [
        (pytest.approx(100.80 / 31, abs=1e-12), "EUR", "no_fx_rate")]
    with pytest.raises(ValueError, match=r"unit other than kWh, MWh or Wh \(line PLN-202612-4417:1 unit therm\)"):
        run(small_inventory, d, ENERGY, [line(1, "energy", 100.80, 600, "therm", "on_peak")])


def test_prices_missing_a_site_raise(small_inventory):
    g = grid(date(2026, 12, 15))
    prices = site_slot_prices(small_inventory, flat_market(small_inventory, g.day), g).filter(
        pl.col("site_id") != PLAINS)
    with pytest.raises(ValueError, match=r"miss slots of site\(s\) remote-plains \(0 of 96 slots\)"):
        energy_costs(node_energy(ENERGY), small_inventory.nodes_frame(), prices, lines_frame(), small_inventory, g)


def test_demand_on_one_minute_slots_covers_the_fifteen_minutes_from_peak_at(small_inventory):
    # 60 s slots: the peak interval 20:00-20:15 UTC is slots 1200..1214. Slots 1199 and 1215 lie
    # outside it; inside, 3 kWh (1200) and 1 kWh (1214) share the 500: 375 and 125.
    g = SlotGrid(date(2026, 12, 15), 60)
    energy = {(STD, 1199): 5, (STD, 1200): 3, (BAT, 1214): 1, (BAT, 1215): 5}
    result = energy_costs(node_energy(energy), small_inventory.nodes_frame(),
                          site_slot_prices(small_inventory, flat_market(small_inventory, g.day), g),
                          lines_frame(DECEMBER[2]), small_inventory, g)
    demand = dict(result.node_slot_costs.select(pl.col("slot"), "demand_cost").collect().rows())
    assert demand == pytest.approx({1199: 0.0, 1200: 375.0, 1214: 125.0, 1215: 0.0}, abs=1e-12)


def test_market_site_trued_up_by_a_flat_energy_line(small_inventory):
    # metro-east buys at market 0.05 + adder 0.045 = 0.095; its invoice has one flat energy line,
    # 10000 kWh for 1000.00 (0.1 per kWh) over November; both slots are priced at 0.1 instead.
    d = date(2026, 11, 24)
    flat = line(1, "energy", 1000.00, 10000, "kWh", site="metro-east", start=utc(2026, 11, 1), end=utc(2026, 12, 1),
                invoice="CONED-202611")
    out = run(small_inventory, d, {("m-h200-01", 0): 1, ("m-h200-01", 1): 3}, [flat])
    assert_costs(out["node_slot_costs"], {("m-h200-01", 0): (0.1, 0.0, 0.0), ("m-h200-01", 1): (0.3, 0.0, 0.0)})
    assert out["true_up"].rows()[0][:3] == ("metro-east", None, "CONED-202611:1")
    assert out["true_up"].rows()[0][3:] == pytest.approx((4.0, 0.38, 0.1, 0.4, 0.4 / 0.38), abs=1e-12)
    assert allocations(out) == {"CONED-202611:1": ("energy_cost", pytest.approx(0.4, abs=1e-12), 0.0, None)}
