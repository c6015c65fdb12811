"""The nightly schedule and the sensors, evaluated against a real instance, with the runs they
request executed for real: the nightly ingest covers the previous UTC day for every site, the
downstream sensor attributes complete days and publishes once, and a corrected invoice
re-runs exactly its partition and the days its period covers, with nothing doubled."""

import json
import shutil
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

import fleetsim
from tests.conftest import fast_instance
from pipelines.automation import Cursor, previous_utc_day
from pipelines.defs.automation.nightly import downstream, late_data, nightly_schedule
from pipelines.location import code_location
from pipelines.partitions import register_sites
from pipelines.resources import RawInputs
from pipelines.runner import run_job
from settings import defaults
from warehouse.access import open_warehouse

DATA = Path(__file__).parent / "data"
D1, D2 = date(2026, 11, 24), date(2026, 11, 25)


def test_previous_utc_day_of_a_tick():
    assert previous_utc_day(datetime(2026, 11, 25, 2, 30, tzinfo=UTC)) == date(2026, 11, 24)
    # 22:30 in New York on the 25th is 03:30 UTC on the 26th: the day before is the 25th.
    assert previous_utc_day(datetime(2026, 11, 25, 22, 30, tzinfo=ZoneInfo("America/New_York"))) == date(2026, 11, 25)
    # 01:00 in Tokyo on the 25th is 16:00 UTC on the 24th.
    assert previous_utc_day(datetime(2026, 11, 25, 1, 0, tzinfo=ZoneInfo("Asia/Tokyo"))) == date(2026, 11, 23)


def test_nightly_tick_requests_every_site_of_the_previous_day(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(DATA / "inventory_small.yaml", raw / "inventory.yaml")
    with fast_instance() as instance:
        context = dg.build_schedule_context(instance=instance,
                                            scheduled_execution_time=datetime(2026, 11, 25, 2, 30, tzinfo=UTC),
                                            resources={"raw": RawInputs(root=str(raw))})
        requests = list(nightly_schedule()(context))
        sites = sorted(instance.get_dynamic_partitions("site"))
    assert [(str(r.partition_key), r.run_key) for r in requests] == [
        ("2026-11-24|metro-east", "nightly-2026-11-24-metro-east"),
        ("2026-11-24|remote-plains", "nightly-2026-11-24-remote-plains"),
        ("2026-11-24|cloud-use1", "nightly-2026-11-24-cloud-use1")]
    assert all(r.tags["inferledger/date"] == "2026-11-24" for r in requests)
    assert sites == ["cloud-use1", "metro-east", "remote-plains"]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    root = tmp_path_factory.mktemp("automation")
    raw, lake, wh = root / "raw", root / "lake", root / "warehouse" / "inferledger.duckdb"
    fleetsim.simulate(raw, D1, requests=1_000, seed=5, invoices=True)  # the month's invoices arrive on D1
    fleetsim.simulate(raw, D2, requests=1_000, seed=6, invoices=False)
    settings = defaults(raw=raw, lake=lake, warehouse=wh)
    with fast_instance() as instance:
        yield {"paths": settings, "defs": code_location(settings), "instance": instance,
               "raw": RawInputs(root=str(raw)), "cursor": None}


def execute(fleet, request: dg.RunRequest, default_job: str):
    assets = [k.to_user_string() for k in request.asset_selection] if request.asset_selection else None
    partition = str(request.partition_key) if request.partition_key else None
    return run_job(fleet["defs"], request.job_name or default_job, partition, fleet["instance"], tags=request.tags,
                   assets=assets)


def tick_downstream(fleet) -> list[dg.RunRequest]:
    context = dg.build_sensor_context(instance=fleet["instance"], cursor=fleet["cursor"],
                                      resources={"raw": fleet["raw"]})
    result = downstream(context)
    fleet["cursor"] = context.cursor
    return [] if isinstance(result, dg.SkipReason) else list(result)


def tick_late(fleet) -> list[dg.RunRequest]:
    context = dg.build_sensor_context(instance=fleet["instance"], resources={"raw": fleet["raw"]})
    result = late_data(context)
    return [] if isinstance(result, dg.SkipReason) else list(result)


def warehouse_sql(fleet, q):
    con = open_warehouse(fleet["paths"].warehouse)
    try:
        return con.sql(q).fetchall()
    finally:
        con.close()


def test_nights_flow_downstream_and_a_corrected_invoice_reruns_exactly_what_it_touches(fleet):
    inst = fleet["instance"]
    sites = fleet["raw"].inventory().site_ids
    register_sites(inst, sites)
    # Night of D1, site by site; the sensor waits until every site is in.
    for tick, day in ((datetime(2026, 11, 25, 2, 30, tzinfo=UTC), D1), (datetime(2026, 11, 26, 2, 30, tzinfo=UTC), D2)):
        ctx = dg.build_schedule_context(instance=inst, scheduled_execution_time=tick, resources={"raw": fleet["raw"]})
        ingest = list(nightly_schedule()(ctx))
        for r in ingest[:-1]:
            execute(fleet, r, "ingest_day_site")
        assert tick_downstream(fleet) == []  # one site still missing
        assert Cursor.parse(fleet["cursor"]).pending == {day.isoformat(): 0}
        execute(fleet, ingest[-1], "ingest_day_site")
        (attribute,) = tick_downstream(fleet)
        assert (attribute.job_name, attribute.partition_key) == ("attribute_day", day.isoformat())
        execute(fleet, attribute, "attribute_day")
        (publish,) = tick_downstream(fleet)
        assert publish.job_name == "publish_warehouse"
        execute(fleet, publish, "publish_warehouse")
        assert tick_downstream(fleet) == []  # nothing newer: no second publish
    assert tick_late(fleet) == []  # no raw file changed since it was ingested

    fixed_cost_by_day = "SELECT date, source_amount FROM conservation_by_component WHERE component = 'fixed_cost'"
    requests_by_day = "SELECT date, sum(requests) FROM cost_by_tier_day GROUP BY date ORDER BY date"
    before = dict(warehouse_sql(fleet, fixed_cost_by_day))
    requests_before = warehouse_sql(fleet, requests_by_day)

    # The colocation provider re-issues November's invoice: space costs 2,050 instead of 1,850.
    invoice = next((fleet["paths"].raw / D1.isoformat() / "metro-east" / "colocation").glob("*.csv"))
    text = invoice.read_text()
    assert ",1850.00,1850.00,USD" in text
    invoice.write_text(text.replace(",1850.00,1850.00,USD", ",2050.00,2050.00,USD"))

    (late,) = tick_late(fleet)
    assert str(late.partition_key) == f"{D1}|metro-east"
    assert [k.to_user_string() for k in late.asset_selection] == ["cost_lines"]  # only what changed
    execute(fleet, late, "ingest_day_site")
    assert tick_late(fleet) == []
    # The invoice covers the whole month: both attributed days read it.
    attributes = tick_downstream(fleet)
    assert sorted(r.partition_key for r in attributes) == [D1.isoformat(), D2.isoformat()]
    for r in attributes:
        execute(fleet, r, "attribute_day")
    (publish,) = tick_downstream(fleet)
    execute(fleet, publish, "publish_warehouse")

    after = dict(warehouse_sql(fleet, fixed_cost_by_day))
    # A day's share of the correction: the invoice's period is November in the site's local time
    # (America/New_York), which is 30 days and one hour long (summer time ended on 1 November).
    for day in (D1, D2):
        assert after[day] - before[day] == pytest.approx(200 * 86_400 / (30 * 86_400 + 3_600), abs=1e-9)
    # Replaced, not doubled: the same requests, one row per source line, checks passing.
    assert warehouse_sql(fleet, requests_by_day) == requests_before
    assert warehouse_sql(fleet, "SELECT count(*) FROM reconciliation WHERE NOT within_tolerance") == [(0,)]
    assert warehouse_sql(fleet, "SELECT count(*) - count(DISTINCT (date, source, line_id, component)) "
                                "FROM reconciliation") == [(0,)]
    # Restated, visibly: each day's fixed cost, caused by the re-issued invoice.
    name = invoice.relative_to(fleet["paths"].raw).as_posix()
    rows = warehouse_sql(fleet, "SELECT date, difference, caused_by FROM restatements "
                                "WHERE component = 'fixed_cost' AND measure = 'cost' ORDER BY date")
    assert [(d, c) for d, _, c in rows] == [(D1, name), (D2, name)]
    assert [diff for _, diff, _ in rows] == [pytest.approx(200 * 86_400 / (30 * 86_400 + 3_600), abs=1e-9)] * 2



def test_a_late_request_log_with_a_request_in_flight_at_midnight_reattributes_the_day_before(fleet):
    # Runs after the test above (same fleet): D1 and D2 attributed and published. D2's log of
    # m-h200-01 is re-delivered with one more request, from 23:59:30 on D1 to 00:00:30 on D2
    # (logged on D2, its completion day). `late_data` re-ingests that log; `downstream` then
    # attributes D2 and D1 again (D1 for the request's 30 s before midnight), then publishes.
    log = fleet["paths"].raw / D2.isoformat() / "metro-east" / "requests" / "m-h200-01.jsonl"
    record = json.loads(log.read_text().splitlines()[0])
    record.update({"time": "2026-11-24T23:59:30.000Z", "gen_ai.response.id": "midnight-R",
                   "gen_ai.latency.time_in_queue": 0.0, "gen_ai.latency.e2e": 60.0})
    with log.open("a") as f:
        f.write(json.dumps(record) + "\n")
    requests_before = dict(warehouse_sql(fleet, "SELECT date, sum(requests) FROM cost_by_tier_day GROUP BY date"))
    (late,) = tick_late(fleet)
    assert [k.to_user_string() for k in late.asset_selection] == ["requests"]
    ingest = execute(fleet, late, "ingest_day_site")
    assert ingest.materializations["requests"]["started_before_day"] == 1
    attributes = tick_downstream(fleet)
    assert sorted(r.partition_key for r in attributes) == [D1.isoformat(), D2.isoformat()]
    for r in attributes:
        execute(fleet, r, "attribute_day")
    (publish,) = tick_downstream(fleet)
    execute(fleet, publish, "publish_warehouse")
    assert tick_downstream(fleet) == []
    rows = warehouse_sql(fleet, "SELECT date, occupied_s, direct_cost > 0 FROM request_costs "
                                "WHERE request_id = 'midnight-R' ORDER BY date")
    assert rows == [(D1, 30.0, True), (D2, 30.0, True)]
    # Counted once, on its completion day.
    after = dict(warehouse_sql(fleet, "SELECT date, sum(requests) FROM cost_by_tier_day GROUP BY date"))
    assert after == {D1: requests_before[D1], D2: requests_before[D2] + 1}
    assert warehouse_sql(fleet, "SELECT count(*) FROM reconciliation WHERE NOT within_tolerance") == [(0,)]


FIXED_BY_DAY = "SELECT date, source_amount FROM conservation_by_component WHERE component = 'fixed_cost'"


def test_a_bill_delivered_after_its_day_re_attributes_the_earlier_day(fleet):
    """Continues the nights above: a one-day invoice of remote-plains for 24 November (local),
    filed in 25 November's folder, reaches the 24th, the day before its delivery."""
    before = dict(warehouse_sql(fleet, FIXED_BY_DAY))
    folder = fleet["paths"].raw / D2.isoformat() / "remote-plains" / "electricity"
    folder.mkdir()  # D2 had no invoice
    (folder / "PLN-20261124-LATE.csv").write_text(
        "invoice_id,line_no,account,period_start,period_end,line_type,tou_period,quantity,unit,rate,amount,currency,"
        "peak_at\nPLN-20261124-LATE,1,ACCT-1,2026-11-24,2026-11-25,fixed,,1,day,24,24.00,USD,\n")
    (late,) = tick_late(fleet)
    assert (str(late.partition_key), [k.to_user_string() for k in late.asset_selection]) == (
        f"{D2}|remote-plains", ["cost_lines"])
    execute(fleet, late, "ingest_day_site")
    attributes = tick_downstream(fleet)
    assert sorted(r.partition_key for r in attributes) == [D1.isoformat(), D2.isoformat()]  # the 24th too
    for r in attributes:
        execute(fleet, r, "attribute_day")
    (publish,) = tick_downstream(fleet)
    execute(fleet, publish, "publish_warehouse")
    after = dict(warehouse_sql(fleet, FIXED_BY_DAY))
    # 24 Nov 00:00 to 25 Nov 00:00 in Chicago (UTC-6) is 24 Nov 06:00 to 25 Nov 06:00 UTC:
    # 18 hours of the 24th (24.00 x 18 / 24 = 18.00), 6 hours of the 25th (6.00).
    assert after[D1] - before[D1] == pytest.approx(18.00, abs=1e-9)
    assert after[D2] - before[D2] == pytest.approx(6.00, abs=1e-9)
    version = warehouse_sql(fleet, "SELECT version FROM publication")[0][0]
    rows = warehouse_sql(fleet, "SELECT date, difference, caused_by FROM restatements WHERE component = 'fixed_cost' "
                                f"AND measure = 'cost' AND version_after = '{version}' ORDER BY date")
    late_file = f"{D2}/remote-plains/electricity/PLN-20261124-LATE.csv"
    assert rows == [(D1, pytest.approx(18.00, abs=1e-9), late_file), (D2, pytest.approx(6.00, abs=1e-9), late_file)]
