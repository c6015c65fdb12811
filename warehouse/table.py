"""What declaring a warehouse table means (`warehouse.tables` declares them all): its name and
meaning, the meaning and unit of every column, how its rows are ordered, and how it is built.
"""

from dataclasses import dataclass, field


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
