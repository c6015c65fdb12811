"""`inferledger sql`: read-only finance access to the published warehouse."""

import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from pipelines.cli import main

INFERLEDGER = Path(sys.executable).parent / "inferledger"


def run_sql(demo_warehouse, *args, cwd=None):
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    return subprocess.run([str(INFERLEDGER), "sql", "--warehouse", str(demo_warehouse["warehouse"]), *args],
                          capture_output=True, text=True, timeout=120, env=env, cwd=cwd)


def test_a_query_prints_a_readable_table(demo_warehouse):
    out = run_sql(demo_warehouse, "-c", "SELECT tier, requests, fully_loaded_cost FROM cost_by_tier_day ORDER BY tier")
    assert out.returncode == 0, out.stderr
    assert "tier" in out.stdout and "fully_loaded_cost" in out.stdout
    # The light demo day (50,000 requests): premium 20,000 - 1 negative_value, standard 28,500 - 1
    # conflicting duplicate, batch 1,500 - 1 malformed line.
    assert "19,999" in out.stdout and "1,499" in out.stdout and "28,499" in out.stdout  # thousands separators
    assert "3 row(s)" in out.stdout


@pytest.mark.parametrize("statement, refusal", [
    ("INSERT INTO dim_sites SELECT * FROM dim_sites", "INSERT writes rows"),
    ("CREATE TABLE mine AS SELECT 1", "CREATE makes a table"),
    ("CREATE TEMP TABLE mine AS SELECT 1", "CREATE makes a table"),
    ("ATTACH '{tmp}/other.duckdb' AS other", "ATTACH opens (or creates) another database file"),
    ("COPY (SELECT * FROM dim_sites) TO '{tmp}/outside.csv'", "outside the export directory"),
    ("COPY dim_sites TO '../escape.csv'", "outside the export directory"),
    ("DROP TABLE dim_sites", "DROP removes an object"),
    ("UPDATE dim_sites SET kind = 'x'", "UPDATE changes rows"),
    ("SET enable_external_access = true", "settings are fixed in finance sessions"),
    ("SET TimeZone = 'Europe/Paris'", "times are UTC"),  # lock_configuration: no SET at all
    ("EXPLAIN ANALYZE COPY (SELECT 1) TO '{tmp}/outside.csv'", "EXPLAIN ANALYZE runs what it explains"),
    ("EXPORT DATABASE '{tmp}/dump'", "EXPORT DATABASE writes files"),
    ("SELECT 1; DELETE FROM dim_sites", "DELETE removes rows"),
])
def test_statements_that_write_are_refused_with_a_clear_message(demo_warehouse, tmp_path, statement, refusal):
    exports = tmp_path / "exports"
    out = run_sql(demo_warehouse, "--export-dir", str(exports), "-c", statement.format(tmp=tmp_path), cwd=tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "refused" in out.stderr and refusal in " ".join(out.stderr.split())
    assert not (tmp_path / "other.duckdb").exists() and not (tmp_path / "outside.csv").exists()
    assert not (tmp_path / "dump").exists() and not exports.exists()
    assert "row(s)" not in out.stdout  # nothing ran, not even the SELECT before the DELETE


def test_copy_into_the_export_directory_and_out_files(demo_warehouse, tmp_path):
    exports = tmp_path / "exports"
    out = run_sql(demo_warehouse, "--export-dir", str(exports), "-c",
                  f"COPY (SELECT tier, requests FROM cost_by_tier_day ORDER BY tier) TO '{exports}/tiers.csv'")
    assert out.returncode == 0, out.stderr
    assert pl.read_csv(exports / "tiers.csv").rows() == [("batch", 1_499), ("premium", 19_999), ("standard", 28_499)]
    for suffix in ("csv", "parquet"):
        target = tmp_path / f"by_tier.{suffix}"
        assert main(["sql", "--warehouse", str(demo_warehouse["warehouse"]), "--out", str(target), "-c",
                     "SELECT tier, requests FROM cost_by_tier_day ORDER BY tier"]) == 0
        frame = pl.read_csv(target) if suffix == "csv" else pl.read_parquet(target)
        assert frame["requests"].to_list() == [1_499, 19_999, 28_499]


def test_a_sql_file_and_errors_that_name_the_problem(demo_warehouse, tmp_path, capsys):
    f = tmp_path / "q.sql"
    f.write_text("-- two statements\nSELECT count(*) AS tiers FROM dim_tiers;\n"
                 "SELECT sum(requests) AS n FROM cost_by_tier_day;\n")
    assert main(["sql", "--warehouse", str(demo_warehouse["warehouse"]), str(f)]) == 0
    shown = capsys.readouterr().out
    assert "tiers" in shown and "49,997" in shown
    assert main(["sql", "--warehouse", str(demo_warehouse["warehouse"]), "-c",
                 "SELECT nope FROM cost_by_tier_day"]) == 1
    assert "nope" in capsys.readouterr().err
    assert main(["sql", "--warehouse", str(tmp_path / "missing.duckdb"), "-c", "SELECT 1"]) == 1
    assert "no published warehouse here" in capsys.readouterr().err


def test_interactive_session(demo_warehouse):
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    proc = subprocess.run([str(INFERLEDGER), "sql", "--warehouse", str(demo_warehouse["warehouse"])],
                          input=".tables\nSELECT count(*) AS n\nFROM dim_pools;\n"
                                "INSERT INTO dim_pools SELECT * FROM dim_pools;\n.quit\n",
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "cost_by_tier_day" in proc.stdout and "request_costs" in proc.stdout
    assert "│ 4 │" in proc.stdout.replace(" ", "").replace("│4│", "│ 4 │")
    assert "refused" in proc.stderr
