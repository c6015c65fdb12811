"""Rolling back to a version published with an older layout of the warehouse (issue 18, follow-up
1): a version is judged against the tables it was published with (its COMPLETE's record, or, for
a version from before the record, the layouts that existed then), never against this release's
tables; a version lacking a table it WAS published with is still refused.

The versions are hand-built: real DuckDB files (storage v1.5.0, like every publish) holding the
tables of a layout with this release's declared columns, a `request_costs` view over a real
Parquet file, and COMPLETE in the format of the publish that wrote it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl
import pytest
from hypothesis import given, settings, strategies as st

from tests.conftest import examples
from warehouse.connection import sql_string
from warehouse.publish import PublishError, current_version, rollback
from warehouse.tables import BY_NAME, TABLES
from warehouse.version_file import STORAGE_VERSION
from warehouse.versions import (COMPLETE, DB_NAME, FIRST_LAYOUT, LATER_ADDITIONS, _required_tables,
                                versions_dir, write_complete)

INFERLEDGER = Path(sys.executable).parent / "inferledger"
PLAN_TABLES = ["plan_runs", "plan_routing", "plan_nodes_by_pool_hour", "plan_summary"]  # in TABLES' order
# The layout of main just before the plan tables were published (8a8367a^): 22 + 2 + 3 + 1 = 28 tables.
BEFORE_PLANS = FIRST_LAYOUT.union(*LATER_ADDITIONS[:3])
CURRENT = frozenset(t.name for t in TABLES)


def build_version(wh: Path, version: str, tables, *, complete: str = "digests", said_version: str | None = None):
    """versions/<version>/ beside the warehouse file `wh`, as a publish of that layout left it: the
    DuckDB file with `tables` (this release's declared columns, as VARCHAR, no rows) and the
    publication row naming `said_version` (default: `version`), `request_costs` a view over the
    version's one Parquet file, then COMPLETE as written by this release (`tables`: files and
    tables recorded), by the publishes before it (`digests`: files only) or before digests
    (`name`: the version's name only)."""
    vdir = versions_dir(wh) / version
    (vdir / "request_costs").mkdir(parents=True)
    facts = vdir / "request_costs" / "date=2026-11-24.parquet"
    pl.DataFrame({c: ["x"] for c in BY_NAME["request_costs"].columns}).write_parquet(facts)  # one request
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH {sql_string(vdir / DB_NAME)} AS w (STORAGE_VERSION {sql_string(STORAGE_VERSION)})")
        con.execute("USE w")
        for name in sorted(set(tables) - {"request_costs"}):
            cols = ", ".join(f"{c} VARCHAR" for c in BY_NAME[name].columns)
            con.execute(f"CREATE TABLE {name} ({cols})")
        if "publication" in tables:
            con.execute("INSERT INTO publication (version) VALUES (?)", [said_version or version])
        if "request_costs" in tables:
            con.execute(f"CREATE VIEW request_costs AS SELECT * FROM read_parquet({sql_string(facts)})")
        con.execute("USE memory")
        con.execute("DETACH w")
    finally:
        con.close()
    write_complete(wh, vdir, version)
    record = json.loads((vdir / COMPLETE).read_text())
    if complete == "digests":
        (vdir / COMPLETE).write_text(json.dumps({"version": version, "files": record["files"]}, indent=1) + "\n")
    elif complete == "name":
        (vdir / COMPLETE).write_text(f"{version}\n")
    return vdir


@pytest.fixture
def published(tmp_path):
    """A warehouse whose published version (20261207T220000Z) has this release's 33 tables."""
    wh = tmp_path / "warehouse" / DB_NAME
    vdir = build_version(wh, "20261207T220000Z", CURRENT, complete="tables")
    os.link(vdir / DB_NAME, wh)
    assert current_version(wh) == "20261207T220000Z"
    return wh


def _rollback_cli(wh, version):
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    return subprocess.run([str(INFERLEDGER), "publish", "--warehouse", str(wh), "--rollback", version],
                          capture_output=True, text=True, timeout=120, env=env)


def test_a_version_published_before_the_plan_tables_rolls_back_with_a_warning(published):
    """The issue: every version published before 8a8367a was refused ("missing plan_runs, ...")."""
    wh = published
    build_version(wh, "20261207T200000Z", BEFORE_PLANS, complete="digests")
    out = _rollback_cli(wh, "20261207T200000Z")
    assert out.returncode == 0, out.stdout + out.stderr
    said = " ".join(out.stderr.split())
    # requests_by_method_day came after the plan tables (the report's methods from the marts), before them in TABLES.
    assert ("warning: version 20261207T200000Z was published before the tables "
            + ", ".join(["requests_by_method_day", *PLAN_TABLES])
            + " existed: it is published without them") in said, said
    assert "digests" not in said  # its files were checked against their digests
    assert current_version(wh) == "20261207T200000Z"
    con = duckdb.connect(str(wh), read_only=True)
    try:
        assert con.execute("SELECT version FROM publication").fetchall() == [("20261207T200000Z",)]
        assert con.execute("SELECT count(*) FROM request_costs").fetchall() == [(1,)]
    finally:
        con.close()
    # And forward again to the version of this release: its 33 recorded tables are there, no warning.
    out = _rollback_cli(wh, "20261207T220000Z")
    assert out.returncode == 0 and not out.stderr, out.stdout + out.stderr
    assert current_version(wh) == "20261207T220000Z"


def test_a_version_of_the_first_layout_published_before_digests_rolls_back(published):
    """22 tables, COMPLETE holding only the name: the open check and both warnings (11 tables later)."""
    build_version(published, "20261129T160000Z", FIRST_LAYOUT, complete="name")
    outcome = rollback(published, "20261129T160000Z")
    assert current_version(published) == "20261129T160000Z"
    later = sorted(CURRENT - FIRST_LAYOUT, key=[t.name for t in TABLES].index)
    assert len(later) == 33 - 22 == 11
    assert outcome.warning.startswith("version 20261129T160000Z was published before digests were recorded")
    assert f"published before the tables {', '.join(later)} existed" in outcome.warning


@pytest.mark.parametrize("tables, complete, said, words", [
    # A table of the first warehouse lost: no layout ever published without it.
    (BEFORE_PLANS - {"cost_by_tier_day"}, "digests", None, "(missing cost_by_tier_day)"),
    (FIRST_LAYOUT - {"dim_tiers", "request_costs"}, "name", None, "(missing dim_tiers, request_costs)"),
    # Half of a later addition: the change that added restatements added both tables at once.
    (FIRST_LAYOUT | {"restatements"}, "digests", None, "(missing cost_by_tier_day_first_published)"),
    (FIRST_LAYOUT | {"plan_runs", "plan_summary"}, "digests", None, "(missing plan_nodes_by_pool_hour, plan_routing)"),
    # Another version's file under this version's name.
    (BEFORE_PLANS, "digests", "20261201T000000Z", "its publication table says [('20261201T000000Z',)]"),
])
def test_an_older_version_lacking_what_it_was_published_with_is_refused(published, tables, complete, said, words):
    wh = published
    build_version(wh, "20261207T200000Z", tables, complete=complete, said_version=said)
    before = (current_version(wh), wh.stat().st_ino)
    with pytest.raises(PublishError) as refused:
        rollback(wh, "20261207T200000Z")
    msg = str(refused.value)
    assert "20261207T200000Z/inferledger.duckdb: not version 20261207T200000Z of the warehouse as published" in msg
    assert words in msg and "not rolled back; the published warehouse is unchanged" in msg, msg
    assert (current_version(wh), wh.stat().st_ino) == before


def test_the_refusal_through_the_cli_is_one_line(published):
    build_version(published, "20261207T200000Z", BEFORE_PLANS - {"cost_by_tier_day"}, complete="digests")
    before = (current_version(published), published.stat().st_ino)
    out = _rollback_cli(published, "20261207T200000Z")
    assert out.returncode == 1, out.stdout + out.stderr
    msg = " ".join(out.stderr.split())
    assert msg.startswith("error: ") and "(missing cost_by_tier_day); not rolled back" in msg, msg
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert (current_version(published), published.stat().st_ino) == before


def test_complete_records_the_tables_and_columns_of_the_version(published):
    record = json.loads((versions_dir(published) / "20261207T220000Z" / COMPLETE).read_text())
    assert record["tables"] == {t.name: list(t.columns) for t in sorted(TABLES, key=lambda t: t.name)}
    assert list(record["tables"]) == sorted(record["tables"])  # sorted: the record does not depend on DuckDB's order


def test_required_tables_judge_a_version_by_its_own_record():
    # Recorded: a(x), b(y). The file holds a(x, z) and no b: both reported; what the release declares is not asked.
    assert _required_tables("v", {"a": ["x"], "b": ["y"]}, {"a": ["x", "z"]}) == [
        "a (columns ['x', 'z'], published with ['x'])", "b"]
    assert _required_tables("v", {"a": ["x"]}, {"a": ["x"], "later": ["q"]}) == []  # an extra table is not a defect
    # No record: the first layout (22 tables) and any addition the file holds part of.
    first = {t: ["c"] for t in FIRST_LAYOUT}
    assert _required_tables("v", None, first) == []
    assert _required_tables("v", None, {**first, "plan_routing": ["c"]}) == ["plan_nodes_by_pool_hour", "plan_runs",
                                                                             "plan_summary"]
    assert _required_tables("v", None, {k: v for k, v in first.items() if k != "publication"}) == ["publication"]


@settings(max_examples=examples(10), deadline=None)
@given(held=st.sets(st.integers(0, len(LATER_ADDITIONS) - 1)), drop=st.integers(0, 40))
def test_any_older_layout_rolls_back_and_any_table_lost_from_it_is_refused(tmp_path_factory, held, drop):
    """Any combination of the later additions, each held whole, over the first layout (every
    layout main or its branches published before the record) rolls back; the same layout less
    any one of its tables is refused, naming it, unless that table was an addition on its own
    (node_power_below_idle: the layout before it)."""
    layout = FIRST_LAYOUT.union(*(LATER_ADDITIONS[i] for i in held))
    root = tmp_path_factory.mktemp("layouts")
    wh = root / "warehouse" / DB_NAME
    os.link(build_version(wh, "20261207T220000Z", CURRENT, complete="tables") / DB_NAME, wh)
    build_version(wh, "20261207T100000Z", layout, complete="digests")
    assert rollback(wh, "20261207T100000Z").version == "20261207T100000Z"
    lost = sorted(layout)[drop % len(layout)]
    build_version(wh, "20261207T110000Z", layout - {lost}, complete="digests")
    if frozenset({lost}) in LATER_ADDITIONS:
        assert rollback(wh, "20261207T110000Z").version == "20261207T110000Z"
        return
    with pytest.raises(PublishError, match=f"missing {lost}[),]"):
        rollback(wh, "20261207T110000Z")
    assert current_version(wh) == "20261207T100000Z"
