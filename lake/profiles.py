"""Performance profile files: the public profiles read from their own formats, and the canonical
CSV written atomically (`inferledger import-profile`; the parsing is `transforms.ingest.profiles`)."""

import json
from pathlib import Path

import polars as pl

from lake.files import write_atomically
from transforms.ingest.profiles import import_mlenergy, import_splitwise


class ProfileImportError(ValueError):
    """A profile file that cannot be imported: names the file and the fix."""


def read_profile_source(kind: str, path: Path) -> pl.DataFrame:
    """The canonical rows of the public profile file `path` of format `kind` (mlenergy, splitwise)."""
    path = Path(path)
    try:
        if kind == "mlenergy":
            doc = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(doc, dict) or not isinstance(doc.get("configurations"), list):
                raise ProfileImportError(f"{path}: not an ML.ENERGY leaderboard v3 task file (no `configurations` "
                                         "list at the top); pass a file of public/data/tasks/")
            return import_mlenergy(doc)
        if kind == "splitwise":
            return import_splitwise(pl.read_csv(path))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, pl.exceptions.PolarsError, KeyError) as e:
        raise ProfileImportError(f"{path}: cannot be read as a {kind} profile ({type(e).__name__}: {e}); check the "
                                 "file's format (docs/raw-formats.md, \"Performance profiles\")") from None
    raise ProfileImportError(f"unknown profile format {kind!r}; known: mlenergy, splitwise")


def write_profile_csv(rows: pl.DataFrame, target: Path) -> Path:
    """Write canonical profile rows to `target` (a CSV of `<raw>/profiles/`), atomically."""
    return write_atomically(Path(target), lambda p: rows.write_csv(p))
