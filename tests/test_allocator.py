"""Polars's allocator keeps freed memory 5 s before giving it back (transforms/__init__.py): the
setting must be in the environment before Polars is first imported, by any entry point."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Records the allocator setting at the moment Polars is first imported.
PROBE = """
import os, sys
seen = []
class Probe:
    def find_spec(self, name, path=None, target=None):
        if name == "polars" and not seen:
            seen.append(os.environ.get("_RJEM_MALLOC_CONF"))
sys.meta_path.insert(0, Probe())
import {module}
import polars  # a module that loads Polars only when a command runs: the first import is here
print(seen[0])
"""


@pytest.mark.parametrize("module", ["pipelines.cli", "pipelines.definitions", "warehouse.marts", "pipelines.suites",
                                    "lake.store"])
def test_allocator_set_before_polars_loads(module):
    env = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}
    out = subprocess.run([sys.executable, "-c", PROBE.format(module=module)], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == "dirty_decay_ms:5000,muzzy_decay_ms:5000"


def test_an_operators_own_setting_wins():
    env = {**os.environ, "_RJEM_MALLOC_CONF": "dirty_decay_ms:0"}
    out = subprocess.run([sys.executable, "-c", PROBE.format(module="pipelines.cli")], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == "dirty_decay_ms:0"
