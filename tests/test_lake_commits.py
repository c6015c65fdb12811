"""A day's attribution is one commit (lake.commits, issue 20): a real `inferledger attribute`
process SIGKILLed part way through writing the day's eight outputs leaves a reader exactly the
previous state (nothing, or the whole previous run, digest for digest); killed after the commit
point, the whole new run; the retry completes the day, byte-identical to an uninterrupted run. On
the S3 server (moto) and on local disk. The kill is injected in the killed process only, at a
named point of the production code (KILLER below), never by timing."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest

import fleetsim
from lake import commits
from lake.commits import COMMITS, pending
from lake.objects import TOKEN, ObjectLake
from lake.store import Lake
from pipelines.attribution import OUTPUTS, day_commit
from pipelines.cli import main

DAY = date(2026, 11, 24)
ROOT = Path(__file__).resolve().parents[1]

# Runs the production CLI (`inferledger ...`, argv[4:]) and SIGKILLs itself at a point of the
# commit of a group whose name starts with argv[3] (`attribution/`: the day's outputs, not the
# fleet-wide ingests the attribution job runs first): `staged N`: right after the N-th of the
# group's files is written (not committed); `record`: as the object store's commit record is about
# to be PUT (every pointer written); `applied N`: on local disk, after the journal and N of its renames.
KILLER = """
import json, os, signal, sys
from lake import commits
from lake.objects import ObjectLake
from pipelines.cli import main

mode, n, group = sys.argv[1], int(sys.argv[2]), sys.argv[3]
die = lambda: os.kill(os.getpid(), signal.SIGKILL)
if mode == "staged":
    written = []
    def counted(method):
        def wrapper(self, *a, **k):
            out = method(self, *a, **k)
            if self.group.startswith(group):
                written.append(out)
                if len(written) == n:
                    die()
            return out
        return wrapper
    for cls in (commits.LocalBatch, commits.ObjectBatch):
        cls.write, cls.adopt = counted(cls.write), counted(cls.adopt)
elif mode == "record":
    put = ObjectLake.write_text
    ObjectLake.write_text = lambda self, path, text: (die() if f"/_commits/{group}" in str(path)
                                                      else put(self, path, text))
elif mode == "applied":
    apply = commits._apply
    def killed_applying(root, journal):
        if not journal.name.startswith(group.replace("/", "+")):
            return apply(root, journal)
        for tmp, target in json.loads(journal.read_text())["moves"][:n]:
            os.replace(root / tmp, root / target)
        die()
    commits._apply = killed_applying
sys.exit(main(sys.argv[4:]))
"""


def _killed(lake: Lake, raw: Path, mode: str, n: int = 0, **env: str) -> None:
    """`inferledger attribute` of DAY in a process of its own, killed at `mode` (KILLER)."""
    proc = subprocess.run([sys.executable, "-c", KILLER, mode, str(n), "attribution/", "attribute",
                           "--date", DAY.isoformat(), "--raw", str(raw), "--lake", str(lake.root)],
                          env={**os.environ, "PYTHONPATH": str(ROOT), **env}, cwd=ROOT, capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()[-3000:]


def _attribute(lake: Lake, raw: Path) -> None:
    assert main(["attribute", "--date", DAY.isoformat(), "--raw", str(raw), "--lake", str(lake.root)]) == 0


def _seen(lake: Lake) -> dict[str, str | None]:
    """What a reader sees of the day's outputs: each one's SHA-256, None when it sees no file."""
    out = {}
    for name in OUTPUTS:
        found = lake.partition_files(name, DAY)
        assert len(found) <= 1, found
        if found:
            with lake.open_read(found[0]) as f:
                out[name] = hashlib.sha256(f.read()).hexdigest()
        else:
            out[name] = None
    return out


NOTHING = dict.fromkeys(OUTPUTS)


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    """A 600-request demo-fleet day (seed 7, invoices), its raw files and its local lake ingested;
    the reference: its eight outputs attributed once, uninterrupted, in that lake (by weight
    `time`, the default)."""
    root = tmp_path_factory.mktemp("commits")
    fleetsim.simulate(root / "raw", DAY, requests=600, seed=7, invoices=True)
    lake = Lake(root / "lake")
    assert main(["ingest", "--date", DAY.isoformat(), "--raw", str(root / "raw"), "--lake", str(lake.root)]) == 0
    ingested = {p.relative_to(lake.root) for p in Path(lake.root).rglob("*.parquet")
                if not p.relative_to(lake.root).as_posix().startswith("_")}
    _attribute(lake, root / "raw")
    return {"raw": root / "raw", "lake": lake, "ingested": ingested, "reference": _seen(lake)}


def test_on_local_disk_a_kill_before_the_commit_leaves_the_previous_run_and_after_it_the_new_one(day, monkeypatch):
    lake, raw, reference = day["lake"], day["raw"], day["reference"]
    assert None not in reference.values()
    # Weight `tokens` gives other facts: killed after three of its eight files were written
    # (request_costs, node_slots, pool_idle), before the journal: a reader sees the reference.
    _killed(lake, raw, "staged", 3, INFERLEDGER_WEIGHT="tokens")
    assert _seen(lake) == reference
    assert pending(lake.root) == []
    # Killed after the journal and three of its eight renames: the commit point was passed, so the
    # next reader rolls it forward and sees the whole new run (no output of the reference left).
    _killed(lake, raw, "applied", 3, INFERLEDGER_WEIGHT="tokens")
    assert len(pending(lake.root, day_commit(DAY))) == 1
    tokens = _seen(lake)
    assert pending(lake.root) == []
    assert None not in tokens.values() and tokens["request_costs"] != reference["request_costs"]
    # ...the same bytes as that run uninterrupted; and the default weight's retry gives the reference back.
    monkeypatch.setenv("INFERLEDGER_WEIGHT", "tokens")
    _attribute(lake, raw)
    assert _seen(lake) == tokens
    monkeypatch.delenv("INFERLEDGER_WEIGHT")
    _attribute(lake, raw)
    assert _seen(lake) == reference
    # No temporary file is left where a reader lists, nor a journal.
    assert [p for p in Path(lake.root).rglob("*") if p.name.endswith(".tmp")] == []
    assert list((Path(lake.root) / COMMITS).iterdir()) == []


def test_on_s3_a_killed_attribution_leaves_nothing_or_the_previous_run_and_the_retry_completes(day, s3_server):
    lake, raw = Lake(s3_server.uri()), day["raw"]
    assert main(["ingest", "--date", DAY.isoformat(), "--raw", str(raw), "--lake", lake.root]) == 0
    # The first attribution of the day, killed with its eight objects and their eight pointers
    # written, as its commit record was about to be PUT: a reader sees none of the day.
    _killed(lake, raw, "record")
    assert _seen(lake) == NOTHING
    assert len([k for k in s3_server.keys("lake/request_costs/") if TOKEN.search(k)]) == 1  # the orphan
    # The retry: byte-identical to the uninterrupted run on local disk.
    _attribute(lake, raw)
    assert _seen(lake) == day["reference"]
    record = json.loads(lake.read_text(f"{lake.root}/{COMMITS}/{day_commit(DAY)}.json"))
    assert sorted(record["files"]) == sorted(f"{n}/date={DAY}/part-0.parquet" for n in OUTPUTS)
    # Weight `tokens`, killed after three of its eight objects: the previous run, whole.
    _killed(lake, raw, "staged", 3, INFERLEDGER_WEIGHT="tokens")
    assert _seen(lake) == day["reference"]
    assert len([k for k in s3_server.keys("lake/request_costs/") if TOKEN.search(k)]) == 3
    _attribute(lake, raw)
    assert _seen(lake) == day["reference"]

def test_an_ingest_partition_is_one_commit_too(day, tmp_path):
    """The canonical file, its quarantine and its audit of one (dataset, day, site) are committed
    together: an ingest killed right after the first partition's canonical file was written left
    every ingested file as it was (same size and time: not one replaced)."""
    src, lake = Path(day["lake"].root), Lake(tmp_path / "lake")
    for rel in day["ingested"]:
        (tmp_path / "lake" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "lake" / rel).write_bytes((src / rel).read_bytes())
    before = {rel: lake.stamp(tmp_path / "lake" / rel) for rel in day["ingested"]}
    proc = subprocess.run([sys.executable, "-c", KILLER, "staged", "1", "ingest/", "ingest", "--date", DAY.isoformat(),
                           "--raw", str(day["raw"]), "--lake", str(lake.root)],
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT, capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()[-3000:]
    assert sorted(p.relative_to(lake.root) for p in Path(lake.root).rglob("*.parquet")
                  if not p.relative_to(lake.root).as_posix().startswith("_")) == sorted(day["ingested"])
    assert {rel: lake.stamp(tmp_path / "lake" / rel) for rel in day["ingested"]} == before
    ingested = pl.read_parquet(day["lake"].day_files("requests", DAY))
    assert pl.read_parquet(lake.day_files("requests", DAY)).equals(ingested) and ingested.height > 0


GROUP_KILLED = """
import os, signal, sys
from datetime import date
import polars as pl
from lake.objects import ObjectLake
from lake.store import Lake
put = ObjectLake.write_text
ObjectLake.write_text = lambda self, path, text: (os.kill(os.getpid(), signal.SIGKILL) if "/_commits/" in str(path)
                                                  else put(self, path, text))
lake, day = Lake(sys.argv[1]), date(2030, 1, 1)
with lake.batch("t/date=2030-01-01") as batch:
    batch.write(pl.DataFrame({"x": [10, 20]}), "totals", day)
    batch.write(pl.DataFrame({"y": [30]}), "node_slots", day)
    batch.commit()
"""


def test_on_s3_pointers_without_their_record_name_nothing_or_the_file_they_replaced(s3_server):
    """A group's pointers are written before its record: killed between the two, a reader sees
    the group's previous state. First a file written alone (x = 1, 2, 3: sum 6); a grouped commit
    of it and of node_slots killed before its record: x still sums to 6, node_slots is not there
    (nor its partition); the same commit completed: x = 10 + 20 = 30, y = 30."""
    lake, day = Lake(s3_server.uri()), date(2030, 1, 1)
    lake.write(pl.DataFrame({"x": [1, 2, 3]}), "totals", day)
    proc = subprocess.run([sys.executable, "-c", GROUP_KILLED, lake.root], env={**os.environ, "PYTHONPATH": str(ROOT)},
                          cwd=ROOT, capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    assert json.loads(lake.read_text(f"{lake.root}/totals/date=2030-01-01/part-0.manifest.json"))["commit"] == \
        f"{COMMITS}/t/date=2030-01-01.json"  # the pointer was written...
    assert pl.read_parquet(lake.partition_files("totals", day))["x"].sum() == 6  # ...and names the old file
    assert lake.partition_files("node_slots", day) == [] and not lake.has_partition("node_slots", day)
    with lake.batch("t/date=2030-01-01") as batch:
        batch.write(pl.DataFrame({"x": [10, 20]}), "totals", day)
        batch.write(pl.DataFrame({"y": [30]}), "node_slots", day)
        x, y = batch.commit()
    assert lake.partition_files("totals", day) == [x] and pl.read_parquet(x)["x"].sum() == 30
    assert lake.partition_files("node_slots", day) == [y] and pl.read_parquet(y)["y"].sum() == 30
    # Past the retention the garbage collection keeps what the record names: the superseded file
    # (x = 1, 2, 3) and the killed commit's two orphans go.
    assert len(ObjectLake(lake.root, retention_s=0).collect_garbage()) == 3
    assert pl.read_parquet(lake.partition_files("totals", day))["x"].sum() == 30


def test_on_local_disk_two_commits_of_one_group_keep_their_own_journals(tmp_path, monkeypatch):
    """Journals are unique per commit: the later commit of a group wins whole (x = 4 + 5 = 9,
    y = 6), applied after the earlier one (x = 1, y = 2) even when both are left to `settle`."""
    lake, day = Lake(tmp_path), date(2030, 1, 1)
    batches = []
    for x, y in (([1], [2]), ([4, 5], [6])):
        b = lake.batch("t/date=2030-01-01").__enter__()
        b.write(pl.DataFrame({"x": x}), "totals", day)
        b.write(pl.DataFrame({"y": y}), "node_slots", day)
        batches.append(b)
    monkeypatch.setattr(commits, "_apply", lambda root, journal: None)  # both as if killed after their journal
    for b in batches:
        b.commit()
    monkeypatch.undo()
    assert len(pending(tmp_path)) == 2
    assert pl.read_parquet(lake.partition_files("totals", day))["x"].sum() == 9  # `_glob` settled both, in order
    assert pl.read_parquet(lake.partition_file("node_slots", day))["y"].sum() == 6 and pending(tmp_path) == []


def test_publish_to_s3_uploads_a_self_contained_version_finance_can_query(day, s3_server, tmp_path, monkeypatch):
    """`INFERLEDGER_PUBLISH_TO`: the published version is uploaded, then `CURRENT.json` names it.
    Downloaded elsewhere, with the publisher's disk and the store gone, it answers: the requests
    by tier of the day (batch 17 + premium 238 + standard 342 = 597, as the attribution printed
    them) and the request detail, a table there (one row per fact of the lake)."""
    lake, raw = day["lake"], day["raw"]
    monkeypatch.setenv("INFERLEDGER_PUBLISH_TO", s3_server.uri("warehouse") + "/")
    published = tmp_path / "publisher" / "inferledger.duckdb"
    assert main(["publish", "--raw", str(raw), "--lake", str(lake.root), "--warehouse", str(published)]) == 0
    fs = s3_server.fs()
    with fs.open_input_stream(f"{s3_server.bucket}/warehouse/CURRENT.json") as f:
        current = json.loads(f.read())
    copy = tmp_path / "finance" / "inferledger.duckdb"
    copy.parent.mkdir()
    with fs.open_input_stream(f"{s3_server.bucket}/warehouse/{current['file']}") as f:
        copy.write_bytes(f.read())
    assert current["file"] == f"versions/{current['version']}/inferledger.duckdb"
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == current["sha256"]
    facts = pl.read_parquet(lake.partition_file("request_costs", DAY)).height
    shutil.rmtree(published.parent)
    for k in s3_server.env:
        monkeypatch.delenv(k)
    with duckdb.connect(str(copy), read_only=True) as con:
        assert con.execute("SELECT tier, sum(requests) FROM cost_by_tier_day GROUP BY tier ORDER BY tier").fetchall() \
            == [("batch", 17), ("premium", 238), ("standard", 342)]
        assert con.execute("SELECT count(*) FROM request_costs").fetchone()[0] == facts >= 597
        assert con.execute("SELECT table_type FROM information_schema.tables WHERE table_name = 'request_costs'"
                           ).fetchone()[0] == "BASE TABLE"
