"""Properties of a whole day's attribution over generated fleets: every source line conserved,
input row order irrelevant, reruns identical."""

from datetime import date, datetime, timedelta, UTC

import numpy as np
import polars as pl
from polars.testing import assert_frame_equal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import examples
from transforms.attribution.day import DayInputs, day_outputs, finish_day, share_day
from transforms.attribution.grid import SlotGrid
from transforms.attribution.reconcile import ENERGY_RELATIVE_TOLERANCE, MONEY_TOLERANCE, conservation_failures
from transforms.contracts import ASSETS, COST_LINES, POWER_READINGS, REQUESTS

DAY = date(2026, 11, 24)
T0 = datetime(2026, 11, 24, tzinfo=UTC)
NODES = {"m-h200-01": ("metro-east", "premium-h200", "premium"),
         "r-l40s-std-01": ("remote-plains", "standard-l40s", "standard"),
         "r-l40s-bat-01": ("remote-plains", "batch-l40s", "batch"),
         "c-h100-01": ("cloud-use1", "cloud-h100", "standard")}
OUTPUTS = ("request_costs", "node_slots", "pool_idle", "site_hours", "true_up", "unattributed", "reconciliation",
           "totals")


def _requests(rows):
    recs = []
    for i, (node, start, dur, queue, tin, tout, nbytes) in enumerate(rows):
        site, pool, tier = NODES[node]
        a = T0 + timedelta(seconds=start)
        recs.append({"request_id": f"r{i:03d}", "node_id": node, "model": "qwen3-32b", "tier": tier,
                     "tenant_id": f"t{i % 3}", "arrived_at": a,
                     "completed_at": min(a + timedelta(seconds=dur),
                                         T0 + timedelta(days=1) - timedelta(microseconds=1)),
                     "queue_s": queue, "ttft_s": None, "prefill_s": None, "decode_s": None, "input_tokens": tin,
                     "cached_input_tokens": 0, "output_tokens": tout, "response_bytes": nbytes, "status": "ok",
                     "site_id": site, "pool_id": pool})
    return pl.DataFrame(recs, schema=REQUESTS.schema)


def _readings(seed, gap):
    rng = np.random.default_rng(seed)
    ts = [T0 + timedelta(seconds=60 * k + 5) for k in range(1440)]
    rows = []
    watts = 600 + 1800 * rng.random(1440)
    keep = np.ones(1440, bool)
    keep[gap[0]:gap[0] + gap[1]] = False
    for k in np.flatnonzero(keep):
        rows.append(("r-l40s-std-01/bmc", "node", "remote-plains", "r-l40s-std-01", None, ts[k], float(watts[k]),
                     None, None, None, False, "ipmi"))
    energy = np.cumsum(3000 + 6000 * rng.random(1440) * 60)
    for k in range(1440):
        rows.append(("m-h200-01/bmc", "node", "metro-east", "m-h200-01", None, ts[k], None, float(energy[k]),
                     None, None, False, "redfish"))
    for k in range(96):  # facility meter, 15-minute intervals ending in the day
        end = T0 + timedelta(minutes=15 * (k + 1))
        if end < T0 + timedelta(days=1):
            rows.append(("metro-east/facility", "facility", "metro-east", None, None, end, None, None,
                         1.4e7 + 1e6 * rng.random(), 900.0, False, "facility_csv"))
    return pl.DataFrame(rows, schema=POWER_READINGS.schema, orient="row")


def _bills(amounts):
    a_cloud, a_unknown, a_colo, a_on, a_off, a_demand = amounts
    h = lambda x: T0 + timedelta(hours=x)  # noqa: E731
    month = (datetime(2026, 11, 1, 5, tzinfo=UTC), datetime(2026, 12, 1, 6, tzinfo=UTC))
    rows = [
        ("focus", "f1", "cloud-use1", "i-0c1a0d0000000001", h(10), h(11), "cloud_compute", a_cloud, a_cloud, "USD",
         1.0, "Hours", "EC2", "Usage", None, None),
        ("focus", "f2", "cloud-use1", "vol-unknown", h(0), h(24), "other", a_unknown, a_unknown, "USD",
         1.0, "GB-Mo", "S3", "Usage", None, None),
        ("colocation_invoice", "c1:1", "metro-east", None, *month, "colocation", a_colo, a_colo, "USD",
         10.0, "kW-month", "power_commit", "Usage", None, None),
        ("electricity_invoice", "e1:1", "remote-plains", None, *month, "energy", a_on, a_on, "USD",
         900.0, "kWh", "energy", "Usage", "on_peak", None),
        ("electricity_invoice", "e1:2", "remote-plains", None, *month, "energy", a_off, a_off, "USD",
         2400.0, "kWh", "energy", "Usage", "off_peak", None),
        ("electricity_invoice", "e1:3", "remote-plains", None, *month, "demand", a_demand, a_demand, "USD",
         5.0, "kW", "demand", "Usage", None, h(15)),
    ]
    return pl.DataFrame(rows, schema=COST_LINES.schema, orient="row")


def _assets():
    return pl.DataFrame([("a1", "m-h200-01", 300000.0, "USD", date(2024, 1, 1), 60, 10000.0, "straight_line", None,
                          "metro-east"),
                         ("a2", "r-l40s-bat-01", 60000.0, "USD", DAY, 48, 0.0, "declining_balance", None,
                          "remote-plains")],
                        schema=ASSETS.schema, orient="row")


def _market():
    return pl.DataFrame({"tariff_id": "nyiso-zone-j", "hour_utc": [T0 + timedelta(hours=k) for k in range(-24, 48)],
                         "price_per_kwh": [0.03 + 0.001 * (k % 24) for k in range(72)]},
                        schema={"tariff_id": pl.String, "hour_utc": pl.Datetime("us", "UTC"),
                                "price_per_kwh": pl.Float64})


def _run(inputs, inventory, slot_s, weight):
    """The day as `pipelines.attribution.attribute_partition` runs it, the facts collected where
    the pipeline streams them to a file."""
    shared = share_day(inputs, inventory, SlotGrid(DAY, slot_s), weight=weight)
    facts, pool_idle = finish_day(shared, shared.per_request, inventory, weight=weight)
    out = day_outputs(shared, facts.collect().lazy(), pool_idle)
    return dict(zip(OUTPUTS, pl.collect_all([getattr(out, n) for n in OUTPUTS]), strict=True))


request_rows = st.lists(st.tuples(st.sampled_from(sorted(NODES)), st.floats(0, 86_000), st.floats(0, 900),
                                  st.one_of(st.none(), st.floats(0, 20)), st.integers(0, 8000), st.integers(0, 4000),
                                  st.one_of(st.none(), st.integers(0, 100_000))), max_size=40)
money = st.floats(0, 5000, allow_nan=False)


@settings(max_examples=examples(12), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=request_rows, seed=st.integers(0, 2**16), gap=st.tuples(st.integers(0, 1400), st.integers(0, 120)),
       amounts=st.tuples(money, money, money, money, money, money), slot_s=st.sampled_from([60, 300, 900]),
       weight=st.sampled_from(["time", "tokens"]), perm=st.randoms())
def test_conservation_order_independence_and_reruns(small_inventory, rows, seed, gap, amounts, slot_s, weight, perm):
    frames = [_requests(rows), _readings(seed, gap), _bills(amounts), _assets()]
    inputs = DayInputs(*(f.lazy() for f in frames), market_prices=_market().lazy())
    first = _run(inputs, small_inventory, slot_s, weight)

    assert conservation_failures(first["reconciliation"]).height == 0
    t = first["totals"]
    money_rows = t.filter(pl.col("unit") != "J")
    worst = money_rows.select(pl.col("requests_difference", "idle_difference").abs().max()).max_horizontal().item()
    assert worst <= MONEY_TOLERANCE
    for r in t.filter(pl.col("unit") == "J").iter_rows(named=True):
        assert abs(r["requests_difference"]) <= ENERGY_RELATIVE_TOLERANCE * max(1.0, r["source_amount"]) * 10
    # Every source's day amount ends in requests, idle or unattributed.
    rec = first["reconciliation"]
    left_over = rec["source_amount"] - rec["to_requests"] - rec["to_idle"] - rec["unattributed"]
    assert left_over.abs().max() <= MONEY_TOLERANCE
    assert first["request_costs"].height == len(rows)

    shuffled = DayInputs(*(f.sample(fraction=1.0, shuffle=True, seed=perm.randint(0, 10**6)).lazy() for f in frames),
                         market_prices=_market().sample(fraction=1.0, shuffle=True, seed=1).lazy())
    again = _run(shuffled, small_inventory, slot_s, weight)
    for name in OUTPUTS:
        # Same rows, same keys, same numbers: Polars divides by a constant through a reciprocal
        # in some kernels and not in others, so a permuted input may move a float by an ulp.
        # Request facts keep the order of the requests given (the lake's files are sorted by key).
        a, b = first[name], again[name]
        if name == "request_costs":
            a, b = a.sort("request_id"), b.sort("request_id")
        assert_frame_equal(a, b, check_exact=False, rel_tol=1e-12, abs_tol=1e-9)
    rerun = _run(inputs, small_inventory, slot_s, weight)
    for name in OUTPUTS:
        assert first[name].equals(rerun[name]), name
