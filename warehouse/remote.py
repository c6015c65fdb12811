"""A published version uploaded to an object store as well (`publish_to`, `s3://bucket/prefix`),
for readers who do not share the publishing machine's disk:

    <prefix>/versions/<version>/inferledger.duckdb   the version, self-contained: `request_costs`
                                                      is a table there (the local file's view reads
                                                      Parquet files beside it, on the publisher's disk)
    <prefix>/CURRENT.json                             {"version", "file", "bytes", "sha256", ...}

The version's object gets a new name (its version), and `CURRENT.json`, written last in one PUT,
points at it: a reader who follows `CURRENT.json` gets a whole file, the previous one until the
upload is complete (an upload killed half way leaves an object no pointer names). Older
versions' objects stay (for rollback by hand, or a lifecycle rule of the bucket).
Uploads go through PyArrow's `S3FileSystem` (the standard AWS variables, as the lake's).
"""

import hashlib
import json
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.fs as pafs

from lake.files import writing
from warehouse.connection import connect, run, sql_string
from warehouse.tables import BY_NAME
from warehouse.version_file import comment_table

CURRENT = "CURRENT.json"
STORE_FIX = "check publish_to ($INFERLEDGER_PUBLISH_TO) and the object store's AWS_* variables"


def self_contained(db: Path, out: Path) -> None:
    """`out`: a copy of the version file `db` with `request_costs` a table holding the rows its
    view reads (same columns, comments, rows)."""
    shutil.copyfile(db, out)
    con = connect()
    try:
        run(con, f"ATTACH {sql_string(out)} AS w")
        run(con, "USE w")
        run(con, "CREATE TABLE _request_costs AS SELECT * FROM request_costs")
        run(con, "DROP VIEW request_costs")
        run(con, "ALTER TABLE _request_costs RENAME TO request_costs")
        comment_table(con, BY_NAME["request_costs"], kind="TABLE")
        run(con, "USE memory")
        run(con, "DETACH w")
    finally:
        con.close()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def upload_version(db: Path, version: str, dest: str) -> str:
    """Upload the version file `db` (self-contained) to `<dest>/versions/<version>/`, then point
    `<dest>/CURRENT.json` at it; returns the object's URI."""
    fs, base = pafs.FileSystem.from_uri(dest.rstrip("/"))
    key = f"{base}/versions/{version}/{db.name}"
    with tempfile.TemporaryDirectory(prefix="inferledger-upload-") as tmp:
        local = Path(tmp) / db.name
        self_contained(db, local)
        with writing(f"{dest}/versions/{version}/{db.name}", STORE_FIX):
            pafs.copy_files(str(local), key, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)
        pointer = {"version": version, "file": f"versions/{version}/{db.name}", "bytes": local.stat().st_size,
                   "sha256": _sha256(local), "uploaded_at": datetime.now(UTC).isoformat()}
    with writing(f"{dest}/{CURRENT}", STORE_FIX), fs.open_output_stream(f"{base}/{CURRENT}") as f:
        f.write(json.dumps(pointer, indent=1).encode())
    return f"{dest.rstrip('/')}/versions/{version}/{db.name}"
