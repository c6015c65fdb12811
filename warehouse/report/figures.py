"""What the morning report shows, read from the published warehouse: headline figures, the
frames behind each chart, and the provenance a reader needs to judge them.

Every number is a plain query of the marts (docs/data-dictionary.md) over a window of days
ending on the report day; nothing here recomputes the attribution.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import duckdb
import polars as pl

from transforms.attribution.prices import J_PER_KWH
from warehouse.checks import CheckOutcome, published_outcomes, run_checks
from warehouse.report.plan_section import read_plan_frames


class ReportError(ValueError):
    """The report cannot be built for the day asked (not published, or an empty warehouse)."""


@dataclass(frozen=True)
class Headline:
    """One figure at the top of the report; `value` is the raw number (currency units, kWh,
    a 0-1 share ...), `kind` how to show it: money, money_small, count, share, number."""

    key: str
    label: str
    value: float | int | None
    kind: str
    note: str = ""


@dataclass
class Publication:
    version: str
    published_at: datetime
    first_day: date
    last_day: date
    days: int
    inferledger_version: str


@dataclass
class ReportData:
    day: date
    first_day: date  # of the window (day - days + 1, or the first published day)
    currency: str
    publication: Publication
    headlines: list[Headline]
    frames: dict[str, pl.DataFrame]
    checks: list[CheckOutcome]
    methods: dict[str, pl.DataFrame]

    @property
    def window_days(self) -> int:
        return (self.day - self.first_day).days + 1


def _frame(con: duckdb.DuckDBPyConnection, sql: str, lo: date, hi: date) -> pl.DataFrame:
    """`sql` with `$lo` and `$hi` bound to the window's first and last day; DuckDB's HUGEINT
    sums (Decimal or Int128 in Polars) as Int64, so the charts' JSON holds plain numbers."""
    return _plain(con.sql(sql, params={"lo": lo, "hi": hi}).pl())


def _plain(df: pl.DataFrame) -> pl.DataFrame:
    wide = [c for c, t in df.schema.items() if isinstance(t, pl.Decimal | pl.Int128)]
    return df.with_columns(pl.col(c).cast(pl.Float64 if getattr(df.schema[c], "scale", 0) else pl.Int64) for c in wide)


def _publication(con: duckdb.DuckDBPyConnection, path: str) -> Publication:
    rows = con.sql("SELECT version, published_at, first_day, last_day, days, inferledger_version "
                   "FROM publication").fetchall()
    if not rows or rows[0][3] is None:
        raise ReportError(f"{path}: the warehouse has no published day; run `inferledger publish` first")
    return Publication(*rows[0])


def published_days(con: duckdb.DuckDBPyConnection) -> list[date]:
    return [r[0] for r in con.sql("SELECT DISTINCT date FROM cost_by_tier_day ORDER BY 1").fetchall()]


def _headlines(con: duckdb.DuckDBPyConnection, day: date, checks: list[CheckOutcome]) -> list[Headline]:
    """The report day's figures, each one query of one mart."""
    p = {"d": day}
    (req, tokens, out_tokens, direct, loaded, revenue, margin, req_kwh) = con.sql(
        """SELECT sum(requests), sum(input_tokens + output_tokens), sum(output_tokens), sum(direct_cost),
                  sum(fully_loaded_cost), sum(revenue), sum(gross_margin), sum(energy_kwh)
           FROM cost_by_tier_day WHERE date = $d""", params=p).fetchall()[0]
    slot_cost, idle_cost = con.sql(
        "SELECT sum(slot_cost), sum(idle_cost) FROM idle_by_pool_hour WHERE date = $d", params=p).fetchall()[0]
    facility_kwh, it_kwh = con.sql(
        "SELECT sum(facility_energy_kwh), sum(it_energy_kwh) FROM site_energy_hour WHERE date = $d",
        params=p).fetchall()[0]
    exceptions, unattributed = con.sql(
        """SELECT (SELECT count(*) FROM reconciliation WHERE date = $d AND NOT within_tolerance),
                  (SELECT coalesce(sum(amount), 0) FROM unattributed_costs WHERE date = $d)""", params=p).fetchall()[0]
    (quarantined,) = con.sql("SELECT coalesce(sum(rows), 0) FROM quarantine_summary WHERE date = $d",
                             params=p).fetchall()[0]
    surplus, pool_cost, unknown = con.sql(
        "SELECT sum(surplus_cost), sum(pool_cost) FILTER (WHERE surplus_cost IS NOT NULL), "
        "count(*) FILTER (WHERE capacity_unknown_hours > 0) FROM overprovisioning_by_pool_day WHERE date = $d",
        params=p).fetchall()[0]
    surplus_share_text = (f"{surplus / pool_cost:.1%} of those pools' cost" if surplus is not None and pool_cost
                          else "no pool with a known capacity") + (f"; {unknown} pool(s) of unknown capacity"
                                                                   if unknown else "")

    def ratio(a, b, scale=1.0):
        return None if a is None or not b else a / b * scale

    failed = [c for c in checks if not c.passed and c.severity == "error"]
    warned = [c for c in checks if not c.passed and c.severity != "error"]
    return [
        Headline("requests", "Requests, whole day", req, "count", "all statuses"),
        Headline("fully_loaded_cost", "Fully loaded cost, whole day", loaded, "money",
                 "all requests of the day: direct + idle share"),
        Headline("cost_per_query", "Fully loaded cost per query", ratio(loaded, req), "money_small",
                 "the day's fully loaded cost / its requests"),
        Headline("cost_per_m_tokens", "Fully loaded cost per M tokens", ratio(loaded, tokens, 1e6), "money",
                 "per million input + output tokens"),
        Headline("direct_cost", "Direct cost, whole day", direct, "money",
                 "all requests of the day: energy, hardware, cloud, fixed, egress"),
        Headline("revenue", "Revenue, whole day", revenue, "money", "list price x tokens of ok requests"),
        Headline("gross_margin", "Gross margin, whole day", margin, "money", "revenue - fully loaded cost"),
        Headline("gross_margin_pct", "Gross margin %", ratio(margin, revenue), "share", "of revenue"),
        Headline("idle_cost_share", "No-request (idle) cost share", ratio(idle_cost, slot_cost), "share",
                 "capacity cost in node-slots with no request running (not the surplus: see Capacity)"),
        Headline("surplus_cost", "Over-provisioning cost, whole day", surplus, "money",
                 f"surplus nodes beyond those the load needed; {surplus_share_text}"),
        Headline("pue", "PUE", ratio(facility_kwh, it_kwh), "number", "facility / IT energy, all sites"),
        Headline("facility_energy_kwh", "Facility energy, whole day", facility_kwh, "kwh", "IT + overhead, all sites"),
        Headline("j_per_output_token", "Energy per output token", ratio(req_kwh, out_tokens, J_PER_KWH), "joules",
                 "IT + overhead attributed to requests"),
        Headline("reconciliation_exceptions", "Reconciliation exceptions", exceptions, "count",
                 f"source lines out of tolerance; {unattributed:,.2f} unattributed"),
        Headline("quarantined_rows", "Quarantined rows", quarantined, "count", "input records set aside"),
        Headline("failed_checks", "Failed warehouse checks", len(failed), "count",
                 ", ".join(c.name for c in failed) or ("all passed" if not warned else
                                                       "warnings: " + ", ".join(c.name for c in warned))),
    ]


# The frames behind the charts and tables, over the window [$lo, $hi].
QUERIES = {
    "cost_per_m_tokens_by_tier": """
        SELECT strftime(date, '%Y-%m-%d') AS day, tier, fully_loaded_cost_per_m_tokens AS cost_per_m_tokens,
               input_tokens + output_tokens AS tokens, fully_loaded_cost
        FROM cost_by_tier_day WHERE date BETWEEN $lo AND $hi ORDER BY date, tier""",
    "cost_per_m_tokens_by_pool": """
        SELECT strftime(date, '%Y-%m-%d') AS day, pool_id, sum(input_tokens + output_tokens) AS tokens,
               sum(fully_loaded_cost) AS fully_loaded_cost,
               sum(fully_loaded_cost) / nullif(sum(input_tokens + output_tokens), 0) * 1e6 AS cost_per_m_tokens
        FROM cost_by_model_pool_day WHERE date BETWEEN $lo AND $hi GROUP BY date, pool_id ORDER BY date, pool_id""",
    "cost_per_query_by_tier": """
        SELECT tier, sum(requests) AS requests,
               sum(direct_cost) / sum(requests) AS "direct",
               sum(fully_loaded_cost) / sum(requests) AS "fully loaded"
        FROM cost_by_tier_day WHERE date BETWEEN $lo AND $hi GROUP BY tier ORDER BY tier""",
    "idle_share_by_pool_hour": """
        SELECT strftime(hour, '%Y-%m-%dT%H:%M:%SZ') AS hour, pool_id, idle_cost_share, idle_slot_share, idle_cost,
               slot_cost
        FROM idle_by_pool_hour WHERE date BETWEEN $lo AND $hi ORDER BY hour, pool_id""",
    "energy_per_token_by_model_pool": """
        SELECT model, pool_id, sum(output_tokens) AS output_tokens,
               sum(energy_kwh) * 3.6e6 / nullif(sum(output_tokens), 0) AS j_per_output_token,
               sum(it_energy_kwh) * 3.6e6 / nullif(sum(output_tokens), 0) AS it_j_per_output_token,
               sum(energy_estimated_share * energy_kwh) / nullif(sum(energy_kwh), 0) AS energy_estimated_share,
               CASE WHEN sum(energy_estimated_share * energy_kwh) / nullif(sum(energy_kwh), 0) > 0.5
                    THEN 'estimated' ELSE '' END AS energy_flag
        FROM cost_by_model_pool_day WHERE date BETWEEN $lo AND $hi GROUP BY model, pool_id ORDER BY model, pool_id""",
    "utilization_by_pool_hour": """
        SELECT strftime(hour, '%Y-%m-%dT%H:%M:%SZ') AS hour, pool_id, utilization, capacity_source,
               demand_output_tokens_per_s, capacity_output_tokens_per_s_per_node, nodes_powered, nodes_needed,
               surplus_nodes, surplus_cost
        FROM capacity_by_pool_hour WHERE date BETWEEN $lo AND $hi ORDER BY hour, pool_id""",
    "overprovisioning_by_pool": """
        SELECT o.pool_id, string_agg(DISTINCT o.capacity_source, ', ' ORDER BY o.capacity_source) AS capacity_source,
               sum(o.node_hours_powered) AS node_hours_powered, sum(o.node_hours_needed) AS node_hours_needed,
               sum(o.surplus_node_hours) AS surplus_node_hours, sum(o.surplus_cost) AS surplus_cost,
               sum(o.pool_cost) AS pool_cost, sum(o.surplus_cost) / nullif(sum(o.pool_cost), 0) AS surplus_cost_share,
               sum(i.idle_cost) AS no_request_idle_cost, sum(o.capacity_unknown_hours)::BIGINT AS unknown_hours
        FROM overprovisioning_by_pool_day o
        LEFT JOIN idle_by_pool_day i ON i.date = o.date AND i.pool_id = o.pool_id
        WHERE o.date BETWEEN $lo AND $hi GROUP BY o.pool_id ORDER BY surplus_cost DESC NULLS LAST, o.pool_id""",
    "efficiency_vs_profile": """
        SELECT model, pool_id, sum(output_tokens)::BIGINT AS output_tokens,
               sum(observed_batch * output_tokens) / nullif(sum(output_tokens), 0) AS observed_batch,
               sum(measured_it_j_per_output_token * output_tokens) / nullif(sum(output_tokens), 0) AS measured_j,
               sum(profile_j_per_output_token * output_tokens) / nullif(sum(output_tokens), 0) AS profile_j,
               string_agg(DISTINCT profile_source || ' (' || profile_point || ')', ', ') AS profile
        FROM efficiency_by_model_pool_day WHERE date BETWEEN $lo AND $hi GROUP BY model, pool_id
        ORDER BY model, pool_id""",
    "pue_by_site_hour": """
        SELECT strftime(hour, '%Y-%m-%dT%H:%M:%SZ') AS hour, site_id, pue, pue_method, it_energy_kwh,
               facility_energy_kwh
        FROM site_energy_hour WHERE date BETWEEN $lo AND $hi ORDER BY site_id, hour""",
    "margin_by_tier": """
        SELECT tier, sum(revenue) AS revenue, sum(fully_loaded_cost) AS "fully loaded cost",
               sum(gross_margin) AS "gross margin", sum(gross_margin) / nullif(sum(revenue), 0) AS gross_margin_pct
        FROM cost_by_tier_day WHERE date BETWEEN $lo AND $hi GROUP BY tier ORDER BY tier""",
    "top_tenants": """
        SELECT tenant_id, string_agg(DISTINCT tier, ', ' ORDER BY tier) AS tiers, sum(requests) AS requests,
               sum(direct_cost) AS "direct", sum(idle_cost) AS "idle", sum(fully_loaded_cost) AS fully_loaded_cost,
               sum(revenue) AS revenue
        FROM cost_by_tenant_day WHERE date BETWEEN $lo AND $hi GROUP BY tenant_id
        ORDER BY fully_loaded_cost DESC, tenant_id LIMIT 10""",
    "conservation": """
        SELECT component, unit, sum(source_amount) AS source_amount, sum(to_requests) AS "to requests",
               sum(to_idle) AS "to idle", sum(unattributed) AS "unattributed",
               sum(source_amount) - sum(to_requests) - sum(to_idle) - sum(unattributed) AS difference
        FROM conservation_by_component WHERE date BETWEEN $lo AND $hi GROUP BY component, unit
        ORDER BY unit, component""",
    "reconciliation_exceptions": """
        SELECT strftime(date, '%Y-%m-%d') AS day, source, line_id, component, unit, source_amount, to_requests, to_idle,
               unattributed, difference
        FROM reconciliation WHERE date BETWEEN $lo AND $hi AND NOT within_tolerance
        ORDER BY abs(difference) DESC LIMIT 50""",
    "reconciliation_status": """
        SELECT source, count(*) AS lines, count(*) FILTER (WHERE within_tolerance) AS within_tolerance,
               count(*) FILTER (WHERE NOT within_tolerance) AS exceptions
        FROM reconciliation WHERE date BETWEEN $lo AND $hi GROUP BY source ORDER BY source""",
    "unattributed": """
        SELECT strftime(date, '%Y-%m-%d') AS day, source, line_id, component, amount, reason, service_name
        FROM unattributed_costs WHERE date BETWEEN $lo AND $hi ORDER BY amount DESC LIMIT 50""",
    "quarantine_by_reason": """
        SELECT dataset, reason, sum(rows) AS rows, min(example_file || ':' || example_row) AS example
        FROM quarantine_summary WHERE date BETWEEN $lo AND $hi GROUP BY dataset, reason
        ORDER BY rows DESC, dataset, reason""",
    "ingest_audit": """
        SELECT dataset, sum(rows_read)::BIGINT AS rows_read, sum(rows_accepted)::BIGINT AS rows_accepted,
               sum(rows_quarantined)::BIGINT AS rows_quarantined
        FROM ingest_audit WHERE date BETWEEN $lo AND $hi GROUP BY dataset ORDER BY dataset""",
    "power_below_idle": """
        SELECT strftime(date, '%Y-%m-%d') AS day, node_id, meter_id, meter_source, sensor, median_power_w, min_power_w,
               idle_w, floor_w, samples_below, samples
        FROM node_power_below_idle WHERE date BETWEEN $lo AND $hi ORDER BY date DESC, node_id, meter_id""",
}

# How each number was measured, over the window: a reader's measure of trust. Requests are counted on
# their completion day (a request in flight at midnight has a fact row in each day it touches); the
# facts were counted and summed once per day by the marts (requests_by_method_day), not read here.
METHODS = {
    "energy_method": """
        SELECT energy_method AS method, sum(requests) AS requests, sum(energy_kwh) AS energy_kwh,
               sum(fully_loaded_cost) AS fully_loaded_cost
        FROM requests_by_method_day WHERE date BETWEEN $lo AND $hi GROUP BY 1 ORDER BY requests DESC""",
    "pue_method": """
        SELECT s.pue_method AS method, string_agg(DISTINCT s.site_id, ', ' ORDER BY s.site_id) AS sites,
               count(*) AS site_hours, sum(s.it_energy_kwh) AS it_energy_kwh,
               sum(s.facility_energy_kwh) AS facility_energy_kwh,
               count(*) FILTER (WHERE s.overhead_clamped) AS clamped_hours
        FROM site_energy_hour s WHERE s.date BETWEEN $lo AND $hi GROUP BY 1 ORDER BY site_hours DESC""",
    "attribution": """
        SELECT weight, idle_policy, sum(requests) AS requests
        FROM requests_by_method_day WHERE date BETWEEN $lo AND $hi GROUP BY ALL ORDER BY requests DESC""",
}


DESIGN_PUE = "SELECT site_id, kind, cooling, design_pue FROM dim_sites ORDER BY site_id"
# The days this publication changed after they were first published (warehouse.restatements).
RESTATED = """
    SELECT date, component, measure, amount_before, amount_after, difference, currency, caused_by, version_before
    FROM restatements WHERE version_after = (SELECT version FROM publication) ORDER BY date, component, measure"""


def read_report_data(con: duckdb.DuckDBPyConnection, day: date | None = None, days: int = 7, *,
                     path: str = "the warehouse") -> ReportData:
    """Everything the report shows for the `days` days ending on `day` (default: the last
    published day). Raises ReportError naming the published days when `day` is not one."""
    if days < 1:
        raise ReportError(f"--days {days}: the report covers at least one day")
    pub = _publication(con, path)
    published = published_days(con)
    day = day or pub.last_day
    if day not in published:
        raise ReportError(f"{path}: {day} is not a published day (published: {pub.first_day} .. {pub.last_day}, "
                          f"{len(published)} day(s)); pick one of them with --date, "
                          f"or attribute and publish {day} first")
    first = max(day - timedelta(days=days - 1), published[0])
    (currency,) = con.sql("SELECT min(currency) FROM cost_by_tier_day WHERE date = $d", params={"d": day}).fetchall()[0]
    outcomes = run_checks(con, known=published_outcomes(path, pub.version))  # those the publish just ran
    return ReportData(
        day=day, first_day=first, currency=currency, publication=pub,
        headlines=_headlines(con, day, outcomes),
        frames={**{name: _frame(con, sql, first, day) for name, sql in QUERIES.items()},
                "restated": _plain(con.sql(RESTATED).pl()), **read_plan_frames(con)},
        checks=outcomes,
        methods={**{name: _frame(con, sql, first, day) for name, sql in METHODS.items()},
                 "design_pue": _plain(con.sql(DESIGN_PUE).pl())},
    )
