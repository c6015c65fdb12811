"""Raw files to lazy frames of text, with where every record came from.

The only place raw files are opened. Parsers in `transforms.ingest` receive these frames
and never touch the file system. `_source_file` is relative to the raw directory so the
quarantine and the audit name files the way an operator sees them.
"""

from pathlib import Path

import polars as pl


def relative_name(path: Path, raw_root: Path) -> str:
    try:
        return path.resolve().relative_to(raw_root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def scan_text_lines(paths: list[Path], raw_root: Path, *, skip_blank: bool = True) -> pl.LazyFrame:
    """One row per line: `_source_file`, `_source_row` (1-based line number), `line`.
    Blank lines are not records and are dropped (their numbers are kept for the others).
    Invalid UTF-8 bytes are replaced (the line then fails its parser, not the whole file),
    a byte-order mark at the start of the file is stripped, and CR of CRLF endings removed.
    Lines are split on newlines only (a raw 0x1F byte, never valid in JSON text, cuts the line
    there, and the record then fails its parser)."""
    frames = [
        pl.scan_csv(p, has_header=False, separator="\x1f", quote_char=None, encoding="utf8-lossy",
                    new_columns=["line"], infer_schema=False, row_index_name="_source_row", row_index_offset=1,
                    truncate_ragged_lines=True)
        .with_columns(pl.col("_source_row").cast(pl.Int64), pl.lit(relative_name(p, raw_root)).alias("_source_file"),
                      pl.col("line").fill_null("").str.strip_prefix("\ufeff").str.strip_suffix("\r"))
        for p in sorted(paths)
    ]
    if not frames:
        return pl.LazyFrame(schema={"_source_file": pl.String, "_source_row": pl.Int64, "line": pl.String})
    lf = pl.concat(frames, how="vertical")
    if skip_blank:
        lf = lf.filter(pl.col("line").str.strip_chars().str.len_bytes() > 0)
    return lf.select("_source_file", "_source_row", "line")


def scan_csv_text(paths: list[Path], raw_root: Path, *, separator: str = ",",
                  null_values: list[str] | None = None) -> pl.LazyFrame:
    """Every column as text (parsers cast and judge), plus `_source_file` and `_source_row`
    (1-based data row, the header not counted). Files with different headers are aligned
    by column name; a column missing from a file is null there. A UTF-8 BOM is stripped.
    Blank lines are not records (their row numbers are kept for the rows after them)."""
    frames = []
    for p in sorted(paths):
        lf = pl.scan_csv(p, separator=separator, infer_schema=False, null_values=null_values,
                         row_index_name="_source_row", row_index_offset=1, truncate_ragged_lines=True,
                         missing_columns="insert", encoding="utf8-lossy")
        names = lf.collect_schema().names()
        lf = lf.rename({n: n.lstrip("\ufeff").strip() for n in names if n != n.lstrip("\ufeff").strip()})
        # A blank line comes back as an all-null row: it is not a record.
        lf = lf.filter(pl.any_horizontal(pl.exclude("_source_row").is_not_null()))
        frames.append(lf.with_columns(pl.col("_source_row").cast(pl.Int64),
                                      pl.lit(relative_name(p, raw_root)).alias("_source_file")))
    if not frames:
        return pl.LazyFrame(schema={"_source_file": pl.String, "_source_row": pl.Int64})
    return pl.concat(frames, how="diagonal_relaxed")


def scan_parquet_files(paths: list[Path], raw_root: Path) -> pl.LazyFrame:
    """Canonical Parquet inputs, plus `_source_file` and `_source_row` (1-based row)."""
    frames = [
        pl.scan_parquet(p, row_index_name="_source_row", row_index_offset=1)
        .with_columns(pl.col("_source_row").cast(pl.Int64), pl.lit(relative_name(p, raw_root)).alias("_source_file"))
        for p in sorted(paths)
    ]
    if not frames:
        return pl.LazyFrame(schema={"_source_file": pl.String, "_source_row": pl.Int64})
    return pl.concat(frames, how="diagonal_relaxed")
