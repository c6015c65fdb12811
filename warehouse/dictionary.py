"""docs/data-dictionary.md, generated from the comments stored in a published warehouse.

    python -m warehouse.dictionary [WAREHOUSE_FILE]     # rewrites docs/data-dictionary.md

The comments come from `warehouse.tables` through `COMMENT ON`; reading them back from the
file (not from the declarations) is what proves the warehouse documents itself.
`tests/test_warehouse.py` regenerates the page from the demo warehouse and compares.
"""

import sys
from pathlib import Path

import duckdb

from warehouse.tables import TABLES

DOC = Path(__file__).resolve().parent.parent / "docs" / "data-dictionary.md"
GROUPS = {"detail": "Request detail", "marts": "Cost marts", "reconciliation": "Reconciliation",
          "quality": "Data quality", "dimensions": "Dimensions", "planning": "Planning", "about": "About the file"}

HEADER = """# Data dictionary

The warehouse finance queries (`inferledger sql`, or any DuckDB client opening
`data/warehouse/inferledger.duckdb` read-only). Generated from the comments stored in the
warehouse itself (`COMMENT ON`; in SQL: `SELECT * FROM duckdb_columns()`) by
`python -m warehouse.dictionary`; a test keeps this page equal to the file.

Money is in the reporting currency named by each row's `currency` column; energy in kWh
(joules where the column says so); times are UTC; tokens are integers. Daily tables have one
partition per attributed day (`date`); publishing replaces the whole file atomically
(docs/warehouse.md).
"""


def _cell(s: str | None) -> str:
    return (s or "").replace("|", "\\|").replace("\n", " ")


def render(con: duckdb.DuckDBPyConnection) -> str:
    objects = {r[0]: (r[1], r[2]) for r in con.sql("""
        SELECT table_name, 'table', comment FROM duckdb_tables()
        WHERE database_name = current_database() AND NOT internal
        UNION ALL
        SELECT view_name, 'view', comment FROM duckdb_views() WHERE database_name = current_database() AND NOT internal
    """).fetchall()}
    columns: dict[str, list[tuple[str, str, str]]] = {}
    for table, col, dtype, comment in con.sql("""
            SELECT table_name, column_name, data_type, comment FROM duckdb_columns()
            WHERE database_name = current_database() AND NOT internal ORDER BY table_name, column_index""").fetchall():
        columns.setdefault(table, []).append((col, dtype, comment))
    out = [HEADER]
    order = [t.name for t in TABLES] + sorted(set(objects) - {t.name for t in TABLES})
    group_of = {t.name: t.group for t in TABLES}
    out.append("| table | kind | what it holds |\n|---|---|---|")
    for name in order:
        if name in objects:
            out.append(f"| [`{name}`](#{name}) | {objects[name][0]} | {_cell(objects[name][1])} |")
    out.append("")
    current_group = None
    for name in order:
        if name not in objects:
            continue
        group = GROUPS.get(group_of.get(name, ""), "Other")
        if group != current_group:
            out.append(f"## {group}\n")
            current_group = group
        kind, comment = objects[name]
        out.append(f"### {name}\n\n{_cell(comment)} ({kind})\n")
        out.append("| column | type | meaning and unit |\n|---|---|---|")
        out.extend(f"| `{c}` | {t} | {_cell(m)} |" for c, t, m in columns.get(name, []))
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def render_file(path: Path | str) -> str:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return render(con)
    finally:
        con.close()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else Path("data/warehouse/inferledger.duckdb")
    if not path.exists():
        print(f"{path}: no warehouse; run `make demo` first", file=sys.stderr)
        return 1
    DOC.write_text(render_file(path))
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
