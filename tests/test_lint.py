"""The tree's lint and import contract (pyproject.toml, docs/architecture.md), as `make test` runs
them (`make lint`), and proof that the contract catches what it forbids: each forbidden import
below is planted in a copy of the rooms and must break the contract it names."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ROOMS = ("pipelines", "warehouse", "lake", "transforms", "settings", "fleetsim")


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    # PYTHONPATH first: the copy's packages, not the editable install's, are the ones analysed.
    return subprocess.run([str(BIN / "lint-imports"), "--no-cache"], cwd=cwd, capture_output=True, text=True,
                          env={"PATH": str(BIN), "PYTHONPATH": str(cwd)})


def test_ruff_is_clean():
    out = subprocess.run([str(BIN / "ruff"), "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_import_contract_holds():
    out = _lint_imports(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "6 kept, 0 broken" in out.stdout


@pytest.fixture(scope="module")
def rooms_copy(tmp_path_factory) -> Path:
    """A copy of the rooms (committed or not: the working tree) and of pyproject.toml."""
    root = tmp_path_factory.mktemp("rooms")
    for room in ROOMS:
        subprocess.run(["cp", "-r", str(ROOT / room), str(root / room)], check=True)
    (root / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    return root


@pytest.mark.parametrize(("module", "line", "broken"), [
    ("transforms/contracts.py", "import duckdb", "transforms is pure"),
    ("transforms/attribution/lines.py", "import dagster", "transforms is pure"),
    ("transforms/ingest/common.py", "from lake.store import Lake", "transforms is pure"),
    ("warehouse/marts.py", "import pipelines.runner", "rooms are layers"),
    ("lake/store.py", "from warehouse.connection import connect", "rooms are layers"),
    ("settings/__init__.py", "import transforms", "settings imports nothing of the project"),
    ("fleetsim/traffic.py", "import transforms.attribution", "the demo fleet simulator"),
    ("transforms/bounds.py", "import transforms.inventory", "no import cycles inside a room"),
])
def test_a_forbidden_import_breaks_the_contract(rooms_copy, module, line, broken):
    path = rooms_copy / module
    kept = path.read_text()
    try:
        path.write_text(kept + f"\n{line}  # planted by tests/test_lint.py\n")
        out = _lint_imports(rooms_copy)
    finally:
        path.write_text(kept)
    assert out.returncode == 1, out.stdout + out.stderr
    broken_section = " ".join(out.stdout.split("Broken contracts", 1)[1].split())
    assert broken in broken_section, out.stdout
