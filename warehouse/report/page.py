"""The report as one self-contained HTML page: styles, the Vega bundle and every chart's data
inline, so it opens from a mail attachment or a file share with no network."""

import html
import json
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import altair as alt
import polars as pl
import vl_convert

from lake.files import write_text
from transforms.bounds import IDLE_FLOOR
from warehouse.report.charts import CHARTS, CURRENCY_SYMBOLS, format_locale
from warehouse.report.figures import Headline, ReportData
from warehouse.report.plan_section import plan_section

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;\
margin:0;color:#1d2329;background:#f6f7f9}
main{max-width:1440px;margin:0 auto;padding:24px}
h1{margin:0 0 4px;font-size:26px}h2{font-size:18px;margin:0 0 4px}h3{font-size:15px;margin:16px 0 4px}
.sub{color:#56606b;margin:0 0 2px}.note{color:#56606b;font-size:13px;margin:0 0 8px}
.kpis{display:grid;grid-template-columns:repeat(auto-fill,minmax(220px,1fr));gap:10px;margin:18px 0}
.kpi{background:#fff;border:1px solid #dde1e6;border-radius:8px;padding:10px 14px}
.kpi .label{font-size:13px;color:#56606b}.kpi .value{font-size:24px;font-weight:600;font-variant-numeric:tabular-nums}
.kpi .hint{font-size:12px;color:#7a8591}.kpi.bad{border-color:#d64545}.kpi.bad .value{color:#b42318}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:14px}
section{background:#fff;border:1px solid #dde1e6;border-radius:8px;padding:14px 16px;margin:14px 0;overflow-x:auto}
.grid section{margin:0}.grid section.wide{grid-column:1/-1}
table{border-collapse:collapse;font-size:13px;margin:4px 0 8px;font-variant-numeric:tabular-nums}
th,td{padding:3px 10px;border-bottom:1px solid #e6e9ed;text-align:left;vertical-align:top}td.n,th.n{text-align:right}
.ok{color:#067647;font-weight:600}.fail{color:#b42318;font-weight:600}.warn{color:#b54708;font-weight:600}
.empty{color:#56606b;font-style:italic}code{font-size:12px}
"""


def vl_convert_version() -> str:
    """The Vega-Lite version Altair writes specs for, as vl-convert names it ('v6_4')."""
    return "_".join(alt.SCHEMA_VERSION.split(".")[:2])


@lru_cache(maxsize=4)
def vega_bundle(vl_version: str, cache_dir: Path | None = None) -> str:
    """Vega, Vega-Lite and vega-embed as one script (vl-convert's bundle, ~0.9 MB). Building it
    takes ~2.5 s, so it is built once per vl-convert release and Vega-Lite version and kept in
    `cache_dir` when given (the setting `cache_dir`, $INFERLEDGER_CACHE_DIR; a cache only: any
    failure to read or write it just builds it again)."""
    cached = cache_dir / f"vega-bundle-{vl_convert.__version__}-{vl_version}.js" if cache_dir else None
    try:
        text = cached.read_text(encoding="utf-8") if cached else ""
        if len(text) > 100_000 and "vegaEmbed" in text:  # whole, not a stray file of that name
            return text
    except (OSError, UnicodeDecodeError):
        pass
    bundle = vl_convert.javascript_bundle(vl_version=vl_version).replace("</script", "<\\/script")
    try:
        if cached:
            write_text(cached, bundle)
    except OSError:
        pass
    return bundle


def _money(v, cur: str, digits: int = 2) -> str:
    if v is None:
        return "–"
    sym = CURRENCY_SYMBOLS.get(cur, f"{cur} ")
    return f"{'-' if v < 0 else ''}{sym}{abs(v):,.{digits}f}"


def show(h: Headline, cur: str) -> str:
    """A headline's value as printed at the top of the report."""
    v = h.value
    if v is None:
        return "–"
    match h.kind:
        case "money":
            return _money(v, cur)
        case "money_small":
            return _money(v, cur, 4)
        case "count":
            return f"{int(v):,}"
        case "share":
            return f"{v:.1%}"
        case "kwh":
            return f"{v:,.1f} kWh"
        case "joules":
            return f"{v:,.2f} J"
        case _:
            return f"{v:,.3f}"


def _cell(v, name: str, cur: str) -> str:
    if v is None:
        return '<td class="n">–</td>'
    if isinstance(v, bool):
        return f"<td>{'yes' if v else 'no'}</td>"
    if isinstance(v, int):
        return f'<td class="n">{v:,}</td>'
    if isinstance(v, float):
        if name.endswith(("_share", "_pct")):
            return f'<td class="n">{v:.1%}</td>'
        if "kwh" in name:
            return f'<td class="n">{v:,.3f}</td>'
        if "difference" in name:
            return f'<td class="n">{v:.2e}</td>'
        return f'<td class="n">{v:,.2f}</td>'
    return f"<td>{html.escape(str(v))}</td>"


def table(df: pl.DataFrame, cur: str, *, empty: str = "none", table_id: str = "") -> str:
    """A frame as an HTML table, numbers right-aligned with thousands separators."""
    if df.is_empty():
        return f'<p class="empty">{html.escape(empty)}</p>'
    num = {c for c, t in df.schema.items() if t.is_numeric()}
    head = "".join(f'<th class="{"n" if c in num else ""}">{html.escape(c.replace("_", " "))}</th>' for c in df.columns)
    rows = "".join("<tr>" + "".join(_cell(v, c, cur) for c, v in zip(df.columns, r, strict=True)) + "</tr>"
                   for r in df.iter_rows())
    attr = f' id="{table_id}"' if table_id else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _shares(df: pl.DataFrame, of: str) -> dict[str, float]:
    total = df[of].sum() or 0
    return {m: (v or 0) / total for m, v in zip(df["method"], df[of], strict=True)} if total else {}


def trust_summary(data: ReportData) -> str:
    """Plain sentences on how each number was measured."""
    e = _shares(data.methods["energy_method"], "energy_kwh")
    r = _shares(data.methods["energy_method"], "requests")
    p = _shares(data.methods["pue_method"], "it_energy_kwh")
    design = data.methods["pue_method"].filter(pl.col("method") == "design_pue")
    sites = design["sites"][0] if design.height else ""
    clamped = int(data.methods["pue_method"]["clamped_hours"].sum() or 0)
    return (
        f"<li>Request energy: <b>{e.get('measured', 0):.2%}</b> measured by node meters, "
        f"{e.get('interpolated', 0):.2%} interpolated over short meter gaps, "
        f"<b>{e.get('estimated', 0):.2%}</b> estimated over long gaps (idle or nameplate power) "
        f"and {e.get('none', 0):.2%} without energy (share of attributed kWh; "
        f"{r.get('measured', 0):.2%} of requests fully measured).</li>"
        f"<li>Facility overhead (PUE): measured by a facility meter for <b>{p.get('measured', 0):.1%}</b> "
        f"of IT energy; the design PUE of the inventory for {p.get('design_pue', 0):.1%}"
        + (f" (sites {html.escape(sites)})" if sites else "") + "."
        + (f" {clamped} site-hour(s) read below IT energy and had overhead set to 0." if clamped else "") + "</li>"
        "<li>Money: energy is priced by tariff or market and trued up to the invoice; hardware by the asset register's "
        "depreciation; cloud by FOCUS EffectiveCost; every source line is reconciled to requests + idle + unattributed "
        "(section Reconciliation). Revenue is list price x tokens, not invoiced revenue.</li>")


def _checks_table(data: ReportData) -> str:
    rows = []
    for c in data.checks:
        status = ('<span class="ok">pass</span>' if c.passed else
                  '<span class="fail">FAIL</span>' if c.severity == "error" else '<span class="warn">warn</span>')
        ex = html.escape(json.dumps(c.examples[:2], default=str)) if c.examples else ""
        rows.append(f'<tr data-check="{html.escape(c.name)}" data-passed="{str(c.passed).lower()}">'
                    f'<td>{html.escape(c.name)}</td>'
                    f"<td>{c.severity}</td><td>{status}</td><td class=\"n\">{c.unexpected_count:,}</td>"
                    f"<td>{html.escape(c.description)}<br><code>{ex}</code></td></tr>")
    return ('<table id="warehouse-checks"><thead><tr><th>check</th><th>severity</th><th>status</th>'
            '<th class="n">rows</th>' f"<th>what it asserts</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")


def _expectations(expectations: pl.DataFrame | None, cur: str) -> str:
    if expectations is None:
        return ('<p class="empty" id="expectations-missing">Great Expectations results of the inputs are not '
                "attached to this report. They run as Dagster asset checks on the ingest assets "
                "(docs/data-quality.md); pass them as <code>expectations=</code> (one row per expectation: suite, "
                "name, severity, success, unexpected_count) to show them here.</p>")
    failed = expectations.filter(~pl.col("success")) if "success" in expectations.columns else expectations
    return (f"<p>{expectations.height:,} expectation(s), {failed.height:,} failed.</p>"
            + table(failed, cur, empty="every expectation passed", table_id="expectations-failed"))


WIDE = {"reconciliation", "quarantine", "capacity-utilization"}  # sections with wide tables span both columns


def _chart_sections(data: ReportData, specs: dict[str, dict]) -> str:
    out = []
    for chart_id, (_, _, title, what) in CHARTS.items():
        body = (f'<div class="chart" id="chart-{chart_id}" data-chart="{chart_id}"></div>' if chart_id in specs
                else f'<p class="empty" id="chart-{chart_id}-empty">Nothing to show in these days.</p>')
        wide = ' class="wide"' if chart_id in WIDE else ""
        out.append(f'<section id="section-{chart_id}"{wide}><h2>{html.escape(title)}</h2>'
                   f'<p class="note">{html.escape(what)}</p>'
                   f"{body}{_after_chart(chart_id, data)}</section>")
    return "".join(out)


def _after_chart(chart_id: str, data: ReportData) -> str:
    """Tables that go with a chart: the detail a reader checks numbers against."""
    f, cur = data.frames, data.currency
    if chart_id == "top-tenants":
        return table(f["top_tenants"], cur)
    if chart_id == "reconciliation":
        exc = f["reconciliation_exceptions"]
        status = ('<p class="ok" id="reconciliation-status" data-exceptions="0">'
                  "Every source line reconciles within tolerance.</p>"
                  if exc.is_empty() else
                  f'<p class="fail" id="reconciliation-status" data-exceptions="{exc.height}">'
                  f"{exc.height} source line(s) "
                  "do not reconcile (listed below, largest difference first).</p>")
        return (status + "<h3>Sources vs allocated, by component</h3>" + table(f["conservation"], cur)
                + "<h3>Source lines by family</h3>" + table(f["reconciliation_status"], cur)
                + "<h3>Exceptions: lines out of tolerance</h3>"
                + table(exc, cur, empty="none", table_id="reconciliation-exceptions")
                + "<h3>Unattributed cost lines (matched no node, request or site)</h3>"
                + table(f["unattributed"], cur, empty="none", table_id="unattributed-lines"))
    if chart_id == "capacity-utilization":
        return ("<h3>Over-provisioning cost by pool (surplus nodes x their idle energy, amortization, rent and fixed "
                "cost)</h3>" + table(f["overprovisioning_by_pool"], cur, empty="no pool", table_id="overprovisioning")
                + "<h3>Energy per output token: measured (IT, whole node) vs the performance profile at the observed "
                "batch</h3>" + table(f["efficiency_vs_profile"], cur, empty="no request", table_id="efficiency")
                + '<p class="note">Capacity source: telemetry (knee seen), telemetry_lower_bound (no miss seen: '
                "needed nodes overstated, surplus understated), profile_* (performance profile), unknown. "
                "docs/capacity.md.</p>")
    if chart_id == "energy-per-token":
        e = f["energy_per_token_by_model_pool"].select("model", "pool_id", "output_tokens", "j_per_output_token",
                                                       "energy_estimated_share", "energy_flag")
        return ('<p class="note">Flagged <b>estimated</b>: more than half of the energy behind the figure was '
                "estimated (no meter reading: idle power), not measured.</p>"
                + table(e, cur, empty="no request", table_id="energy-per-token-table"))
    if chart_id == "quarantine":
        return ("<h3>Quarantined rows by input and reason</h3>"
                + table(f["quarantine_by_reason"], cur, empty="no row quarantined")
                + "<h3>Ingest audit (read = accepted + quarantined)</h3>" + table(f["ingest_audit"], cur))
    return ""


# What to check when a node meter reads below its node's idle power, by the meter's format.
SENSOR_HINT = {
    "ipmi": "that the IPMI sensor read is the whole node's input power (`Chassis Power`, `Pwr Consumption`), not a "
            "board or single-PSU sensor such as `Sys Power`",
    "redfish": "that the Redfish sensor read is the chassis' total input power (`TotalPower`), not one PSU's",
}


def _power_below_idle(data: ReportData) -> str:
    """One line per node meter that read below IDLE_FLOOR (90%) of its node's `idle_w` on a day of the window
    (`node_power_below_idle`): the node, measured against idle_w, and what to check."""
    rows = data.frames["power_below_idle"]
    if rows.is_empty():
        return '<p class="ok" id="power-below-idle" data-nodes="0">No node meter read below its idle power.</p>'
    items = []
    for r in rows.iter_rows(named=True):  # a few meters at most, for people to read
        sensor = f"sensor `{r['sensor']}`" if r["sensor"] else "no `sensor:` (the format's default sensor was read)"
        check = SENSOR_HINT.get(r["meter_source"], "what the meter's export measures")
        items.append(
            f'<li data-node="{html.escape(r["node_id"])}" data-day="{r["day"]}">{r["day"]}: node '
            f"<b>{html.escape(r['node_id'])}</b> measured {r['median_power_w']:,.0f} W (median; lowest "
            f"{r['min_power_w']:,.0f} W, {r['samples_below']:,} of {r['samples']:,} readings below "
            f"{r['floor_w']:,.0f} W) against its idle_w of {r['idle_w']:,.0f} W. Meter "
            f"<code>{html.escape(r['meter_id'])}</code> ({html.escape(r['meter_source'])}, {html.escape(sensor)}): "
            f"check {html.escape(check)} (the meter's `sensor:` in inventory.yaml), or the node's idle_w.</li>")
    return (f'<p class="warn">power_readings.power_w.not_below_node_idle (warning): {rows.height} node meter-day(s) '
            f'read below {IDLE_FLOOR:.0%} of the node\'s idle power; its energy is in doubt.</p>'
            f'<ul id="power-below-idle" data-nodes="{rows["node_id"].n_unique()}">{"".join(items)}</ul>')


def _restated_section(data: ReportData) -> str:
    """The days this publication restated: what each showed before, what it shows now, and why."""
    restated = data.frames["restated"]
    days = sorted(set(restated["date"].to_list()))
    note = (f"{len(days)} day(s) published before changed in this publication: "
            f"{', '.join(str(d) for d in days)}. Their first figures stay in cost_by_tier_day_first_published."
            if days else "No day published before changed in this publication.")
    rows = table(restated, data.currency, empty="none", table_id="restated")
    return (f'<section id="restatements" data-days="{",".join(str(d) for d in days)}"><h2>Restated days</h2>'
            f'<p class="note">{html.escape(note)}</p>{rows}</section>')


def render(data: ReportData, *, expectations: pl.DataFrame | None = None, generated_at: datetime | None = None,
           cache_dir: Path | None = None) -> str:
    """The report page. Charts whose frame is empty are replaced by a note. The Vega bundle is kept
    in `cache_dir` (`vega_bundle`)."""
    cur = data.currency
    specs = {}
    for chart_id, (frame, build, *_rest) in CHARTS.items():
        if not data.frames[frame].is_empty():
            chart = build(data.frames[frame], cur).configure_legend(orient="bottom", columns=4, titleOrient="left")
            specs[chart_id] = chart.configure_view(stroke=None).to_dict()
    pub = data.publication
    generated_at = generated_at or datetime.now(UTC)
    bad = {"reconciliation_exceptions", "failed_checks"}
    kpis = "".join(
        f'<div class="kpi{" bad" if h.key in bad and h.value else ""}" id="kpi-{h.key}" data-key="{h.key}" '
        f'data-value="{"" if h.value is None else repr(h.value)}" data-kind="{h.kind}">'
        f'<div class="label">{html.escape(h.label)}</div><div class="value">{html.escape(show(h, cur))}</div>'
        f'<div class="hint">{html.escape(h.note)}</div></div>' for h in data.headlines)
    window = (f"{data.first_day} .. {data.day} ({data.window_days} days)" if data.window_days > 1 else f"{data.day}")
    options = {"renderer": "svg", "actions": False, "formatLocale": format_locale(cur)}
    script = f"const SPECS = {json.dumps(specs)};\nconst OPTIONS = {json.dumps(options)};\n".replace("</", "<\\/") + """
const runs = Object.entries(SPECS).map(([id, spec]) =>
  vegaEmbed("#chart-" + id, spec, OPTIONS).then(() => { \
document.getElementById("chart-" + id).dataset.rendered = 'true'; }));
Promise.allSettled(runs).then(rs => {
  rs.filter(r => r.status === 'rejected').forEach(r => console.error('chart failed:', r.reason));
  document.body.dataset.charts = rs.every(r => r.status === 'fulfilled') ? 'rendered' : 'failed';
});"""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>inferledger morning report {data.day}</title><style>{STYLE}</style></head>
<body data-day="{data.day}" data-first-day="{data.first_day}" data-currency="{html.escape(cur)}" \
data-charts="pending"><main>
<h1>Inference cost report: {data.day}</h1>
<p class="sub" id="report-days">Headline figures: <b>{data.day}</b> (UTC day). Charts and tables: <b>{window}</b>.
Money in {html.escape(cur)}.</p>
<p class="sub" id="freshness" data-published-at="{pub.published_at.isoformat()}" data-last-day="{pub.last_day}">
Data: warehouse version <code>{html.escape(pub.version)}</code>, published {pub.published_at:%Y-%m-%d %H:%M} UTC
with days {pub.first_day} .. {pub.last_day} ({pub.days}); the latest published day is {pub.last_day}
({(generated_at.date() - pub.last_day).days} day(s) before this report was generated, {generated_at:%Y-%m-%d %H:%M} UTC;
inferledger {html.escape(pub.inferledger_version)}).</p>
<div class="kpis" id="headlines">{kpis}</div>
{_restated_section(data)}
<section id="trust"><h2>How far to trust these numbers</h2><ul>{trust_summary(data)}</ul>
<div class="grid"><div><h3>Energy method of requests</h3>{table(data.methods["energy_method"], cur)}</div>
<div><h3>PUE method of site-hours</h3>{table(data.methods["pue_method"], cur)}
<h3>Design PUE of the inventory</h3>{table(data.methods["design_pue"], cur)}</div></div>
<h3>Attribution settings seen</h3>{table(data.methods["attribution"], cur)}</section>
<div class="grid">{_chart_sections(data, specs)}</div>
{plan_section(data.frames, cur, table)}
<section id="data-quality"><h2>Data quality</h2>
<h3>Node meters reading below idle power</h3>{_power_below_idle(data)}
<h3>Warehouse checks (SQL, on the published file)</h3>{_checks_table(data)}
<h3>Input expectations (Great Expectations)</h3>{_expectations(expectations, cur)}
<p class="note">Quarantined rows by reason: see "Quarantined input rows by reason" above.</p></section>
</main>
<script>// Vega, Vega-Lite {alt.VEGALITE_VERSION} and vega-embed: vl-convert's bundle
{vega_bundle(vl_convert_version(), cache_dir)}</script>
<script>{script}</script>
</body></html>
"""
