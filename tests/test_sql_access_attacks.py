"""Issue 19, holes 1-7: the attacks that worked on `inferledger sql`, run again through the real
CLI on a copy of the demo warehouse (its lake copied, published afresh: the version's Parquet
files are hard links to the copy's lake, as in production). Each is refused, and the file
system says nothing outside the export directory was written, replaced or deleted (digests of
every file under the test's folder before and after) and nothing secret was read.

Layout of one test's folder (`ledger`):

    lake/  raw/  warehouse/      the copy; raw/ holds a request log with a secret prompt
    secret.txt                   a file no statement may read
    keep/keep.txt                a file no statement may delete
    spill/                       INFERLEDGER_DUCKDB_TEMP of the sessions
    home/finance/                the finance user's HOME and working directory
    home/finance/exports/        the export directory (the only place COPY writes)
"""

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import polars as pl
import pytest

from lake.inventory import load_inventory
from tests.test_finance_queries import QUESTIONS
from warehouse.access import RefusedStatement, check_statement, execute, open_finance, open_warehouse
from warehouse.connection import DuckDBLimits
from warehouse.publish import publish
from warehouse.versions import versions_dir

INFERLEDGER = Path(sys.executable).parent / "inferledger"
SECRET = "TOPSECRET-7d1f"


@pytest.fixture
def ledger(demo_warehouse, tmp_path):
    lake = tmp_path / "lake"
    shutil.copytree(demo_warehouse["lake"], lake)  # with modification times: the marts stay current
    wh = tmp_path / "warehouse" / "inferledger.duckdb"
    publish(lake, load_inventory(demo_warehouse["raw"] / "inventory.yaml"), wh)
    (vdir,) = versions_dir(wh).iterdir()
    day = demo_warehouse["day"]
    facts = lake / "request_costs" / f"date={day}" / "part-0.parquet"
    published = vdir / "request_costs" / f"date={day}.parquet"
    assert published.stat().st_ino == facts.stat().st_ino  # the hard link the attacks aim at
    requests = tmp_path / "raw" / str(day) / "site-a" / "requests"
    requests.mkdir(parents=True)
    (requests / "node-1.jsonl").write_text(f'{{"prompt": "{SECRET} prompt text", "output_tokens": 7}}\n')
    (tmp_path / "secret.txt").write_text(f"{SECRET}\n")
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "keep.txt").write_text("keep me\n")
    (tmp_path / "spill").mkdir()
    home = tmp_path / "home" / "finance"
    (home / "exports").mkdir(parents=True)
    return {"root": tmp_path, "lake": lake, "warehouse": wh, "version_dir": vdir, "facts": facts,
            "published": published, "home": home, "exports": home / "exports", "raw": tmp_path / "raw",
            "shared_raw": demo_warehouse["raw"]}


def env_for(ledger, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "INFERLEDGER_SQL_TIMEOUT_S")}
    env.update(HOME=str(ledger["home"]), INFERLEDGER_DUCKDB_TEMP=str(ledger["root"] / "spill"),
               INFERLEDGER_LAKE=str(ledger["lake"]), INFERLEDGER_RAW=str(ledger["raw"]),
               INFERLEDGER_EXPORT_DIR="exports", INFERLEDGER_SECRET_ENV=SECRET, **extra)
    return env


def sql(ledger, *args, timeout=120, **env) -> subprocess.CompletedProcess:
    return subprocess.run([str(INFERLEDGER), "sql", "--warehouse", str(ledger["warehouse"]), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=ledger["home"],
                          env=env_for(ledger, **env))


def tree(root: Path, skip: Path) -> dict[str, tuple]:
    """Every path under `root` but `skip`: kind, size and SHA-256 (files) or target (links)."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        d = Path(dirpath)
        if d == skip or skip in d.parents:
            continue
        for name in dirs + files:
            p = d / name
            if p == skip:
                continue
            if p.is_symlink():
                out[str(p.relative_to(root))] = ("link", os.readlink(p))
            elif p.is_file():
                out[str(p.relative_to(root))] = ("file", p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
            else:
                out[str(p.relative_to(root))] = ("dir",)
    return out


def assert_refused(out: subprocess.CompletedProcess, *words: str, code: int = 2) -> None:
    said = " ".join(out.stderr.split())
    assert out.returncode == code, out.stdout + out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    for w in words:
        assert w in said, said
    assert SECRET not in out.stdout + out.stderr


# -- Hole 1: EXPLAIN ANALYZE runs what it explains --------------------------------------------

def test_1_explain_analyze_of_a_copy_is_refused_and_writes_nothing(ledger):
    before = tree(ledger["root"], ledger["exports"])
    db = ledger["version_dir"] / "inferledger.duckdb"
    for statement in ["EXPLAIN ANALYZE COPY (SELECT 'x') TO '../../anywhere.csv'",
                      f"EXPLAIN ANALYZE COPY (SELECT 'x') TO '{db}' (FORMAT csv)",
                      "EXPLAIN (FORMAT json) ANALYZE COPY (SELECT 'x') TO '../../anywhere.csv'",
                      "EXPLAIN ANALYZE /* SELECT */ COPY (SELECT 'x') TO 'exports/../../../anywhere.csv'"]:
        out = sql(ledger, "-c", statement)
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stdout + out.stderr
        assert "refused" in out.stderr, out.stderr
    assert tree(ledger["root"], ledger["exports"]) == before
    assert not list(ledger["exports"].iterdir())
    # EXPLAIN (ANALYZE) of a query still runs: it only reads.
    out = sql(ledger, "-c", "EXPLAIN ANALYZE SELECT count(*) FROM request_costs")
    assert out.returncode == 0, out.stderr


# -- Hole 2: a comment or another string form fools the COPY destination check ---------------

def test_2_comments_and_other_string_forms_do_not_move_a_copy_out_of_exports(ledger):
    before = tree(ledger["root"], ledger["exports"])
    facts, published = ledger["facts"], ledger["published"]
    attacks = [
        "COPY (SELECT 42) TO '../../x.csv' /* TO 'exports/a.csv' */",
        "COPY (SELECT 42) TO '../../x.csv' -- TO 'exports/a.csv'",
        "COPY (SELECT 42) TO $$../../x.csv$$ /* TO 'exports/a.csv' */",
        "COPY (SELECT 42) TO $t$../../x.csv$t$ -- TO 'exports/a.csv'",
        "COPY (SELECT 42) TO 'exports/'\n'../../x.csv'",  # adjacent literals concatenate
        "COPY (SELECT 42) TO E'exports/\\x2e./../x.csv'",
        f"COPY (SELECT 42 AS x) TO '{facts}' (FORMAT parquet) /* TO 'exports/a.csv' */",
        f"COPY (SELECT 42 AS x) TO '{published}' (FORMAT parquet, USE_TMP_FILE false)",
        f"COPY (SELECT 42 AS x) TO 'exports/a.parquet' (FORMAT parquet) ; COPY (SELECT 1) TO '{ledger['root']}/x.csv'",
    ]
    for statement in attacks:
        out = sql(ledger, "-c", statement)
        assert out.returncode == 2, statement + "\n" + out.stdout + out.stderr
        assert "refused" in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert tree(ledger["root"], ledger["exports"]) == before
    assert not list(ledger["exports"].iterdir())  # the batch's first COPY did not run either
    assert pl.read_parquet(facts).height == 49_997


def test_2_published_files_cannot_be_overwritten_by_any_copy(ledger):
    """Every way a COPY could name a published file: the version's Parquet (hard link to the
    lake's), the lake's, the version's and the published DuckDB file, their WAL."""
    before = tree(ledger["root"], ledger["exports"])
    wh, vdir = ledger["warehouse"], ledger["version_dir"]
    targets = [ledger["published"], ledger["facts"], vdir / "inferledger.duckdb", wh, Path(f"{wh}.wal"),
               vdir / "request_costs"]
    options = ["", "(FORMAT parquet)", "(FORMAT csv, USE_TMP_FILE false)", "(FORMAT parquet, OVERWRITE)",
               "(FORMAT parquet, OVERWRITE_OR_IGNORE)", "(FORMAT parquet, PER_THREAD_OUTPUT)",
               "(FORMAT csv, APPEND)"]
    for t in targets:  # every option, in-process, on the production check
        for o in options:
            (s,) = duckdb.extract_statements(f"COPY (SELECT 1 AS x) TO '{t}' {o}")
            with pytest.raises(RefusedStatement):
                check_statement(s, ledger["exports"])
    for t in targets:  # through the CLI, with the option that writes in place
        out = sql(ledger, "-c", f"COPY (SELECT 1 AS x) TO '{t}' (FORMAT parquet, USE_TMP_FILE false)")
        assert out.returncode == 2 and "refused" in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert tree(ledger["root"], ledger["exports"]) == before
    assert pl.read_parquet(ledger["facts"]).height == 49_997


# -- Hole 3: PARTITION_BY with FILENAME_PATTERN writes outside exports -------------------------

def test_3_partitioned_copies_and_file_patterns_are_refused(ledger):
    before = tree(ledger["root"], ledger["exports"])
    for statement in [
        "COPY (SELECT 1 AS p, 2 AS q) TO 'exports/e' (FORMAT csv, PARTITION_BY (p), "
        "FILENAME_PATTERN '../../../../x_{i}')",
        "COPY (SELECT 1 AS p, 2 AS q) TO 'exports/e' (FORMAT csv, PARTITION_BY (p))",
        "COPY (SELECT 1 AS p) TO 'exports/e' (FORMAT csv, PER_THREAD_OUTPUT, FILENAME_PATTERN '../../x_{i}')",
        "COPY (SELECT 1 AS p) TO 'exports/e' WITH (FORMAT csv, FILE_SIZE_BYTES 1)",
    ]:
        out = sql(ledger, "-c", statement)
        assert_refused(out, "is not allowed here")
    assert tree(ledger["root"], ledger["exports"]) == before
    assert not list(ledger["exports"].iterdir())


# -- Hole 4: OVERWRITE follows a symbolic link inside exports and deletes outside ---------------

def test_4_symbolic_links_in_or_as_the_export_directory_stop_everything(ledger):
    exports, keep = ledger["exports"], ledger["root"] / "keep"
    (exports / "sub").mkdir()
    (exports / "sub" / "link").symlink_to(keep)
    (exports / "f.csv").symlink_to(keep / "keep.txt")
    before = tree(ledger["root"], Path("/nonexistent"))  # exports included: nothing may change there either
    for statement in ["COPY (SELECT 1 AS a) TO 'exports' (OVERWRITE)",
                      "COPY (SELECT 1 AS a, 2 AS b) TO 'exports/sub' (FORMAT csv, OVERWRITE, PARTITION_BY (a))",
                      "COPY (SELECT 1 AS a) TO 'exports/f.csv'",
                      "COPY (SELECT 1 AS a) TO 'exports/sub/link/new.csv'",
                      "COPY (SELECT 1 AS a) TO 'exports/new.csv'",
                      "SELECT * FROM read_text('exports/sub/link/keep.txt')"]:
        out = sql(ledger, "-c", statement)
        assert out.returncode == 2 and "refused" in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert "symbolic links" in out.stderr
    assert tree(ledger["root"], Path("/nonexistent")) == before
    assert (keep / "keep.txt").read_text() == "keep me\n"
    # The export directory itself a link: refused before anything opens.
    shutil.rmtree(exports)
    exports.symlink_to(keep)
    out = sql(ledger, "-c", "COPY (SELECT 1 AS a) TO 'exports/x.csv'")
    assert_refused(out, "is a symbolic link")
    assert sorted(p.name for p in keep.iterdir()) == ["keep.txt"]


# -- Hole 5: any readable file, the raw prompts, extension downloads --------------------------

def test_5_nothing_outside_the_warehouse_and_exports_is_readable(ledger):
    before = tree(ledger["root"], ledger["exports"])
    root, raw = ledger["root"], ledger["raw"]
    attacks = [
        "SELECT content FROM read_text('/etc/shadow')",
        "SELECT content FROM read_text('/etc/passwd')",
        f"SELECT content FROM read_text('{root}/secret.txt')",
        "SELECT content FROM read_text('../../secret.txt')",
        "SELECT content FROM read_text('exports/../../../secret.txt')",
        "SELECT * FROM glob('/root/*')",
        f"SELECT * FROM glob('{root}/*')",
        "SELECT content FROM read_text('/proc/self/environ')",
        f"SELECT * FROM read_json('{raw}/*/*/requests/*.jsonl')",
        f"SELECT * FROM read_json_auto('{ledger['shared_raw']}/*/*/requests/*.jsonl')",
        f"SELECT * FROM read_csv('{root}/secret.txt')",
        f"SELECT * FROM read_parquet('{ledger['lake']}/requests/*/*/*.parquet')",
        f"SELECT count(*) FROM read_parquet('{ledger['version_dir']}/request_costs/*.parquet')",
        "SELECT * FROM read_csv('http://127.0.0.1:9/x.csv')",
        f"ATTACH '{root}/other.duckdb' AS o",
        "INSTALL httpfs",
        "LOAD httpfs",
    ]
    out = sql(ledger, "-c", attacks[0])
    assert_refused(out, "/etc/shadow", "outside what finance access may read or write")
    # The rest in one interactive session (one process), each statement on its own.
    proc = subprocess.run([str(INFERLEDGER), "sql", "--warehouse", str(ledger["warehouse"])],
                          input="".join(f"{a};\n" for a in attacks) + "SELECT * FROM sqlite_scan('x.db', 't');\n",
                          capture_output=True, text=True, timeout=120, cwd=ledger["home"], env=env_for(ledger))
    said = proc.stderr.strip().splitlines()
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert len(said) == len(attacks) + 1 and all(line.startswith("refused:") for line in said[:-1]), proc.stderr
    assert "sqlite_scan" in said[-1] and "not in the catalog" in said[-1]  # not downloaded: autoinstall is off
    assert SECRET not in proc.stdout + proc.stderr and "root:" not in proc.stdout
    assert tree(ledger["root"], ledger["exports"]) == before  # no ~/.duckdb/extensions, no other.duckdb
    # What finance reads still reads: the marts and every request, through the sandbox.
    out = sql(ledger, "-c", "SELECT count(*) AS n, sum(fully_loaded_cost) > 0 AS costed FROM request_costs")
    assert out.returncode == 0 and "49,997" in out.stdout, out.stderr


# -- Hole 6: --out overwrites any path in place -----------------------------------------------

def test_6_out_writes_only_new_files_outside_the_lake_raw_and_warehouse(ledger):
    home = ledger["home"]
    (home / "answer.csv").write_text("mine\n")
    (home / "link.csv").symlink_to(ledger["root"] / "keep" / "keep.txt")
    os.link(ledger["facts"], home / "linked.parquet")  # a third name for the published facts
    before = tree(ledger["root"], ledger["exports"])
    q = "SELECT 42 AS x"
    for out_path, force, words in [
        (ledger["facts"], True, "inside"),
        (ledger["published"], True, "inside"),
        (ledger["version_dir"] / "inferledger.duckdb.parquet", True, "inside"),
        (ledger["lake"] / "marts" / "new.parquet", False, "inside"),
        (ledger["raw"] / "x.csv", False, "inside"),
        (ledger["root"] / "spill" / "x.csv", False, "inside"),
        (home / "answer.csv", False, "exists"),
        (home / "link.csv", True, "symbolic link"),
        (home / "linked.parquet", True, "hard-linked"),
        (home / "answer.txt", False, ".csv or .parquet"),
    ]:
        out = sql(ledger, "--out", str(out_path), *(["--force"] if force else []), "-c", q)
        assert_refused(out, "--out", words)
    # The lake found through --lake as well as $INFERLEDGER_LAKE; a path through a symbolic link
    # to the lake is the lake.
    (home / "lake-link").symlink_to(ledger["lake"])
    out = sql(ledger, "--lake", str(ledger["lake"]), "--out", str(home / "lake-link" / "request_costs" / "x.parquet"),
              "-c", q)
    assert_refused(out, "inside")
    (home / "lake-link").unlink()
    assert tree(ledger["root"], ledger["exports"]) == before
    # A new file is written; an existing one is replaced only with --force, as a new inode.
    out = sql(ledger, "--out", "exports/new.csv", "-c", q)
    assert out.returncode == 0 and pl.read_csv(ledger["exports"] / "new.csv")["x"].to_list() == [42], out.stderr
    out = sql(ledger, "--out", "answer.csv", "--force", "-c", q)
    assert out.returncode == 0 and pl.read_csv(home / "answer.csv")["x"].to_list() == [42], out.stderr
    assert not [p for p in home.iterdir() if p.name.endswith(".tmp")]


# -- Hole 7: no limits: endless queries, Ctrl-C, SET memory_limit ------------------------------

ENDLESS = "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t) SELECT count(*) FROM t"


def test_7_an_endless_query_stops_at_the_timeout(ledger):
    started = time.monotonic()
    out = sql(ledger, "--timeout", "2", "-c", ENDLESS)
    took = time.monotonic() - started
    assert_refused(out, "stopped at the statement timeout (2 s)", code=1)
    assert 2 <= took < 20, took
    started = time.monotonic()
    out = sql(ledger, "-c", ENDLESS, INFERLEDGER_SQL_TIMEOUT_S="1.5")
    assert_refused(out, "statement timeout (1.5 s)", code=1)
    assert time.monotonic() - started < 20
    out = sql(ledger, "--timeout", "soon", "-c", "SELECT 1")
    assert_refused(out, "timeout 'soon'", code=1)
    assert not list((ledger["root"] / "spill").iterdir())  # the session's spill folder is removed


def _wait_for_session(ledger, proc) -> None:
    """Until the session is open (its private spill folder exists), then a little more."""
    deadline = time.monotonic() + 60
    while not list((ledger["root"] / "spill").iterdir()):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    time.sleep(0.5)


def test_7_ctrl_c_cancels_a_running_statement_at_once(ledger):
    proc = subprocess.Popen([str(INFERLEDGER), "sql", "--warehouse", str(ledger["warehouse"]), "-c", ENDLESS],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ledger["home"],
                            env=env_for(ledger))
    _wait_for_session(ledger, proc)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    took = time.monotonic() - sent
    assert proc.returncode == 130, stdout + stderr
    assert "cancelled" in stderr and "Traceback" not in stderr, stderr
    assert took < 3, took
    assert not list((ledger["root"] / "spill").iterdir())


def test_7_ctrl_c_in_the_interactive_session_returns_to_the_prompt(ledger):
    proc = subprocess.Popen([str(INFERLEDGER), "sql", "--warehouse", str(ledger["warehouse"])], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ledger["home"],
                            env=env_for(ledger))
    proc.stdin.write(ENDLESS + ";\n")
    proc.stdin.flush()
    _wait_for_session(ledger, proc)
    proc.send_signal(signal.SIGINT)
    proc.stdin.write("SELECT 41 + 1 AS answer;\n.quit\n")
    proc.stdin.flush()
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stdout + stderr
    assert "cancelled" in stderr and "Traceback" not in stderr, stderr
    assert "42" in stdout, stdout + stderr


def test_7_memory_and_threads_are_the_operators_not_the_users(ledger):
    out = sql(ledger, "-c", "SELECT current_setting('memory_limit') AS m, current_setting('threads') AS t",
              INFERLEDGER_DUCKDB_MEMORY_LIMIT="1GB", INFERLEDGER_SQL_THREADS="1")
    assert out.returncode == 0 and "953.6 MiB" in out.stdout and "│ 1 " in out.stdout, out.stdout + out.stderr
    for statement in ["SET memory_limit = '100TB'", "RESET memory_limit", "SET threads = 64", "PRAGMA threads = 64",
                      "SET GLOBAL enable_external_access = true", "SET VARIABLE x = 1"]:
        assert_refused(sql(ledger, "-c", statement), "settings are fixed in finance sessions")


def test_a_large_query_spills_inside_the_sandbox(ledger):
    """The memory limit holds and a query larger than it spills to the session's own folder
    (allowed by DuckDB because it is the temp_directory)."""
    out = sql(ledger, "-c", "SELECT count(DISTINCT md5(range::VARCHAR)) AS n FROM range(3000000)",
              INFERLEDGER_DUCKDB_MEMORY_LIMIT="64MB", INFERLEDGER_SQL_THREADS="1")
    assert out.returncode == 0 and "3,000,000" in out.stdout, out.stdout + out.stderr


# -- One line for what a user can get wrong ---------------------------------------------------

def test_not_a_warehouse_and_bad_sql_are_one_line(ledger):
    notes = ledger["home"] / "notes.txt"
    notes.write_text("not a database\n")
    for path, words in [(notes, "cannot open it as a DuckDB warehouse"),
                        (ledger["home"], "a directory, not the warehouse file"),
                        (ledger["home"] / "missing.duckdb", "no published warehouse here")]:
        out = subprocess.run([str(INFERLEDGER), "sql", "--warehouse", str(path), "-c", "SELECT 1"], capture_output=True,
                             text=True, timeout=120, cwd=ledger["home"], env=env_for(ledger))
        assert_refused(out, str(path), words, code=1)
    assert_refused(sql(ledger, "-c", "SELECT nope FROM cost_by_tier_day"), "nope", code=1)
    assert_refused(sql(ledger, "-c", "SELEC 1"), "syntax error", code=2)
    assert_refused(sql(ledger, "-c", "SELECT '[/red]' || nope"), "nope", code=1)  # no markup accident


# -- What finance asks still works in the sandbox ---------------------------------------------

def test_every_finance_question_answers_the_same_in_the_sandbox(demo_warehouse, tmp_path):
    # One after the other: in one process DuckDB shares a file's instance, and refuses a second
    # connection with another configuration (so the sandbox never leaks into other connections).
    internal = open_warehouse(demo_warehouse["warehouse"])
    try:
        want = {n: execute(internal, q, tmp_path / "exports")[0].frame for n, (_, q) in QUESTIONS.items()}
    finally:
        internal.close()
    with open_finance(demo_warehouse["warehouse"], tmp_path / "exports",
                      limits=DuckDBLimits(temp_dir=tmp_path / "spill")) as session:
        for n, (title, question) in QUESTIONS.items():
            (got,) = session.execute(question)
            assert got.frame.equals(want[n]), f"{n}. {title}"


# -- The sandbox alone (layer 1), without the allow-list --------------------------------------

def test_the_sandbox_alone_refuses_reads_writes_and_settings(ledger, monkeypatch):
    monkeypatch.chdir(ledger["home"])
    before = tree(ledger["root"], ledger["exports"])
    root = ledger["root"]
    with open_finance(ledger["warehouse"], "exports", limits=DuckDBLimits(temp_dir=root / "spill")) as session:
        con = session.con
        for statement in [
            "EXPLAIN ANALYZE COPY (SELECT 'x') TO '../../anywhere.csv'",
            f"COPY (SELECT 42) TO '{root}/x.csv'",
            f"COPY (SELECT 42 AS x) TO '{ledger['facts']}' (FORMAT parquet, USE_TMP_FILE false)",
            f"COPY (SELECT 42 AS x) TO '{ledger['published']}' (FORMAT parquet)",
            "COPY (SELECT 1 AS p, 2 AS q) TO 'exports/e' (FORMAT csv, PARTITION_BY (p), "
            "FILENAME_PATTERN '../../../../x_{i}')",
            f"SELECT * FROM read_text('{root}/secret.txt')",
            "SELECT * FROM glob('/root/*')",
            f"SELECT * FROM read_json('{ledger['raw']}/*/*/requests/*.jsonl')",
            f"ATTACH '{root}/other.duckdb' AS o",
            "INSTALL httpfs",
        ]:
            with pytest.raises(duckdb.PermissionException):
                con.execute(statement).fetchall()
        for statement in ["SET memory_limit = '100TB'", "SET enable_external_access = true",
                          "SET allowed_directories = ['/']"]:
            with pytest.raises(duckdb.InvalidInputException, match="configuration has been locked"):
                con.execute(statement)
        assert con.execute("SELECT count(*) FROM request_costs").fetchall() == [(49_997,)]
    assert tree(ledger["root"], ledger["exports"]) == before


def test_the_sandbox_alone_would_write_a_published_file_in_place(ledger, monkeypatch):
    """Why the allow-list stays: DuckDB lets a statement write what it lets it read, so
    COPY ... (USE_TMP_FILE false) to one of the version's Parquet files (a hard link to the
    lake's) would pass the sandbox. Layer 2 refuses it (test_2_...); should DuckDB ever refuse
    it itself, this test says so."""
    monkeypatch.chdir(ledger["home"])
    limits = DuckDBLimits(temp_dir=ledger["root"] / "spill")
    with open_finance(ledger["warehouse"], "exports", limits=limits) as session:
        session.con.execute(f"COPY (SELECT 42 AS x) TO '{ledger['published']}' (FORMAT parquet, USE_TMP_FILE false)")
    assert pl.read_parquet(ledger["facts"]).columns == ["x"]  # the lake's file, through the hard link
