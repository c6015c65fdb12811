"""Generated parts of docs/data-contracts.md: every dataset the lake holds (columns, key, where it
lives) and the quarantine reasons.

`python -m lake.docs` (`make docs`) rewrites the text between the GENERATED markers; a test
fails when the file and the declarations (`transforms.contracts`, `transforms.ingest.common`)
disagree.
"""

import re
import sys
from pathlib import Path

import polars as pl

from lake.files import write_text
from transforms.contracts import ALL_CONTRACTS, UTC_US
from transforms.ingest.canonical import MAY_OMIT
from transforms.ingest.common import REASONS

DOC = Path(__file__).resolve().parent.parent / "docs" / "data-contracts.md"
BEGIN, END = "<!-- BEGIN GENERATED: python -m lake.docs -->", "<!-- END GENERATED -->"


def _type_name(dtype: pl.DataType) -> str:
    if dtype == UTC_US:
        return "timestamp[us, UTC]"
    return {pl.String: "string", pl.Float64: "float64", pl.Int64: "int64", pl.Int32: "int32",
            pl.Int16: "int16", pl.Boolean: "bool", pl.Date: "date"}.get(dtype, str(dtype))


def generated_markdown() -> str:
    out = []
    for c in ALL_CONTRACTS.values():
        parts = "/".join(p + "=" for p in c.partition_by)  # `lake.store.Lake.partition_dir`'s layout
        order = "Rows in the raw files' order (file, then line). " if c.order is None else "Rows sorted by the key. "
        out += [f"### `{c.name}`", "", c.description, "",
                f"Key: `{', '.join(c.key)}`. {order}Lake path: `<lake>/{c.name}/{parts}/`.", "",
                "| column | type | unit | nullable | meaning |", "|---|---|---|---|---|"]
        out += [f"| `{col.name}` | {_type_name(col.dtype)} | {col.unit} | {'yes' if col.nullable else 'no'} | "
                f"{col.description} |" for col in c.columns]
        out.append("")
        if c.name in MAY_OMIT:
            omitted = "; ".join(f"`{k}` ({v})" for k, v in MAY_OMIT[c.name].items())
            out += [f"A canonical `{c.name}` file may leave out the nullable columns and: {omitted}. Every other "
                    "column must be in each file's header: a file without one has every row quarantined as "
                    "`missing_required_field`, naming the column and the file.", ""]
    out += ["### Quarantine reasons", "", "| reason | meaning |", "|---|---|"]
    out += [f"| `{k}` | {v} |" for k, v in REASONS.items()]
    return "\n".join(out)


def render(text: str) -> str:
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{DOC}: markers {BEGIN!r} ... {END!r} not found")
    return pattern.sub(lambda _: f"{BEGIN}\n\n{generated_markdown()}\n\n{END}", text)


if __name__ == "__main__":
    write_text(DOC, render(DOC.read_text()))
    print(f"wrote {DOC}", file=sys.stderr)
