"""docs/attribution.md names each step's production function: every name it gives exists."""

import importlib
import re
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "attribution.md"
MODULES = {p.stem for p in (DOC.parent.parent / "transforms" / "attribution").glob("*.py")} - {"__init__"}


def test_every_function_the_method_names_exists():
    names = set(re.findall(r"`([a-z_]+)\.([A-Za-z_][A-Za-z0-9_]*)`", DOC.read_text()))
    named = sorted((module, name) for module, name in names if module in MODULES)
    assert len(named) > 30
    missing = [f"{module}.{name}" for module, name in named
               if not hasattr(importlib.import_module(f"transforms.attribution.{module}"), name)]
    assert not missing, f"docs/attribution.md names what transforms/attribution does not have: {missing}"


def test_every_step_of_the_method_has_a_row():
    table = DOC.read_text().split("| step | function | its parts |")[1].split("\n\n")[0]
    assert [int(n) for n in re.findall(r"^\| (\d+)\. ", table, re.M)] == list(range(1, 11))
