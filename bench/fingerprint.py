"""A short hash of the repository's Python code at some paths: ties a benchmark figure or a
generated lake to the code that produced it. Standard library only (the benchmark's parent
process stays small)."""

import hashlib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def code_fingerprint(*paths: str) -> str:
    """12 hex digits over the `.py` files at `paths` (files or folders, relative to the repo)."""
    h = hashlib.sha256()
    files = sorted(f for p in paths for f in ([REPO / p] if (REPO / p).is_file() else (REPO / p).rglob("*.py")))
    for f in files:
        h.update(f.relative_to(REPO).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:12]
