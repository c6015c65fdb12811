"""Every use of Dagster beyond its public API, in one place.

Checked on dagster 1.13.27 (CHECKED_ON). `problems()` says what the installed Dagster no longer
has; tests/test_private_apis.py fails naming it, and when the installed version is not the
checked series.

- `defs_state_storage(storage)`: `dagster._core.storage.defs_state.base.set_defs_state_storage`.
  Loading definitions reads the "current" definitions-state storage, a context variable that an
  instance sets when entered and that can outlive it (an instance collected since); the code
  location is loaded with none (it has no state-backed components) and each run with its own
  instance's. If it moves, the import fails: no command that runs a job, and no code location,
  loads.
- `forget_defs_state_storage()`: sets that context variable (`_current_storage`) back to none,
  what tests do between tests so that a definitions load never reads a dead instance.
- The instance files (dagster.yaml, deploy/dagster.yaml, the Celery test's) name Dagster's
  storage classes by module, as Dagster's own documentation writes them:
  `dagster._core.storage.root.LocalArtifactStorage` and
  `dagster._core.storage.local_compute_log_manager.LocalComputeLogManager`. If they move, the
  instance does not load.
"""

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import dagster as dg
from dagster._core.storage.defs_state import base as _defs_state

CHECKED_ON = "1.13.27"
INSTANCE_CLASSES = (("dagster._core.storage.root", "LocalArtifactStorage"),
                    ("dagster._core.storage.local_compute_log_manager", "LocalComputeLogManager"))


def installed_version() -> str:
    return dg.__version__


@contextmanager
def defs_state_storage(storage) -> Iterator[None]:
    """Within the block, definitions load against `storage` (an instance's `defs_state_storage`,
    or None: no state-backed components)."""
    with _defs_state.set_defs_state_storage(storage):
        yield


def forget_defs_state_storage() -> None:
    """No current definitions-state storage (one an instance left behind is forgotten)."""
    _defs_state._current_storage.set(None)


def problems() -> list[str]:
    """What the installed Dagster no longer has of the above (empty: all of it works)."""
    out = []
    if not callable(getattr(_defs_state, "set_defs_state_storage", None)):
        out.append("dagster._core.storage.defs_state.base.set_defs_state_storage is gone: runs and the code location "
                   "cannot load definitions")
    if not isinstance(getattr(_defs_state, "_current_storage", None), ContextVar):
        out.append("dagster._core.storage.defs_state.base._current_storage is no longer a ContextVar: tests cannot "
                   "forget a dead instance's storage")
    for module, name in INSTANCE_CLASSES:
        try:
            getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            out.append(f"{module}.{name} is gone: dagster.yaml and deploy/dagster.yaml do not load")
    return out
