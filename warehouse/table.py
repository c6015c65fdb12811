"""What declaring a warehouse table means (`warehouse.tables` declares them all): its name and
meaning, the meaning and unit of every column, how its rows are ordered, and how it is built.
"""

from dataclasses import dataclass, field

from warehouse.capacity_tables import with_capacity_tables
from warehouse.plan_tables import with_plan_tables
from warehouse.restatement_tables import with_restatement_tables


@dataclass(frozen=True)
class Table:
    name: str
    description: str
    columns: dict[str, str]
    order_by: tuple[str, ...] = ()
    kind: str = "table"  # "table" or "view"
    daily: bool = False  # built per day into the lake (`<lake>/marts/<name>/date=D/`), then published
    group: str = "marts"  # marts, detail, quality, dimensions, about
    extra: dict = field(default_factory=dict)


def commented(columns, comments: dict[str, str]) -> dict[str, str]:
    """`comments` in the order of `columns` (a schema declared elsewhere): every column has one, and
    no comment is of a column that does not exist."""
    missing, extra = [c for c in columns if c not in comments], [c for c in comments if c not in columns]
    if missing or extra:
        raise ValueError(f"warehouse/tables.py: comments missing for column(s) {missing}, or for column(s) that do "
                         f"not exist {extra}; write one per column of the declared schema")
    return {c: comments[c] for c in columns}


def energy_shares(of: str) -> dict[str, str]:
    """The comments of the three energy method shares of a row's energy `of`
    (`warehouse.mart_sql._energy_shares`): by the method of the node-slot IT readings the energy
    comes from (overhead follows its node-slot's IT energy)."""
    return {
        "energy_measured_share": f"Share of {of} read from meters (counter or gauge), 0-1; the three shares sum to 1 "
                                 "(null without energy).",
        "energy_interpolated_share": f"Share of {of} interpolated over short meter gaps, 0-1.",
        "energy_estimated_share": f"Share of {of} estimated (long gaps or no meter: idle power), 0-1; above 0.5 the "
                                  "report flags the row's energy figures as estimated.",
    }


__all__ = ["Table", "commented", "energy_shares", "with_capacity_tables", "with_plan_tables", "with_restatement_tables"]
