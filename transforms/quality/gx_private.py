"""Every use of Great Expectations beyond its public API, in one place.

Checked on great-expectations 1.24.1 (CHECKED_ON). Each use is a speed or memory measure with a
guard: when GX changes, results stay the same and only the gain is lost, except where said.
`problems()` says which of them the installed GX no longer supports; tests/test_private_apis.py
fails naming them, and when the installed version is not the checked series.

- `skip_pandas_fingerprints`: `pandas_execution_engine.HASH_THRESHOLD`, a module constant. GX
  fingerprints every in-memory pandas batch under 1 GB (md5 over pandas' hash of every row,
  twice per validation) for a batch marker nothing reads: on a 1 M-row batch of request_costs
  that was 1.5 s of 2.6 s. 0 skips it. If it goes: slower, same results.
- `frames_taken_as_they_are`: replaces, on our own datasource's pandas execution engine (the
  instance, not the class), `get_batch_data_and_markers` for an in-memory DataFrame: the frame and
  a load-time marker, as GX makes them, without `df.memory_usage()`, which GX computes only to
  compare with `HASH_THRESHOLD` (0 above: never fingerprinted). pandas builds a Series per column
  for it, twice per validation: ~2.5 ms of GX's ~5 ms fixed cost per run. Anything else (a
  partitioner, a sampler, a file, a fingerprint wanted) goes to GX's own method. If the engine,
  the method or the batch spec changes shape: GX as shipped, slower, same results.
- `configurations_built_once`: replaces the `Expectation.configuration` property while GX
  validates (GX 1.24 rebuilds the configuration for each keyword it reads: 4,326 builds against
  510 on the requests suite). If the property goes or changes shape: GX as shipped, slower.
- `plain_ids_fast`: replaces `IDDict.to_id` while GX validates. GX keys every metric it plans
  (20,335 metric configurations on the demo day's suites) by an md5 of its keyword arguments
  passed through `convert_to_json_serializable`, which walks each value through some twenty
  type tests (a None through all of them, numpy's `issubdtype` included). For arguments that are
  plain JSON already (str, int, bool, finite float, None, lists, tuples, dicts with str keys) that
  walk returns them as they are, so the id is the md5 of `json.dumps` of the arguments
  themselves: the same string. Anything else goes to GX's own `to_id`. If `IDDict.to_id` goes or
  changes shape: GX as shipped, slower.
- `domain_objects_built_once`: replaces `ExpectationConfiguration.to_domain_obj` while GX
  validates. GX 1.24 turns the same configuration back into a new Expectation (a pydantic model,
  then its configuration built anew) for every metric it asks of it: about 10 per expectation.
  Built once per configuration and reused while the configuration's fields are the ones it was
  built from (compared on each call, so a configuration GX changes gets a new one). If the method
  goes or changes shape: GX as shipped, slower.
- `release_batch`: clears the execution engine's batch cache (`batch_manager._batch_data_cache`,
  `_active_batch_data_id`) and `_metric_cache`, which would hold the last frame until the next
  one. If they go: more memory, same results.
- `progress_bars_off`: `ProgressBarsConfig`, not exported at GX's top level. If it moves, the
  import fails: the quality suites do not load at all.
"""

import datetime
import hashlib
import json
import math
import threading
import types
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from typing import Any

import great_expectations.expectations as gxe
import pandas as pd
from great_expectations.core.batch import BatchMarkers
from great_expectations.core.batch_spec import RuntimeDataBatchSpec
from great_expectations.core.id_dict import IDDict
from great_expectations.data_context.types.base import ProgressBarsConfig
from great_expectations.expectations.expectation_configuration import ExpectationConfiguration
from great_expectations.execution_engine import pandas_execution_engine
from great_expectations.execution_engine.pandas_batch_data import PandasBatchData

CHECKED_ON = "1.24.1"


def installed_version() -> str:
    return version("great_expectations")


def skip_pandas_fingerprints() -> None:
    """Turn off GX's fingerprint of each pandas batch (module docstring)."""
    if hasattr(pandas_execution_engine, "HASH_THRESHOLD"):
        pandas_execution_engine.HASH_THRESHOLD = 0


def progress_bars_off(context) -> None:
    """No progress bars from `context` (an ephemeral GX data context)."""
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)


GET_BATCH_DATA = getattr(pandas_execution_engine.PandasExecutionEngine, "get_batch_data_and_markers", None)


def _as_they_are(engine, batch_spec):
    """GX's `get_batch_data_and_markers` (1.24.1) for an in-memory DataFrame with nothing to
    partition or sample and no fingerprint to take; anything else to GX's own."""
    data = getattr(batch_spec, "batch_data", None)
    if (type(batch_spec) is not RuntimeDataBatchSpec or type(data) is not pd.DataFrame
            or pandas_execution_engine.HASH_THRESHOLD > 0
            or batch_spec.get("partitioner_method") or batch_spec.get("sampling_method")):
        return GET_BATCH_DATA(engine, batch_spec)
    markers = BatchMarkers({"ge_load_time": datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S.%fZ")})
    batch_spec.batch_data = "PandasDataFrame"
    return PandasBatchData(execution_engine=engine, dataframe=data), markers


def frames_taken_as_they_are(datasource) -> None:
    """On `datasource`'s pandas execution engine only, in-memory frames are taken without GX's
    `memory_usage` (module docstring). A new engine (GX makes one when the datasource's settings
    change) is GX's as shipped."""
    engine = datasource.get_execution_engine()
    if callable(GET_BATCH_DATA) and isinstance(engine, pandas_execution_engine.PandasExecutionEngine):
        engine.get_batch_data_and_markers = types.MethodType(_as_they_are, engine)


CONFIGURATION = gxe.Expectation.__dict__.get("configuration")  # GX's own property, put back after each validation
_CONFIGURATION_LOCK = threading.Lock()


@contextmanager
def configurations_built_once() -> Iterator[None]:
    """While GX validates, each expectation's `configuration` is built once instead of on every
    read: GX 1.24 builds it anew (a pydantic `dict()` of every field, then a new
    ExpectationConfiguration) for each keyword argument it looks up: 4,326 builds against 510 on
    the requests suite's drills. Measured: remote-plains requests suite 2.32-2.43 s -> 2.06-2.17 s,
    10 M facts 5.64-5.68 s -> 5.33-5.71 s. The expectations GX validates are its own copies, made
    for the run and not changed during it. Results are held equal with and without this by
    tests/test_quality_batches.py; a GX without the property as expected runs as it is."""
    shipped = CONFIGURATION
    if not isinstance(shipped, property) or shipped.fget is None:
        yield
        return
    build = shipped.fget
    built: dict[int, tuple[Any, Any]] = {}  # id -> (expectation, its configuration): holding it keeps the id its own

    def configuration(self):
        hit = built.get(id(self))
        if hit is None or hit[0] is not self:
            hit = built[id(self)] = (self, build(self))
        return hit[1]

    with _CONFIGURATION_LOCK:
        gxe.Expectation.configuration = property(configuration, doc=shipped.__doc__)
        try:
            yield
        finally:
            gxe.Expectation.configuration = shipped


TO_ID = IDDict.__dict__.get("to_id")  # GX's own method, put back after each validation
_TO_ID_LOCK = threading.Lock()
_SCALARS = (str, int, bool, type(None))


def is_plain(value: Any) -> bool:
    """Whether `convert_to_json_serializable` returns `value` as JSON unchanged (so `json.dumps`
    of it and of GX's conversion are the same string): exact str, int, bool, None, a finite
    float, and lists, tuples and str-keyed dicts of those."""
    kind = type(value)
    if kind in _SCALARS:
        return True
    if kind is float:
        return not math.isnan(value)
    if kind in (list, tuple):
        return all(is_plain(v) for v in value)
    if kind is dict:
        return all(type(k) is str and is_plain(v) for k, v in value.items())
    return False


def fast_to_id(self, id_keys=None, id_ignore_keys=None):
    """GX's `IDDict.to_id` (1.24.1), skipping `convert_to_json_serializable` for plain values."""
    keys = set(self.keys() if id_keys is None else id_keys) - set(
        self._id_ignore_keys if id_ignore_keys is None else id_ignore_keys)
    if len(keys) < 2 or not all(is_plain(self[k]) for k in keys):
        return TO_ID(self, id_keys, id_ignore_keys)
    text = json.dumps({k: self[k] for k in keys}, sort_keys=True)
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


@contextmanager
def plain_ids_fast() -> Iterator[None]:
    """While GX validates, metric ids of plain keyword arguments skip GX's JSON conversion
    (module docstring). Measured on the demo day's suites: see docs/data-quality.md. Results are
    held equal with and without this by tests/test_quality_reuse.py."""
    if not callable(TO_ID):
        yield
        return
    with _TO_ID_LOCK:
        IDDict.to_id = fast_to_id
        try:
            yield
        finally:
            IDDict.to_id = TO_ID


TO_DOMAIN_OBJ = ExpectationConfiguration.__dict__.get("to_domain_obj")  # GX's own, put back after each validation
_TO_DOMAIN_OBJ_LOCK = threading.Lock()


def _fields(config) -> tuple:
    """What `to_domain_obj` builds an Expectation from (GX 1.24.1), kwargs copied."""
    return (config.type, dict(config.kwargs), config.id, config.meta, config.notes, config.rendered_content,
            config.severity, config.description)


@contextmanager
def domain_objects_built_once() -> Iterator[None]:
    """While GX validates, each expectation configuration's Expectation is built once and reused
    while the configuration's fields are unchanged (module docstring). Results are held equal
    with and without this by tests/test_quality_reuse.py."""
    if not callable(TO_DOMAIN_OBJ):
        yield
        return
    build = TO_DOMAIN_OBJ
    built: dict[int, tuple[Any, tuple, Any]] = {}  # id -> (configuration, its fields, its Expectation)

    def to_domain_obj(self):
        fields = _fields(self)
        hit = built.get(id(self))
        if hit is None or hit[0] is not self or hit[1] != fields:
            hit = built[id(self)] = (self, fields, build(self))
        return hit[2]

    with _TO_DOMAIN_OBJ_LOCK:
        ExpectationConfiguration.to_domain_obj = to_domain_obj
        try:
            yield
        finally:
            ExpectationConfiguration.to_domain_obj = build


def _engine(batch_definition):
    return getattr(batch_definition.data_asset.datasource, "_execution_engine", None)


def release_batch(batch_definition) -> None:
    """Drop the frame and metrics GX's execution engine keeps after a validation of a batch of
    `batch_definition`: it would hold the last frame until the next one is loaded (two frames at
    once, the largest one long after its run). Without it memory is higher, results the same."""
    engine = _engine(batch_definition)
    manager = getattr(engine, "batch_manager", None)
    try:
        if manager is not None:
            manager.reset_batch_cache()
            manager._batch_data_cache.clear()
            manager._active_batch_data_id = None
        if isinstance(getattr(engine, "_metric_cache", None), dict):
            engine._metric_cache.clear()
    except AttributeError:
        pass


def problems(batch_definition) -> list[str]:
    """What the installed GX no longer has of the above, checked on a pandas `batch_definition`
    that has validated a batch (empty: every measure works)."""
    out = []
    if not hasattr(pandas_execution_engine, "HASH_THRESHOLD"):
        out.append("pandas_execution_engine.HASH_THRESHOLD is gone: batches are fingerprinted again (slower)")
    if not isinstance(CONFIGURATION, property) or CONFIGURATION.fget is None:
        out.append("Expectation.configuration is no longer a property: configurations are built on every read (slower)")
    if not callable(TO_DOMAIN_OBJ):
        out.append("ExpectationConfiguration.to_domain_obj is gone: Expectations are rebuilt per metric (slower)")
    if not callable(GET_BATCH_DATA):
        out.append("PandasExecutionEngine.get_batch_data_and_markers is gone: frames are measured again (slower)")
    if not callable(TO_ID):
        out.append("IDDict.to_id is gone: metric ids go through GX's JSON conversion again (slower)")
    engine = _engine(batch_definition)
    manager = getattr(engine, "batch_manager", None)
    if engine is None or manager is None:
        out.append("the datasource's _execution_engine or its batch_manager is gone: batches are kept (memory)")
    else:
        for owner, attribute in ((manager, "_batch_data_cache"), (engine, "_metric_cache")):
            if not isinstance(getattr(owner, attribute, None), dict):
                out.append(f"{type(owner).__name__}.{attribute} is gone or no longer a dict: batches are kept (memory)")
        for owner, attribute in ((manager, "_active_batch_data_id"), (manager, "reset_batch_cache")):
            if not hasattr(owner, attribute):
                out.append(f"{type(owner).__name__}.{attribute} is gone: batches are kept (memory)")
    return out
