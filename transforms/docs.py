"""Generated parts of docs/data-contracts.md: column tables and reason codes.

`python -m transforms.docs` rewrites the text between the GENERATED markers; a test
fails when the file and the declarations disagree.
"""

import re
import sys
from pathlib import Path

import polars as pl

from transforms.contracts import ALL_CONTRACTS, UTC_US
from transforms.ingest.common import REASONS

DOC = Path(__file__).resolve().parent.parent / "docs" / "data-contracts.md"
BEGIN, END = "<!-- BEGIN GENERATED: python -m transforms.docs -->", "<!-- END GENERATED -->"


def _type_name(dtype: pl.DataType) -> str:
    if dtype == UTC_US:
        return "timestamp[us, UTC]"
    return {pl.String: "string", pl.Float64: "float64", pl.Int64: "int64", pl.Int32: "int32",
            pl.Int16: "int16", pl.Boolean: "bool", pl.Date: "date"}.get(dtype, str(dtype))


def generated_markdown() -> str:
    out = []
    for c in ALL_CONTRACTS.values():
        parts = "/".join(p + "=" for p in c.partition_by)
        out += [f"### `{c.name}`", "", c.description, "",
                f"Key: `{', '.join(c.key)}`. "
                + ("Rows in the raw files' order (file, then line). " if c.order is None else "Rows sorted by the key. ")
                + f"Lake path: `<lake>/{c.name}/{parts}/`.", "",
                "| column | type | unit | nullable | meaning |", "|---|---|---|---|---|"]
        out += [f"| `{col.name}` | {_type_name(col.dtype)} | {col.unit} | {'yes' if col.nullable else 'no'} | {col.description} |"
                for col in c.columns]
        out.append("")
    out += ["### Quarantine reasons", "", "| reason | meaning |", "|---|---|"]
    out += [f"| `{k}` | {v} |" for k, v in REASONS.items()]
    return "\n".join(out)


def render(text: str) -> str:
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{DOC}: markers {BEGIN!r} ... {END!r} not found")
    return pattern.sub(lambda _: f"{BEGIN}\n\n{generated_markdown()}\n\n{END}", text)


if __name__ == "__main__":
    new = render(DOC.read_text())
    DOC.write_text(new)
    print(f"wrote {DOC}", file=sys.stderr)
