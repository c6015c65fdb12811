"""The declarations of the restatement tables (`warehouse.restatements` fills them), kept beside
`warehouse.tables`, which places them among its `TABLES` (`with_restatement_tables`, through
`warehouse.table`; the declarations are made with the class of the tables given, so this module
imports neither)."""

MONEY = "in the reporting currency"


def with_restatement_tables(tables: list) -> list:
    """`tables` with `cost_by_tier_day_first_published` after `cost_by_tier_day` and `restatements`
    after the last reconciliation table (the data dictionary lists tables in this order)."""
    first, restated = restatement_tables(next(t for t in tables if t.name == "cost_by_tier_day"))
    out = [u for t in tables for u in ([t, first] if t.name == "cost_by_tier_day" else [t])]
    last = max(i for i, t in enumerate(out) if t.group == "reconciliation")
    return [*out[:last + 1], restated, *out[last + 1:]]


def restatement_tables(cost_by_tier_day) -> list:
    """`cost_by_tier_day_first_published` (the columns of `cost_by_tier_day`, as the day was first
    published, and when) and `restatements`."""
    Table = type(cost_by_tier_day)  # noqa: N806 (warehouse.table.Table)
    return [
        Table(
            "cost_by_tier_day_first_published",
            "cost_by_tier_day as each day was first published: the figures finance saw first, kept when a "
            "late file restates the day (compare with cost_by_tier_day, and see restatements).",
            {**cost_by_tier_day.columns,
             "first_version": "Publication that first published the day.",
             "first_published_at": "When it was published, UTC."},
            cost_by_tier_day.order_by, group="marts",
        ),
        Table(
            "restatements",
            "Every change a publish made to a day already published (DOMAIN.md section 7): a late bill, meter "
            "file or request log re-attributed the day. One row per day, cost component and measure whose "
            "amount moved by a cent or more (rounded to cents) since the day's previous publish.",
            {
                "date": "UTC day restated.",
                "component": "Cost component: energy_cost, demand_cost, amortization_cost, cloud_cost, fixed_cost or "
                             "egress_cost.",
                "measure": "cost (the day's source amount of the component), to_requests, to_idle or unattributed "
                           "(where it went).",
                "amount_before": f"Amount at the day's previous publish, {MONEY}.",
                "amount_after": f"Amount in this publish, {MONEY}.",
                "difference": f"amount_after - amount_before, {MONEY}.",
                "currency": "ISO 4217 code of the amounts.",
                "caused_by": "Raw files (relative to the raw directory, '; '-separated) whose ingest changed the "
                             "day's inputs since its previous publish (from the ingest audit); when none did, says "
                             "that the method, inventory or settings changed instead.",
                "version_before": "Publication that first showed amount_before.",
                "version_after": "Publication that first showed amount_after.",
                "restated_at": "When version_after was published, UTC.",
            },
            ("date", "version_after", "component", "measure"), group="reconciliation",
        ),
    ]
