"""The morning report: one self-contained HTML page drawn from the published warehouse
(docs/report.md).

    write_report(warehouse_path, out, day=None, days=7, *, limits=None, cache_dir=None) -> ReportOutcome

`figures` reads the marts (headline figures, chart frames, methods), `charts` turns frames into
Vega-Lite specs (Vega-Altair), `page` assembles the HTML with the Vega bundle inline.
"""

import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl

from lake.files import write_text
from warehouse.access import open_warehouse
from warehouse.connection import DuckDBLimits
from warehouse.report.charts import CHARTS
from warehouse.report.figures import Headline, ReportData, ReportError, read_report_data
from warehouse.report.page import render


@dataclass
class ReportOutcome:
    path: Path
    day: date
    first_day: date
    charts: int
    bytes: int
    seconds: float
    headlines: list[Headline]


def build_report(con, day: date | None = None, days: int = 7, *, expectations: pl.DataFrame | None = None,
                 path: str = "the warehouse", cache_dir: Path | None = None) -> tuple[str, ReportData]:
    """The report's HTML for the `days` days ending on `day` (default: the last published day),
    from an open warehouse connection; the Vega bundle kept in `cache_dir` (page.vega_bundle)."""
    data = read_report_data(con, day, days, path=path)
    return render(data, expectations=expectations, cache_dir=cache_dir), data


def write_report(warehouse: Path | str, out: Path | str, day: date | None = None, days: int = 7, *,
                 expectations: pl.DataFrame | None = None, limits: DuckDBLimits | None = None,
                 cache_dir: Path | None = None) -> ReportOutcome:
    """Write the report of `warehouse` to `out` (written beside, then renamed: a reader never
    sees half a file), reading it within `limits`. Raises ReportError when `day` is not
    published, FileNotFoundError without a warehouse."""
    started = time.perf_counter()
    out = Path(out)
    con = open_warehouse(warehouse, limits)
    try:
        page, data = build_report(con, day, days, expectations=expectations, path=str(warehouse), cache_dir=cache_dir)
    finally:
        con.close()
    write_text(out, page, fix="write the report (--out, $INFERLEDGER_REPORT) to a disk with room")
    charts = sum(not data.frames[frame].is_empty() for frame, *_ in CHARTS.values())
    return ReportOutcome(out, data.day, data.first_day, charts, out.stat().st_size, time.perf_counter() - started,
                         data.headlines)


__all__ = ["ReportError", "ReportOutcome", "build_report", "write_report"]
