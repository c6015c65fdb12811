"""The morning report (docs/report.md): built from the demo warehouse, self-contained, and
rendered in a real headless Chromium (Debian's package) with every chart drawn and the headline
figures equal to the marts."""

import shutil
from dataclasses import asdict
from html.parser import HTMLParser
from pathlib import Path

import dagster as dg
import pytest

from lake.inventory import load_inventory
from pipelines.cli import main
from pipelines.defs.report.assets import report as report_asset
from pipelines.resources import Warehouse
from tests.servers import install_debian_package
from warehouse.access import open_warehouse
from warehouse.checks import checks, published_outcomes, run_checks
from warehouse.publish import publish
from warehouse.report import ReportError, build_report, write_report
from warehouse.report.charts import CHARTS
from warehouse.report.page import vega_bundle, vl_convert_version

CHROMIUM = Path("/usr/bin/chromium")
# Flags of a quiet, offline browser: nothing phones home during the test.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]


@pytest.fixture(scope="module")
def planned(demo_warehouse, tmp_path_factory) -> dict:
    """A copy of the demo day with a plan made on it by `inferledger plan`, which keeps the plan in
    the lake and publishes the warehouse again (the same publish job as the nightly run's)."""
    root = tmp_path_factory.mktemp("planned")
    raw, lake, wh = root / "raw", root / "lake", root / "warehouse" / "inferledger.duckdb"
    shutil.copytree(demo_warehouse["raw"], raw)
    shutil.copytree(demo_warehouse["lake"], lake)
    assert main(["plan", "--date", str(demo_warehouse["day"]), "--raw", str(raw), "--lake", str(lake),
                 "--warehouse", str(wh)]) == 0
    return {**demo_warehouse, "raw": raw, "lake": lake, "warehouse": wh}


@pytest.fixture(scope="module")
def report(planned, tmp_path_factory):
    return write_report(planned["warehouse"], tmp_path_factory.mktemp("report") / "report.html")


@pytest.fixture(scope="module")
def plan_expected(planned) -> dict:
    """The plan section's figures, asked of the plan tables directly."""
    con = open_warehouse(planned["warehouse"])
    try:
        (run,) = con.sql("SELECT run_id, savings, today_cost, objective, objective_misses, calibrated "
                         "FROM plan_runs").fetchall()
        tiers = con.sql("SELECT tier FROM plan_summary WHERE component = 'total_cost' "
                        "ORDER BY tier = 'ALL' DESC, tier").fetchall()
    finally:
        con.close()
    return {"run_id": run[0], "savings": run[1], "today": run[2], "planned": run[3], "misses": run[4],
            "calibrated": run[5], "tiers": [t[0] for t in tiers]}


@pytest.fixture(scope="module")
def expected(demo_warehouse) -> dict:
    """The headline figures, asked of the marts directly."""
    con = open_warehouse(demo_warehouse["warehouse"])

    def q(sql: str) -> tuple:
        return con.sql(sql, params={"d": demo_warehouse["day"]}).fetchall()[0]

    try:
        req, tokens, loaded, direct, revenue, margin = q(
            "SELECT sum(requests), sum(input_tokens + output_tokens), sum(fully_loaded_cost), sum(direct_cost), "
            "sum(revenue), sum(gross_margin) FROM cost_by_tier_day WHERE date = $d")
        slot, idle = q("SELECT sum(slot_cost), sum(idle_cost) FROM idle_by_pool_hour WHERE date = $d")
        facility, it = q("SELECT sum(facility_energy_kwh), sum(it_energy_kwh) FROM site_energy_hour WHERE date = $d")
        (exceptions,) = q("SELECT count(*) FROM reconciliation WHERE date = $d AND NOT within_tolerance")
        (quarantined,) = q("SELECT sum(rows) FROM quarantine_summary WHERE date = $d")
        (currency,) = q("SELECT min(currency) FROM cost_by_tier_day WHERE date = $d")
    finally:
        con.close()
    return {"requests": req, "fully_loaded_cost": loaded, "direct_cost": direct, "cost_per_query": loaded / req,
            "cost_per_m_tokens": loaded / tokens * 1e6, "revenue": revenue, "gross_margin": margin,
            "idle_cost_share": idle / slot, "pue": facility / it, "facility_energy_kwh": facility,
            "reconciliation_exceptions": exceptions, "quarantined_rows": quarantined, "currency": currency}


class _Page(HTMLParser):
    """What the report's HTML refers to outside itself, and its headline and chart elements."""

    def __init__(self):
        super().__init__()
        self.external, self.headlines, self.charts, self.inline_scripts = [], {}, [], 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for attr in ("src", "href", "data"):
            if a.get(attr) and not a[attr].startswith("#"):
                self.external.append((tag, attr, a[attr]))
        if tag == "script" and "src" not in a:
            self.inline_scripts += 1
        if a.get("data-key"):
            self.headlines[a["data-key"]] = a["data-value"]
        if a.get("data-chart"):
            self.charts.append(a["data-chart"])


def test_report_html_is_self_contained(report, expected):
    text = report.path.read_text(encoding="utf-8")
    page = _Page()
    page.feed(text)
    assert page.external == [], "the report must open offline: no script, style, image or link sources"
    assert "@import" not in text and "url(http" not in text
    assert page.inline_scripts == 2  # the Vega bundle, then the chart specs
    assert sorted(page.charts) == sorted(CHARTS), "every chart of the demo day has data"
    assert report.charts == len(CHARTS)
    for key in ("requests", "fully_loaded_cost", "cost_per_query", "idle_cost_share", "pue", "quarantined_rows"):
        assert float(page.headlines[key]) == pytest.approx(expected[key], rel=1e-9), key
    assert "Great Expectations" in text and 'id="expectations-missing"' in text  # the hook, until GX results come
    assert report.bytes < 3_000_000


def test_report_refuses_unpublished_day_and_bad_window(demo_warehouse, tmp_path):
    with pytest.raises(ReportError, match="2026-01-01 is not a published day"):
        write_report(demo_warehouse["warehouse"], tmp_path / "r.html", demo_warehouse["day"].replace(month=1, day=1))
    with pytest.raises(ReportError, match="at least one day"):
        write_report(demo_warehouse["warehouse"], tmp_path / "r.html", days=0)
    assert not (tmp_path / "r.html").exists()


def test_cli_report_and_demo_report(demo_warehouse, tmp_path):
    # `make demo` writes the report beside the warehouse (tests/conftest.py runs the same demo).
    demo_report = demo_warehouse["warehouse"].with_name("report.html")
    assert demo_report.exists(), (f"{demo_report}: the demo writes its report; a shared demo built by older code is "
                                  f"reused across sessions: delete {demo_report.parent.parent} and run again")
    assert demo_report.stat().st_size > 100_000
    out = tmp_path / "morning.html"
    assert main(["report", "--date", demo_warehouse["day"].isoformat(), "--days", "3", "--out", str(out),
                 "--warehouse", str(demo_warehouse["warehouse"])]) == 0
    assert f"Inference cost report: {demo_warehouse['day']}" in out.read_text(encoding="utf-8")
    assert main(["report", "--date", "2020-01-01", "--out", str(tmp_path / "x.html"),
                 "--warehouse", str(demo_warehouse["warehouse"])]) == 1


def test_report_asset_materializes(demo_warehouse, tmp_path):
    out = tmp_path / "asset-report.html"
    res = dg.materialize([report_asset], resources={"warehouse": Warehouse(path=str(demo_warehouse["warehouse"]))},
                         run_config={"ops": {"report": {"config": {"path": str(out), "days": 7}}}},
                         instance=dg.DagsterInstance.ephemeral())
    assert res.success and out.exists()
    meta = res.get_asset_materialization_events()[0].event_specific_data.materialization.metadata
    assert meta["day"].value == demo_warehouse["day"].isoformat() and meta["charts"].value == len(CHARTS)


# ---- in a real browser ----

@pytest.fixture(scope="module")
def chromium() -> Path:
    """Debian's Chromium, installed when missing (the test machine is root); Playwright drives
    it and downloads no browser of its own."""
    pytest.importorskip("playwright.sync_api", reason="playwright is a dev dependency: pip install -e '.[dev]'")
    if not CHROMIUM.exists():
        install_debian_package("chromium")  # or skip, saying why
    return CHROMIUM


def test_plan_section_shows_the_latest_plan(report, plan_expected):
    """The demo day's plan, made and published by `inferledger plan` (calibrated on the demo day:
    tests/test_planning_ledger.py): the section's figures are the plan tables' own."""
    text = report.path.read_text(encoding="utf-8")
    section = text[text.index('<section id="plan">'):]
    section = section[:section.index("</section>")]
    assert plan_expected["run_id"] == f"day-{report.day}-{report.day}" and plan_expected["calibrated"] is True
    assert 'id="plan-calibration" data-calibrated="true">calibrated' in section
    assert f'data-savings="{plan_expected["savings"]!r}" data-today="{plan_expected["today"]!r}"' in section
    assert f'data-misses="{plan_expected["misses"]}"' in section and 'id="backtest-none"' in section


def test_report_renders_in_headless_chromium(chromium, report, expected, plan_expected, tmp_path):
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 (optional dev dependency, skipped without it)

    problems, outside = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: problems.append(f"console.{m.type}: {m.text}")
                    if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))

            def offline(route):  # the page must need nothing but its own file
                if route.request.url.startswith("file:"):
                    return route.continue_()
                outside.append(route.request.url)
                return route.abort()

            page.route("**/*", offline)
            page.goto(report.path.resolve().as_uri())
            page.wait_for_function("document.body.dataset.charts !== 'pending'", timeout=60_000)
            state = page.evaluate("document.body.dataset.charts")
            charts = page.evaluate("""() => [...document.querySelectorAll('.chart')].map(div => {
                const svg = div.querySelector('svg'); const box = svg ? svg.getBoundingClientRect() : null;
                return {id: div.dataset.chart, rendered: div.dataset.rendered === 'true', width: box ? box.width : 0,
                        height: box ? box.height : 0, marks: svg ? svg.querySelectorAll('path, rect, line').length : 0,
                        text: svg ? svg.textContent : ''};
            })""")
            headlines = page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('[data-key]')]
                .map(e => [e.dataset.key, {value: e.dataset.value, shown: e.querySelector('.value').textContent}]))""")
            plan = page.evaluate("""() => { const s = document.getElementById('plan-savings');
                const box = document.getElementById('plan-tiers').getBoundingClientRect();
                return {savings: s.dataset.savings, text: s.innerText, width: box.width, height: box.height,
                        calibrated: document.getElementById('plan-calibration').dataset.calibrated,
                        tiers: [...document.querySelectorAll('#plan-tiers tbody tr')].map(r => r.cells[0].innerText),
                        components: [...document.querySelectorAll('#plan-components tbody tr')]
                            .map(r => r.cells[0].innerText)}; }""")
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()

    assert problems == [] and outside == [], (problems, outside)
    assert state == "rendered"
    assert sorted(c["id"] for c in charts) == sorted(CHARTS)
    for c in charts:
        assert c["rendered"], c["id"]
        assert c["width"] >= 300 and c["height"] >= 150, c  # a drawn chart, not an empty box
        assert c["marks"] >= 10, c
    money_axes = {c["id"]: c["text"] for c in charts}
    assert "$" in money_axes["cost-per-query-tier"] and f"({expected['currency']})" in money_axes["cost-per-query-tier"]
    assert "Hour (UTC)" in money_axes["idle-share-heatmap"] and "PUE" in money_axes["pue-site-hour"]
    assert shot.stat().st_size > 50_000

    for key in ("requests", "fully_loaded_cost", "direct_cost", "cost_per_query", "cost_per_m_tokens", "revenue",
                "gross_margin", "idle_cost_share", "pue", "facility_energy_kwh", "reconciliation_exceptions",
                "quarantined_rows"):
        assert float(headlines[key]["value"]) == pytest.approx(expected[key], rel=1e-9, abs=1e-12), key
    assert headlines["requests"]["shown"] == f"{expected['requests']:,}"
    if expected["currency"] == "USD":
        assert headlines["fully_loaded_cost"]["shown"] == f"${expected['fully_loaded_cost']:,.2f}"
    assert headlines["idle_cost_share"]["shown"] == f"{expected['idle_cost_share']:.1%}"
    # The plan section, drawn: the savings as the plan tables hold them, one row per tier, every component.
    assert float(plan["savings"]) == pytest.approx(plan_expected["savings"], rel=1e-12)
    assert f"savings {plan_expected['savings']:,.2f}" in plan["text"] and plan["calibrated"] == "true"
    assert plan["tiers"] == plan_expected["tiers"] and plan["width"] > 300 and plan["height"] > 40
    assert plan["components"] == ["amortization_cost", "egress_cost", "energy_cost", "rent_cost", "total_cost"]


def test_the_vega_bundle_is_built_once_and_kept_in_the_cache(tmp_path):
    vega_bundle.cache_clear()
    try:
        built = vega_bundle(vl_convert_version(), tmp_path)
        (cached,) = tmp_path.glob("vega-bundle-*.js")
        assert cached.read_text(encoding="utf-8") == built and "vegaEmbed" in built
        vega_bundle.cache_clear()
        assert vega_bundle(vl_convert_version(), tmp_path) == built  # read back
        cached.write_text("truncated")  # a damaged cache is built again, never served
        vega_bundle.cache_clear()
        assert vega_bundle(vl_convert_version(), tmp_path) == built
        assert cached.read_text(encoding="utf-8") == built
    finally:
        vega_bundle.cache_clear()


def test_the_report_after_a_publish_shows_the_checks_that_publish_ran(demo_warehouse, tmp_path):
    """A report that follows a publish in the same process takes the publish's outcomes for the
    version it swapped in (`warehouse.checks.published_outcomes`) instead of running the same
    SQL again; they equal the checks run afresh on the published file. Another version, or a
    check whose SQL differs, runs again."""
    lake, wh = tmp_path / "lake", tmp_path / "warehouse" / "inferledger.duckdb"
    shutil.copytree(demo_warehouse["lake"], lake)
    out = publish(lake, load_inventory(demo_warehouse["raw"] / "inventory.yaml"), wh)
    known = published_outcomes(wh, out.version)
    assert len(known) == len(checks()) == len(out.checks)
    con = open_warehouse(wh)
    try:
        _, data = build_report(con, path=str(wh))
        fresh = run_checks(con)
        assert [asdict(o) for o in data.checks] == [asdict(o) for o in fresh]
        assert all(any(o is k for k in known.values()) for o in data.checks)  # taken, not run again
        _, other = build_report(con, path=str(tmp_path / "another.duckdb"))
        assert not any(o is k for o in other.checks for k in known.values())
        stale = run_checks(con, checks(max_age_days=9), known=known)  # the freshness check's SQL differs
        assert [o is known.get((c.name, c.sql)) for c, o in zip(checks(max_age_days=9), stale, strict=True)] == \
            [c.name != "freshness" for c in checks()]
    finally:
        con.close()
