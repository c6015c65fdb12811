"""Warehouse checks: plain DuckDB SQL on a freshly built warehouse file, before it is published.

Each check is a query returning the rows that violate it (empty = pass). `publish` runs them on
the new version and swaps it in only when no error-severity check fails, so finance never
sees a warehouse that fails them; the `warehouse` asset reports each as a Dagster asset check.
"""

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb

from settings import default
from transforms.attribution.reconcile import ENERGY_RELATIVE_TOLERANCE, MONEY_TOLERANCE

MONEY = ("energy_cost", "demand_cost", "amortization_cost", "cloud_cost", "fixed_cost", "egress_cost")
PUE_BOUNDS = (1.0, 3.0)
# A fact row of the day its request completed (the connection's time zone is UTC): a request in
# flight at midnight also has a row, its cost before midnight, in the day before. Requests are
# counted (and must be unique) by these rows. The same as `CAST(completed_at AS DATE) = date` in UTC,
# as two comparisons of epoch microseconds with the day's UTC bounds (a DATE cast to TIMESTAMP and
# `epoch_us` are arithmetic): a cast of every timestamp through the time zone, or of every date to
# TIMESTAMPTZ (ICU, per row), cost 6x as much (1.9 against 0.3 CPU-s over 10 M facts).
COMPLETED_ON_DAY = ("(epoch_us(completed_at) >= epoch_us(CAST(date AS TIMESTAMP)) "
                    "AND epoch_us(completed_at) < epoch_us(CAST(date + 1 AS TIMESTAMP)))")
# `every_request_costed_once`: the ids costed twice first, then their days (naming the days of
# every id in one aggregate cost 6x). An id twice has its 64-bit `hash` twice: the sorted hashes
# equal to their predecessor (`clash`) are the candidates, and only ids with such a hash are
# grouped by their text, so a collision of two different ids is no duplicate. Sorting 8-byte
# hashes costs less than a hash aggregate keyed by every id's text (~41 bytes each on the 10 M
# bench day): 1.5 against 2.7 CPU-s over 10 M facts.
COSTED_ONCE_SQL = f"""WITH clash AS (SELECT DISTINCT h FROM (SELECT h, lag(h) OVER (ORDER BY h) AS prev FROM
                                (SELECT hash(request_id) AS h FROM request_costs WHERE {COMPLETED_ON_DAY}))
                              WHERE h = prev),
                    twice AS (SELECT request_id FROM request_costs
                              WHERE {COMPLETED_ON_DAY} AND hash(request_id) IN (SELECT h FROM clash)
                              GROUP BY request_id HAVING count(*) > 1)
               SELECT max(date) AS date, request_id, count(*) AS times, NULL AS accepted,
                      string_agg(CAST(date AS VARCHAR), ', ' ORDER BY date) AS days
               FROM request_costs WHERE request_id IN (SELECT request_id FROM twice) AND {COMPLETED_ON_DAY}
               GROUP BY request_id
               UNION ALL
               SELECT coalesce(f.date, a.date), NULL, f.n, a.n, NULL
               FROM (SELECT date, count(*) AS n FROM request_costs WHERE {COMPLETED_ON_DAY} GROUP BY date) f
               FULL JOIN (SELECT date, sum(rows_accepted) AS n FROM ingest_audit WHERE dataset = 'requests'
                          GROUP BY date) a ON f.date = a.date
               WHERE f.n IS DISTINCT FROM a.n
               ORDER BY 1, 2"""


@dataclass(frozen=True)
class WarehouseCheck:
    name: str
    description: str
    sql: str
    severity: str = "error"  # "error" blocks the publish; "warning" is reported


@dataclass
class CheckOutcome:
    name: str
    severity: str
    passed: bool
    unexpected_count: int
    examples: list[dict] = field(default_factory=list)
    description: str = ""


def _component_sources_sql() -> str:
    parts = []
    for c in MONEY:
        idle = "0" if c == "egress_cost" else (f"(SELECT coalesce(sum(idle_{c}), 0) FROM idle_by_pool_day i "
                                               "WHERE i.date = s.date)")
        parts.append(f"""
            SELECT s.date, '{c}' AS component, s.source_amount,
                (SELECT coalesce(sum({c}), 0) FROM cost_by_tier_day t WHERE t.date = s.date)
                + {idle}
                + (SELECT coalesce(sum(amount), 0) FROM unattributed_costs u
                   WHERE u.date = s.date AND u.component = '{c}'
                     AND u.currency = s.unit)  -- no_fx_rate lines are in another currency
                AS in_marts
            FROM conservation_by_component s WHERE s.component = '{c}'""")
    return " UNION ALL ".join(parts)


def checks(max_age_days: int = default("max_age_days"), today: date | None = None) -> list[WarehouseCheck]:
    today = today or datetime.now(UTC).date()
    oldest = today - timedelta(days=max_age_days)
    money_sum = " + ".join(f"sum({c})" for c in MONEY)
    lo, hi = PUE_BOUNDS
    return [
        WarehouseCheck(
            "reconciliation_per_source_line",
            f"Every source line: requests + idle + unattributed = its amount (to {MONEY_TOLERANCE} money, "
            f"{ENERGY_RELATIVE_TOLERANCE:g} relative for energy).",
            "SELECT date, source, line_id, component, source_amount, difference FROM reconciliation "
            "WHERE NOT within_tolerance ORDER BY abs(difference) DESC"),
        WarehouseCheck(
            "marts_equal_sources",
            "Per day and cost component: the tier marts + idle by pool + unattributed = the sources' total, to the "
            "cent (in the reporting currency: lines left in their own, `no_fx_rate`, are in neither).",
            f"SELECT date, component, source_amount, in_marts, in_marts - source_amount AS difference "
            f"FROM ({_component_sources_sql()}) WHERE abs(in_marts - source_amount) > {MONEY_TOLERANCE} "
            f"ORDER BY date, component"),
        WarehouseCheck(
            "marts_equal_request_facts",
            "Per day: requests, direct and fully loaded cost of the tier marts = the sums over request_costs "
            "(the attributed Parquet).",
            f"""WITH f AS (SELECT date, count(*) FILTER (WHERE {COMPLETED_ON_DAY}) AS requests,
                                  sum(direct_cost) AS direct_cost,
                                  sum(fully_loaded_cost) AS fully_loaded_cost, {money_sum} AS parts
                           FROM request_costs GROUP BY date),
                     m AS (SELECT date, sum(requests) AS requests, sum(direct_cost) AS direct_cost,
                                  sum(fully_loaded_cost) AS fully_loaded_cost FROM cost_by_tier_day GROUP BY date)
                SELECT coalesce(f.date, m.date) AS date, f.requests AS in_facts, m.requests AS in_marts,
                       f.fully_loaded_cost AS facts_fully_loaded, m.fully_loaded_cost AS marts_fully_loaded
                FROM f FULL JOIN m ON f.date = m.date
                WHERE f.requests IS DISTINCT FROM m.requests
                   OR abs(f.direct_cost - m.direct_cost) > {MONEY_TOLERANCE}
                   OR abs(f.fully_loaded_cost - m.fully_loaded_cost) > {MONEY_TOLERANCE}
                   OR abs(f.parts - f.direct_cost) > {MONEY_TOLERANCE}
                ORDER BY 1"""),
        WarehouseCheck(
            "every_request_costed_once",
            "No request id costed twice, on one day or on two (a request is costed on the day it completes: the same "
            "id in two days' logs is billed twice; `days` names them): remove the copy from the later day's raw "
            "request logs, or have the exporter issue unique ids, then re-run that day and publish. And as many facts "
            "as requests the ingest accepted each day.",
            COSTED_ONCE_SQL),
        WarehouseCheck(
            "no_negative_costs",
            "No negative amortization, cloud, fixed, egress, idle or fully loaded cost in any mart row.",
            "SELECT 'cost_by_tier_day' AS mart, date, tier AS key, least(amortization_cost, cloud_cost, fixed_cost, "
            "egress_cost, idle_cost, fully_loaded_cost) AS lowest FROM cost_by_tier_day "
            "WHERE least(amortization_cost, cloud_cost, fixed_cost, egress_cost, idle_cost, fully_loaded_cost) < -1e-9 "
            "UNION ALL SELECT 'idle_by_pool_day', date, pool_id, "
            "least(idle_amortization_cost, idle_cloud_cost, idle_fixed_cost) FROM idle_by_pool_day "
            "WHERE least(idle_amortization_cost, idle_cloud_cost, idle_fixed_cost) < -1e-9 ORDER BY 1, 2, 3"),
        WarehouseCheck(
            "negative_energy_cost",
            "Energy cost below zero (possible with negative market prices; worth a look).",
            "SELECT date, tier, energy_cost FROM cost_by_tier_day WHERE energy_cost < -1e-9 ORDER BY date, tier",
            severity="warning"),
        WarehouseCheck(
            "surplus_within_pool_cost",
            "Per pool and hour, each component of the over-provisioning (surplus) cost is at most the pool's cost of "
            "that component (capacity_by_pool_hour; docs/capacity.md).",
            "SELECT date, hour, pool_id, surplus_energy_cost, pool_energy_cost, surplus_amortization_cost, "
            "pool_amortization_cost FROM capacity_by_pool_hour WHERE "
            + " OR ".join(f"surplus_{c}_cost > pool_{c}_cost + {MONEY_TOLERANCE}"
                          for c in ("energy", "amortization", "cloud", "fixed")) + " ORDER BY date, pool_id, hour"),
        WarehouseCheck(
            "pue_within_bounds", f"Hourly PUE of every site within [{lo}, {hi}].",
            f"SELECT site_id, hour, pue, pue_method FROM site_energy_hour "
            f"WHERE pue < {lo} OR pue > {hi} OR pue IS NULL ORDER BY site_id, hour"),
        WarehouseCheck(
            "freshness",
            f"The latest published day is no older than {max_age_days} days (on {today}).",
            f"SELECT max(date) AS last_day, DATE '{oldest.isoformat()}' AS oldest_allowed FROM cost_by_tier_day "
            f"HAVING max(date) < DATE '{oldest.isoformat()}'",
            severity="warning"),
    ]


EXAMPLES = 5  # violating rows an outcome keeps

# The outcomes of the checks the last publish of this process ran on the version it swapped in,
# by check (name and SQL), for that warehouse file and version: the report that follows the
# publish in the same run shows them instead of running the same SQL on the same data again
# (1.5 s of the report's 1.7 s at 10 M requests). A check whose SQL differs (the freshness check
# names the day it runs on), another version or another process runs it.
_PUBLISHED: dict[tuple[str, str], dict[tuple[str, str], CheckOutcome]] = {}


def remember_published(path: Path | str, version: str, which: list[WarehouseCheck],
                       outcomes: list[CheckOutcome]) -> None:
    _PUBLISHED.clear()
    _PUBLISHED[(str(Path(path).resolve()), version)] = {(c.name, c.sql): o
                                                         for c, o in zip(which, outcomes, strict=True)}


def published_outcomes(path: Path | str, version: str) -> dict[tuple[str, str], CheckOutcome]:
    """What `remember_published` kept for this warehouse file and version (empty otherwise)."""
    return dict(_PUBLISHED.get((str(Path(path).resolve()), version), {}))


def run_checks(con: duckdb.DuckDBPyConnection, which: list[WarehouseCheck] | None = None,
               examples: int = EXAMPLES, *,
               known: dict[tuple[str, str], CheckOutcome] | None = None) -> list[CheckOutcome]:
    """Run each check on `con` (the warehouse's catalog in use); returns one outcome per check.
    An outcome in `known` for the same check name and SQL is taken instead of running it."""
    out = []
    for c in which or checks():
        if known and examples == EXAMPLES and (c.name, c.sql) in known:  # kept with EXAMPLES examples
            out.append(known[(c.name, c.sql)])
            continue
        rel = con.sql(c.sql)
        cols = rel.columns
        rows = rel.fetchall()
        out.append(CheckOutcome(c.name, c.severity, not rows, len(rows),
                                [{k: (v.isoformat() if hasattr(v, "isoformat") else v)
                                  for k, v in zip(cols, r, strict=True)} for r in rows[:examples]], c.description))
    return out


def failures(outcomes: list[CheckOutcome], severity: str = "error") -> list[CheckOutcome]:
    return [o for o in outcomes if not o.passed and o.severity == severity]


def describe(outcomes: list[CheckOutcome]) -> str:
    lines = []
    for o in outcomes:
        mark = "ok  " if o.passed else ("FAIL" if o.severity == "error" else "warn")
        lines.append(f"  {mark} {o.name}: {o.unexpected_count} row(s)"
                     + (f", e.g. {o.examples[:2]}" if o.examples else ""))
    return "\n".join(lines)


__all__ = ["CheckOutcome", "WarehouseCheck", "checks", "describe", "failures", "published_outcomes",
           "remember_published", "run_checks"]
