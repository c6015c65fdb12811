"""Finance exports (`inferledger sql --out`): a result written as CSV or Parquet to a new file, or
over an existing one with `force`, never over a file it must not touch.
"""

import os
from pathlib import Path

import polars as pl

from lake.files import write_atomically


class RefusedOutput(ValueError):
    """An --out path that could overwrite or replace a file it must not."""


def check_out(out: Path, *, force: bool, protected: list[Path]) -> Path:
    """The absolute path `--out` may write, or RefusedOutput: an existing file only with
    `force`, never a symbolic link or a hard-linked file, never inside a `protected` folder
    (real paths compared, symbolic links resolved)."""
    out = Path(os.path.abspath(out))
    if out.suffix.lower() not in (".csv", ".parquet"):
        raise RefusedOutput(f"--out {out}: use a .csv or .parquet file name")
    real = out.parent.resolve() / out.name
    for d in protected:
        if real.is_relative_to(d.resolve()):
            raise RefusedOutput(f"--out {out}: inside {d.resolve()}, which holds the warehouse, the lake or the raw "
                                "files; write somewhere else (e.g. exports/)")
    if out.is_symlink():
        raise RefusedOutput(f"--out {out}: a symbolic link (to {os.readlink(out)}); write a plain file name")
    if out.exists():
        if not out.is_file() or out.stat().st_nlink > 1:
            raise RefusedOutput(f"--out {out}: exists and is not a plain single-link file (a directory, or a file "
                                "hard-linked elsewhere); write a new file name")
        if not force:
            raise RefusedOutput(f"--out {out}: exists; write a new file name, or add --force to replace it")
    return out


EXPORT_FIX = "write the export (--out) to a disk with room"


def export(frame: pl.DataFrame, out: Path, *, force: bool = False, protected: list[Path] = ()) -> Path:
    """Write a result as CSV or Parquet (by the suffix) to a new file, or over an existing one
    with `force`: written beside it, then linked (new) or renamed (force) into place, so the
    old file's inode is never written and a half-written file is never seen."""
    out = check_out(out, force=force, protected=list(protected))

    def write(tmp: Path) -> None:
        if out.suffix.lower() == ".csv":
            frame.write_csv(tmp)
        else:
            frame.write_parquet(tmp, compression="zstd")

    try:
        write_atomically(out, write, replace=force, fix=EXPORT_FIX)  # without force: linked, never replacing
    except FileExistsError:  # `out` appeared meanwhile
        raise RefusedOutput(f"--out {out}: exists; write a new file name, or add --force to replace it") from None
    return out
