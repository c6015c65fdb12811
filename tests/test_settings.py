"""Settings (settings/__init__.py): declared once, read from the environment once by an entry point,
handed down as values; the documented table is the declared one."""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

import settings as st
from pipelines.location import code_location

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = [p for d in ("settings", "pipelines", "warehouse", "lake", "transforms", "fleetsim", "deploy")
           for p in sorted((ROOT / d).rglob("*.py"))]
# Where the environment may be read, and why: the entry points resolve the settings
# (`resolve(os.environ)`), the library presets are set before Polars and GX load, and Dagster's
# own DAGSTER_HOME picks the instance (and is handed to worker processes).
READS_ENVIRONMENT = {
    "settings/__init__.py": "preset_library_environment",
    "pipelines/definitions.py": "the code location's settings",
    "pipelines/cli/__init__.py": "the command line's settings",
    "pipelines/suites.py": "python -m pipelines.suites",
    "pipelines/runner.py": "DAGSTER_HOME",
    "pipelines/cli/runs.py": "DAGSTER_HOME, named in a failure",
    "pipelines/cli/backfill.py": "DAGSTER_HOME, handed to the workers",
}
# Not settings: an object store's own credentials (AZURE_STORAGE_*), read where its client is made,
# as PyArrow and Polars read the AWS_* ones themselves (docs/deploy.md, "The lake on object storage").
STORE_CREDENTIALS = {"lake/object_stores.py"}


def _reads_environment(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb") \
                and isinstance(node.value, ast.Name) and node.value.id == "os":
            return True
    return False


def test_every_variable_the_code_names_is_declared():
    declared = {s.env for s in st.SETTINGS + st.DAGSTER_READS}
    named = {m for p in PRODUCT for m in re.findall(r"INFERLEDGER_[A-Z_]+[A-Z]", p.read_text())}
    assert named - declared == set(), "declare these in settings/__init__.py"
    assert {s.name for s in st.SETTINGS} == set(st.Settings.__dataclass_fields__) - {"from_environment"}


def test_only_the_entry_points_read_the_environment():
    reading = {p.relative_to(ROOT).as_posix() for p in PRODUCT if _reads_environment(p)}
    stray = reading - set(READS_ENVIRONMENT) - STORE_CREDENTIALS
    assert not stray, f"read settings through settings.resolve, not here: {stray}"
    rooms = ("warehouse/", "lake/", "transforms/", "fleetsim/")
    assert not any(r.startswith(rooms) for r in reading - STORE_CREDENTIALS)


def test_the_documented_table_is_the_declared_one():
    assert st.markdown_table() in (ROOT / "docs" / "operations.md").read_text(), (
        "docs/operations.md, \"Settings\": paste the table `python -m settings` prints")


def test_nothing_is_read_when_a_module_is_imported():
    """Every variable set to a value no setting accepts: every module still imports (only
    resolving them fails, naming each)."""
    modules = sorted({p.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".").removesuffix(".__init__")
                      for p in PRODUCT if not p.name.startswith("__main__")
                      and not p.parts[-2:] == ("deploy", "k8s_definitions.py")})
    env = {**os.environ, **{s.env: "not a value\t" for s in st.SETTINGS}}
    code = f"import importlib\nfor m in {modules!r}:\n    importlib.import_module(m)\nprint('imported')"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "imported" in out.stdout, out.stderr[-3000:]
    bad = subprocess.run([sys.executable, "-m", "pipelines.cli", "sql", "-c", "SELECT 1"], cwd=ROOT,
                         env={**os.environ, "INFERLEDGER_SQL_THREADS": "two"}, capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.strip() == ("error: INFERLEDGER_SQL_THREADS='two': write a whole number of threads, 1 or more, "
                                  "e.g. 2 (docs/operations.md, \"Settings\")")


def test_resolve_parses_names_and_overrides():
    s = st.resolve({"INFERLEDGER_LAKE": "/srv/lake", "INFERLEDGER_SLOT_S": " 30 ", "INFERLEDGER_WEIGHT": "",
                    "XDG_CACHE_HOME": "/srv/cache"})
    assert (s.lake, s.slot_s, s.weight, s.cache_dir) == (Path("/srv/lake"), 30, "time", Path("/srv/cache/inferledger"))
    assert s.from_environment == {"lake", "slot_s"}  # an empty variable is unset
    assert s.override(lake="/srv/lake", raw=None).from_environment == {"lake", "slot_s"}  # the same value
    moved = s.override(lake="/elsewhere", keep_versions="3")
    assert (moved.lake, moved.keep_versions, moved.from_environment) == (Path("/elsewhere"), 3, {"slot_s"})
    with pytest.raises(st.SettingError) as e:
        st.resolve({"INFERLEDGER_GAP_LIMIT_S": "-1", "INFERLEDGER_NIGHTLY_TZ": "Mars/Olympus"})
    assert str(e.value) == ("INFERLEDGER_GAP_LIMIT_S='-1': write a number of seconds 0 or more, e.g. 300; "
                            "INFERLEDGER_NIGHTLY_TZ='Mars/Olympus': not a time zone: write an IANA name, e.g. UTC or "
                            "Europe/Paris")
    assert st.default("slot_s") == 60 and st.default("inventory") is None


def test_the_libraries_environment_is_preset_unless_the_operator_set_it():
    environ = {"_RJEM_MALLOC_CONF": "dirty_decay_ms:0"}
    st.preset_library_environment(environ)
    assert environ == {"_RJEM_MALLOC_CONF": "dirty_decay_ms:0", "GX_ANALYTICS_ENABLED": "false"}


def test_the_code_location_takes_its_settings():
    """A path the environment set reaches Dagster as a dg.EnvVar (Dagster reads it where the step
    runs); the others as values; the schedule ticks at the configured time."""
    defs = code_location(st.resolve({"INFERLEDGER_LAKE": "/srv/lake", "INFERLEDGER_NIGHTLY_CRON": "15 3 * * *",
                                     "INFERLEDGER_NIGHTLY_TZ": "Europe/Paris", "INFERLEDGER_KEEP_VERSIONS": "3"}))
    nightly = defs.resolve_schedule_def("nightly")
    assert (nightly.cron_schedule, nightly.execution_timezone) == ("15 3 * * *", "Europe/Paris")
    lake, warehouse = defs.resources["lake"], defs.resources["warehouse"]
    assert isinstance(lake.root, dg.EnvVar) and lake.root.env_var_name == "INFERLEDGER_LAKE"
    assert (warehouse.path, warehouse.keep) == ("data/warehouse/inferledger.duckdb", 3)
    default = code_location(st.defaults())
    assert default.resolve_schedule_def("nightly").cron_schedule == "30 2 * * *"
    assert default.resources["lake"].root == "data/lake"
