"""The published warehouse of the demo day: documented in place, equal to the attributed Parquet
and the sources, published without half states, readable by DuckDB 1.x."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import venv
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

import fleetsim
from lake.inventory import load_inventory
from lake.store import Lake
from pipelines.cli import main
from pipelines.defs.warehouse.assets import cost_marts, warehouse as warehouse_asset
from pipelines.resources import AttributionSettings, ParquetLake, RawInputs, Warehouse
from warehouse.access import open_warehouse
from warehouse.dictionary import DOC, render_file
from warehouse.publish import (
    STORAGE_VERSION,
    PublishError,
    complete_versions,
    current_version,
    publish,
    rollback,
)
from warehouse.tables import TABLES
from warehouse.versions import COMPLETE, versions_dir

ROOT = Path(__file__).resolve().parent.parent
INFERLEDGER = Path(sys.executable).parent / "inferledger"
CENT = 0.01


def sql(path, query):
    con = open_warehouse(path)
    try:
        return con.sql(query).fetchall()
    finally:
        con.close()


def test_every_table_and_column_is_documented_in_the_warehouse(demo_warehouse):
    con = open_warehouse(demo_warehouse["warehouse"])
    try:
        objects = dict(con.sql("SELECT table_name, comment FROM duckdb_tables() WHERE NOT internal "
                               "UNION ALL SELECT view_name, comment FROM duckdb_views() WHERE NOT internal").fetchall())
        undocumented = con.sql("SELECT table_name, column_name FROM duckdb_columns() WHERE NOT internal "
                               "AND (comment IS NULL OR length(trim(comment)) < 3)").fetchall()
    finally:
        con.close()
    assert set(objects) == {t.name for t in TABLES}
    assert all(c and len(c) > 10 for c in objects.values()), objects
    assert undocumented == []


def test_data_dictionary_page_is_generated_from_the_warehouse(demo_warehouse):
    expected = render_file(demo_warehouse["warehouse"])
    assert DOC.read_text() == expected, "docs/data-dictionary.md is stale: run `python -m warehouse.dictionary`"
    for t in TABLES:
        assert f"### {t.name}\n" in expected
        for col in t.columns:
            assert f"| `{col}` |" in expected


def test_mart_totals_equal_the_attributed_parquet_and_the_sources_to_the_cent(demo_warehouse):
    lake, day, wh = demo_warehouse["lake"], demo_warehouse["day"], demo_warehouse["warehouse"]
    part = lambda name: pl.read_parquet(lake / name / f"date={day}" / "part-0.parquet")  # noqa: E731
    facts, totals = part("request_costs"), part("totals")
    pool_idle, unattributed = part("pool_idle"), part("unattributed")
    money = ["energy_cost", "demand_cost", "amortization_cost", "cloud_cost", "fixed_cost", "egress_cost"]

    (tier,) = sql(wh, f"SELECT sum(requests), {', '.join(f'sum({c})' for c in money)}, sum(direct_cost), "
                      "sum(idle_cost), sum(fully_loaded_cost), sum(energy_kwh) FROM cost_by_tier_day")
    assert tier[0] == facts.height == 49_997
    parquet = [facts[c].sum() for c in [*money, "direct_cost", "idle_share", "fully_loaded_cost", "energy_kwh"]]
    assert list(tier[1:]) == pytest.approx(parquet, abs=CENT)
    for table in ("cost_by_tenant_day", "cost_by_tenant_month", "cost_by_model_pool_day"):
        (row,) = sql(wh, f"SELECT sum(requests), sum(fully_loaded_cost), sum(energy_kwh) FROM {table}")
        assert row == (facts.height, pytest.approx(facts["fully_loaded_cost"].sum(), abs=CENT),
                       pytest.approx(facts["energy_kwh"].sum(), rel=1e-9)), table

    # Sources: every money line of the day = requests (fully loaded) + idle nobody carried + unattributed.
    sources = totals.filter(pl.col("unit") != "J")["source_amount"].sum()
    (idle_unabsorbed, unatt) = sql(wh, "SELECT (SELECT sum(unabsorbed) FROM idle_by_pool_day), "
                                       "(SELECT sum(amount) FROM unattributed_costs)")[0]
    assert idle_unabsorbed == pytest.approx(pool_idle["unabsorbed"].sum(), abs=1e-9)
    assert unatt == pytest.approx(unattributed["amount"].sum(), abs=1e-9)
    assert tier[9] + idle_unabsorbed + unatt == pytest.approx(sources, abs=CENT)
    # Per component, the marts' columns add up to the source lines.
    comp = dict(sql(wh, "SELECT component, source_amount FROM conservation_by_component WHERE unit = 'USD'"))
    for c in money:
        idle_c = "0" if c == "egress_cost" else f"(SELECT sum(idle_{c}) FROM idle_by_pool_day)"
        (in_marts,) = sql(wh, f"SELECT (SELECT sum({c}) FROM cost_by_tier_day) + {idle_c} "
                              f"+ (SELECT coalesce(sum(amount), 0) FROM unattributed_costs WHERE component = '{c}')")[0]
        assert in_marts == pytest.approx(comp[c], abs=CENT), c
    # Energy: requests + idle = the meters' energy (IT and overhead), in kWh.
    (req_kwh, idle_kwh) = sql(wh, "SELECT (SELECT sum(energy_kwh) FROM cost_by_tier_day), "
                                  "(SELECT sum(idle_energy_kwh) FROM idle_by_pool_day)")[0]
    meters = totals.filter(pl.col("unit") == "J")["source_amount"].sum() / 3.6e6
    assert req_kwh + idle_kwh == pytest.approx(meters, rel=1e-9)
    (site_kwh,) = sql(wh, "SELECT sum(facility_energy_kwh) FROM site_energy_hour")[0]
    assert site_kwh == pytest.approx(meters, rel=1e-9)
    # Every request costed exactly once, in the view too.
    assert sql(wh, "SELECT count(*), count(DISTINCT request_id) FROM request_costs") == [(facts.height, facts.height)]


def test_published_file_is_pinned_to_storage_v1_5(demo_warehouse):
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{demo_warehouse['warehouse']}' AS w (READ_ONLY)")
        con.fetchall()
        tags = con.sql("SELECT tags FROM duckdb_databases() WHERE database_name = 'w'").fetchall()[0][0]
    finally:
        con.close()
    assert tags["storage_version"].startswith(STORAGE_VERSION)


def test_published_file_opens_with_a_duckdb_1x_client(demo_warehouse, tmp_path):
    env_dir = tmp_path / "duckdb1"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    pip = subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "duckdb>=1.4,<2"],
                         capture_output=True, text=True, timeout=300)
    if pip.returncode != 0:
        pytest.skip(f"the duckdb 1.x wheel cannot be installed here: {pip.stderr.strip()[-300:]}")
    script = f"""
import duckdb
con = duckdb.connect({str(demo_warehouse['warehouse'])!r}, read_only=True)
print(duckdb.__version__)
print(con.execute("SELECT sum(requests) FROM cost_by_tier_day").fetchone()[0])
print(con.execute("SELECT count(*) FROM request_costs").fetchone()[0])
print(con.execute("SELECT count(*) FROM duckdb_columns() WHERE comment IS NOT NULL").fetchone()[0])
"""
    out = subprocess.run([str(py), "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    version, requests, facts, comments = out.stdout.split()
    assert version.startswith("1.")
    assert int(requests) == int(facts) == 49_997
    assert int(comments) == sum(len(t.columns) for t in TABLES)


def clone(base: Path, dst: Path) -> Path:
    """A test's own copy of a module fixture's folder, made by `cp -a`: hard links kept (the
    published file is a link to its version's, a version's facts are links to the lake's files)
    and so are modification times (a day's marts stay current: warehouse/marts.py compares sizes
    and times). Building the folder once per module and copying it per test saves a publish (and
    an ingest and an attribution) per test."""
    subprocess.run(["cp", "-a", str(base), str(dst)], check=True)
    return dst


@pytest.fixture(scope="module")
def two_nights_base(demo_warehouse, tmp_path_factory):
    """A copy of the demo lake published as night 1 (one day), then a second day attributed into
    the lake: the next publish is night 2. Built once; each test works on a clone (`two_nights`)."""
    root = tmp_path_factory.mktemp("two_nights") / "night"
    raw, lake = root / "raw", root / "lake"
    shutil.copytree(demo_warehouse["raw"], raw)
    shutil.copytree(demo_warehouse["lake"], lake)
    wh = root / "warehouse" / "inferledger.duckdb"
    saved = os.environ.pop("DAGSTER_HOME", None)
    try:
        assert main(["publish", "--raw", str(raw), "--lake", str(lake), "--warehouse", str(wh)]) == 0
        day2 = date(2026, 11, 25)
        fleetsim.simulate(raw, day2, requests=3_000, seed=3, invoices=False)
        assert main(["ingest", "--date", str(day2), "--raw", str(raw), "--lake", str(lake)]) == 0
        assert main(["attribute", "--date", str(day2), "--raw", str(raw), "--lake", str(lake)]) == 0
    finally:
        if saved is not None:
            os.environ["DAGSTER_HOME"] = saved
    return root


@pytest.fixture
def two_nights(two_nights_base, tmp_path):
    root = clone(two_nights_base, tmp_path / "night")
    return {"raw": root / "raw", "lake": root / "lake", "warehouse": root / "warehouse" / "inferledger.duckdb",
            "day2": date(2026, 11, 25)}


def _publish_cmd(n):
    return [str(INFERLEDGER), "publish", "--raw", str(n["raw"]), "--lake", str(n["lake"]),
            "--warehouse", str(n["warehouse"])]


def _env():
    return {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}


def test_a_reader_keeps_its_night_while_the_next_one_is_published(two_nights):
    wh = two_nights["warehouse"]
    reader = open_warehouse(wh)  # holds the published file open, as finance's session would
    try:
        night1 = reader.sql("SELECT max(date), sum(requests) FROM cost_by_tier_day").fetchall()
        assert night1 == [(date(2026, 11, 24), 49_997)]
        proc = subprocess.run(_publish_cmd(two_nights), capture_output=True, text=True, timeout=300, env=_env())
        assert proc.returncode == 0, proc.stdout + proc.stderr
        # The open session still sees night 1, whole: marts and request detail agree.
        assert reader.sql("SELECT max(date), sum(requests) FROM cost_by_tier_day").fetchall() == night1
        assert reader.sql("SELECT count(*) FROM request_costs").fetchall() == [(49_997,)]
    finally:
        reader.close()
    # A new connection (a new process, like tomorrow morning's) sees night 2.
    out = subprocess.run([str(INFERLEDGER), "sql", "--warehouse", str(wh), "-c",
                          "SELECT count(DISTINCT date) AS days, max(date) AS last_day FROM cost_by_tier_day"],
                         capture_output=True, text=True, timeout=120, env=_env())
    assert out.returncode == 0, out.stderr
    assert "2026-11-25" in out.stdout
    (days, requests) = sql(wh, "SELECT count(DISTINCT date), sum(requests) FROM cost_by_tier_day")[0]
    assert days == 2 and requests > 49_997


def test_a_publish_killed_midway_leaves_the_previous_warehouse_intact(two_nights):
    wh = two_nights["warehouse"]
    before = (current_version(wh), wh.stat().st_ino, sql(wh, "SELECT * FROM cost_by_tier_day ORDER BY ALL"))
    killed = False
    for _attempt in range(3):
        known = {p.name for p in versions_dir(wh).iterdir()}
        proc = subprocess.Popen(_publish_cmd(two_nights), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=_env())
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            building = [p for p in versions_dir(wh).iterdir() if p.name not in known and not (p / COMPLETE).exists()]
            if building and (building[0] / "request_costs").exists():
                proc.send_signal(signal.SIGKILL)
                killed = True
                break
            time.sleep(0.001)
        proc.wait(timeout=60)
        if killed:
            break
        rollback(wh, before[0])  # the publish finished before we could kill it: try again
    assert killed, "could not catch a publish half way in three attempts"
    # The published file is the previous one, readable and unchanged; the half-built version is not listed.
    assert (current_version(wh), wh.stat().st_ino, sql(wh, "SELECT * FROM cost_by_tier_day ORDER BY ALL")) == before
    half = [p for p in versions_dir(wh).iterdir() if not (p / COMPLETE).exists()]
    assert half and all(p.name not in complete_versions(wh) for p in half)
    # The next publish completes and cleans up what the killed one left.
    proc = subprocess.run(_publish_cmd(two_nights), capture_output=True, text=True, timeout=300, env=_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not [p for p in versions_dir(wh).iterdir() if not (p / COMPLETE).exists()]
    assert sql(wh, "SELECT count(DISTINCT date) FROM cost_by_tier_day") == [(2,)]


def test_versions_are_kept_for_rollback_and_marts_are_identical_on_republish(two_nights, small_inventory):
    wh, lake = two_nights["warehouse"], two_nights["lake"]
    inventory = load_inventory(two_nights["raw"] / "inventory.yaml")
    first = current_version(wh)
    a = publish(lake, inventory, wh, keep=2)
    b = publish(lake, inventory, wh, keep=2)
    assert complete_versions(wh) == sorted([a.version, b.version]) and current_version(wh) == b.version
    assert first in a.pruned + b.pruned
    assert a.rebuilt_days == b.rebuilt_days == []  # nothing changed in the lake: the day marts are reused
    tables = [t.name for t in TABLES if t.name != "publication"]
    va, vb = (versions_dir(wh) / v / "inferledger.duckdb" for v in (a.version, b.version))
    for t in tables:
        q = f"SELECT * FROM {t} ORDER BY ALL"
        assert sql(va, q) == sql(vb, q), t
    rollback(wh, a.version)
    assert current_version(wh) == a.version
    assert sql(wh, "SELECT version FROM publication") == [(a.version,)]
    with pytest.raises(PublishError, match="no complete version 'nope'"):
        rollback(wh, "nope")


def test_nothing_to_publish_is_a_clear_error(tmp_path, small_inventory):
    with pytest.raises(PublishError, match="no attributed day to publish"):
        publish(tmp_path / "lake", small_inventory, tmp_path / "w.duckdb")


def test_a_mart_off_by_a_dollar_fails_the_named_blocking_check_and_publishes_nothing(demo_warehouse, tmp_path):
    raw, lake = tmp_path / "raw", tmp_path / "lake"
    shutil.copytree(demo_warehouse["raw"], raw)
    shutil.copytree(demo_warehouse["lake"], lake)
    wh = tmp_path / "warehouse" / "inferledger.duckdb"
    resources = {"raw": RawInputs(root=str(raw)), "lake": ParquetLake(root=str(lake)),
                 "warehouse": Warehouse(path=str(wh)), "settings": AttributionSettings()}
    instance = dg.DagsterInstance.ephemeral()
    ok = dg.materialize([cost_marts, warehouse_asset], selection=[warehouse_asset], resources=resources,
                        instance=instance)
    assert ok.success
    evaluations = {e.check_name: e for e in ok.get_asset_check_evaluations()}
    assert set(evaluations) == {c.name for c in warehouse_asset.check_specs}
    assert all(e.passed for n, e in evaluations.items() if n != "freshness")
    before = (current_version(wh), sql(wh, "SELECT * FROM cost_by_tier_day ORDER BY ALL"))

    # One request's energy cost off by a dollar in the attributed facts: facts that changed
    # since their marts were built are refused outright...
    day = demo_warehouse["day"]
    facts = pl.read_parquet(lake / "request_costs" / f"date={day}" / "part-0.parquet")
    bump = pl.int_range(pl.len()) == 0
    facts = facts.with_columns(*[pl.when(bump).then(pl.col(c) + 1.0).otherwise(pl.col(c)).alias(c)
                                 for c in ("energy_cost", "direct_cost", "fully_loaded_cost")])
    Lake(lake).write(facts, "request_costs", day)
    stale = dg.materialize([cost_marts, warehouse_asset], selection=[warehouse_asset], resources=resources,
                           instance=instance, raise_on_error=False)
    assert not stale.success
    assert f"the marts of {day} (stale)" in stale.get_step_failure_events()[0].event_specific_data.error.message
    # ... and once the marts follow the facts (the cost_marts asset run on its own), they no
    # longer add up to the sources: the named check fails the publish.
    assert dg.materialize([cost_marts], partition_key=str(day), resources=resources, instance=instance).success
    bad = dg.materialize([cost_marts, warehouse_asset], selection=[warehouse_asset], resources=resources,
                         instance=instance, raise_on_error=False)
    assert not bad.success
    failed = {e.check_name: e for e in bad.get_asset_check_evaluations() if not e.passed}
    assert "marts_equal_sources" in failed
    meta = failed["marts_equal_sources"].metadata
    assert meta["unexpected_count"].value == 1
    (example,) = meta["examples"].value
    assert example["component"] == "energy_cost" and example["difference"] == pytest.approx(1.0)
    assert "marts_equal_request_facts" not in failed  # the marts do equal the (bumped) facts
    message = bad.get_step_failure_events()[0].event_specific_data.error.message
    assert "marts_equal_sources" in message and "the published warehouse is unchanged" in message
    # Finance still sees the previous night, exactly.
    assert (current_version(wh), sql(wh, "SELECT * FROM cost_by_tier_day ORDER BY ALL")) == before
    assert not [p for p in versions_dir(wh).iterdir() if not (p / COMPLETE).exists()]


@pytest.fixture(scope="module")
def kept_versions_base(demo_warehouse, tmp_path_factory):
    """The demo lake (copied) published twice: version a kept, version b published. Built once;
    each test works on a clone (`kept_versions`)."""
    root = tmp_path_factory.mktemp("kept_versions") / "kept"
    lake = root / "lake"
    shutil.copytree(demo_warehouse["lake"], lake)
    wh = root / "warehouse" / "inferledger.duckdb"
    inventory = load_inventory(demo_warehouse["raw"] / "inventory.yaml")
    a = publish(lake, inventory, wh)
    b = publish(lake, inventory, wh)
    return root, a.version, b.version


@pytest.fixture
def kept_versions(kept_versions_base, tmp_path):
    base, a, b = kept_versions_base
    wh = clone(base, tmp_path / "kept") / "warehouse" / "inferledger.duckdb"
    return {"warehouse": wh, "a": a, "b": b, "a_dir": versions_dir(wh) / a, "b_dir": versions_dir(wh) / b}


def _rollback_cli(wh, version):
    return subprocess.run([str(INFERLEDGER), "publish", "--warehouse", str(wh), "--rollback", version],
                          capture_output=True, text=True, timeout=120, env=_env())


def test_complete_records_the_size_and_digest_of_every_file_of_the_version(kept_versions):
    for vdir in (kept_versions["a_dir"], kept_versions["b_dir"]):
        recorded = json.loads((vdir / COMPLETE).read_text())
        assert recorded["version"] == vdir.name
        files = [vdir / "inferledger.duckdb", *sorted((vdir / "request_costs").glob("*.parquet"))]
        assert sorted(recorded["files"]) == sorted(f.relative_to(vdir).as_posix() for f in files) and len(files) == 2
        for f in files:
            want = recorded["files"][f.relative_to(vdir).as_posix()]
            assert (want["bytes"], want["sha256"]) == (f.stat().st_size, hashlib.sha256(f.read_bytes()).hexdigest())
        # The tables and columns the version was published with (what a rollback judges it by, not this release's).
        assert recorded["tables"] == {t.name: list(t.columns) for t in TABLES}
    out = _rollback_cli(kept_versions["warehouse"], kept_versions["a"])
    assert out.returncode == 0 and not out.stderr, out.stdout + out.stderr
    assert current_version(kept_versions["warehouse"]) == kept_versions["a"]


@pytest.mark.parametrize("tamper, words", [
    ("overwrite_db", "inferledger.duckdb: changed since version"),
    ("replace_parquet", "changed since version"),
    ("add_parquet", "date=2026-11-23.parquet: not a file of version"),
    ("remove_parquet", "missing, unlike when version"),
    ("legacy_not_duckdb", "does not open as a DuckDB file"),
])
def test_a_rollback_to_a_kept_version_whose_files_changed_is_refused(kept_versions, tamper, words):
    """Issue 19: a statement overwrote a kept version's DuckDB file and a rollback published it."""
    wh, a_dir = kept_versions["warehouse"], kept_versions["a_dir"]
    facts = next((a_dir / "request_costs").glob("*.parquet"))
    if tamper == "overwrite_db":  # what `COPY (SELECT 'x') TO '<version>/inferledger.duckdb'` did, in place
        with open(a_dir / "inferledger.duckdb", "r+b") as f:
            f.write(b"x\n")
    elif tamper == "replace_parquet":  # a new file under the name (the lake's, shared by link, untouched)
        pl.DataFrame({"x": [42]}).write_parquet(a_dir / "tmp.parquet.new")
        os.replace(a_dir / "tmp.parquet.new", facts)
    elif tamper == "add_parquet":  # the view's glob would read it
        shutil.copy(facts, facts.with_name("date=2026-11-23.parquet"))
    elif tamper == "remove_parquet":
        facts.unlink()
    else:  # a version from before digests, its file not DuckDB
        (a_dir / COMPLETE).write_text(f"{kept_versions['a']}\n")
        (a_dir / "inferledger.duckdb").unlink()
        (a_dir / "inferledger.duckdb").write_text("x\n")
    before = (current_version(wh), wh.stat().st_ino)
    out = _rollback_cli(wh, kept_versions["a"])
    assert out.returncode == 1, out.stdout + out.stderr
    said = " ".join(out.stderr.split())
    assert words in said and "not rolled back; the published warehouse is unchanged" in said, said
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert (current_version(wh), wh.stat().st_ino) == before == (kept_versions["b"], before[1])
    with pytest.raises(PublishError, match="not rolled back"):
        rollback(wh, kept_versions["a"])


def test_a_version_published_before_digests_rolls_back_after_an_open_check_with_a_warning(kept_versions):
    wh, a = kept_versions["warehouse"], kept_versions["a"]
    (kept_versions["a_dir"] / COMPLETE).write_text(f"{a}\n")  # as publishes before this change wrote it
    out = _rollback_cli(wh, a)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "warning:" in out.stderr and "published before digests were recorded" in " ".join(out.stderr.split())
    assert current_version(wh) == a and sql(wh, "SELECT version FROM publication") == [(a,)]
