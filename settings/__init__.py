"""Every setting an operator can change, declared once: its environment variable, default, unit
and what it does. The table of docs/operations.md ("Settings") is `markdown_table()`
(`python -m settings` prints it; tests/test_settings.py holds the two equal).

Nothing is read when a module is imported. An entry point resolves the environment once,
`resolve(os.environ)`, and hands the values down: the CLI as its flags' defaults, the Dagster code
location (`pipelines/location.py`) as resources (a path the environment set stays a `dg.EnvVar`,
which Dagster reads where the step runs). `warehouse/` and `lake/` never read the environment:
they take arguments, whose defaults are the declared ones (`default(name)`).

A top-level module of its own, importing nothing of this project, because every room needs it:
`pipelines` resolves it, `warehouse` defaults to its values and may not import `pipelines`, and
`transforms` sets the libraries' environment from it (`preset_library_environment`) before
Polars and Great Expectations load.
"""

import os
import tempfile
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class SettingError(ValueError):
    """A setting's value cannot be used; the message names the variable and what to write."""


def _whole(unit: str, example: int, *, least: int = 1) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not text.isdigit() or int(text) < least:
            raise ValueError(f"write a whole number of {unit}, {least} or more, e.g. {example}")
        return int(text)
    return parse


def _seconds(example: int, *, zero: bool = False) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not (value >= 0 if zero else value > 0) or value == float("inf"):
            raise ValueError(f"write a number of seconds {'0 or more' if zero else 'above 0'}, e.g. {example}")
        return value
    return parse


def _store_uri(text: str) -> str:
    if not text.startswith("s3://") or len(text.rstrip("/")) <= len("s3://"):
        raise ValueError("not an object store's URI; use s3://bucket/prefix (or leave it unset)")
    return text.rstrip("/")


def _weight(text: str) -> str:
    if text not in ("time", "tokens"):
        raise ValueError("write `time` (overlap seconds) or `tokens`")
    return text


def _time_zone(text: str) -> str:
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("not a time zone: write an IANA name, e.g. UTC or Europe/Paris") from None
    return text


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError("write a date as YYYY-MM-DD, e.g. 2024-01-01") from None


def _cache_dir(environ: Mapping[str, str]) -> Path:
    root = Path(environ["XDG_CACHE_HOME"]) if environ.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return root / "inferledger"


def default_duckdb_temp() -> Path:
    """Where DuckDB spills when INFERLEDGER_DUCKDB_TEMP is not set: `<tmp>/inferledger-duckdb`."""
    return Path(tempfile.gettempdir()) / "inferledger-duckdb"


@dataclass(frozen=True)
class Setting:
    """One setting: `name` is its field of `Settings`; `default` is written as in the environment,
    None when it is derived (`derive`, shown in the table as `shown`)."""

    name: str
    env: str
    default: str | None
    unit: str
    doc: str
    parse: Callable[[str], Any] = str
    shown: str = ""
    derive: Callable[[Mapping[str, str]], Any] | None = None


SETTINGS: tuple[Setting, ...] = (
    # Where things are.
    Setting("raw", "INFERLEDGER_RAW", "data/raw", "path or URI",
            "raw exports as delivered, `<raw>/<YYYY-MM-DD>/<site>/<family>/...` (docs/raw-formats.md): a directory, "
            "or `s3://bucket/prefix` (mirrored to each worker's scratch, docs/deploy.md)",
            lambda text: text.rstrip("/") if "://" in text else Path(text)),
    Setting("lake", "INFERLEDGER_LAKE", "data/lake", "path or URI",
            "the Parquet lake: a directory, or `s3://bucket/prefix` (AWS_* variables) or `az://container/prefix` "
            "(AZURE_STORAGE_* variables) on an object store (docs/deploy.md)",
            lambda text: text.rstrip("/") if "://" in text else Path(text)),
    Setting("warehouse", "INFERLEDGER_WAREHOUSE", "data/warehouse/inferledger.duckdb", "path",
            "the published DuckDB file finance queries; its versions are kept beside it", Path),
    Setting("publish_to", "INFERLEDGER_PUBLISH_TO", None, "URI",
            "also upload each published version, self-contained (request detail included), to `s3://bucket/prefix`: "
            "`versions/<version>/inferledger.duckdb`, then `CURRENT.json` naming it (docs/deploy.md)", _store_uri,
            shown="none"),
    Setting("inventory", "INFERLEDGER_INVENTORY", None, "path", "the inventory YAML (docs/inventory.md)", Path,
            shown="`<raw>/inventory.yaml`"),
    Setting("report", "INFERLEDGER_REPORT", None, "path", "the morning report's HTML file (docs/report.md)", Path,
            shown="`report.html` beside the warehouse"),
    Setting("export_dir", "INFERLEDGER_EXPORT_DIR", "exports", "path",
            "the only directory `inferledger sql` may COPY into", Path),
    Setting("cache_dir", "INFERLEDGER_CACHE_DIR", None, "path", "where the report's built Vega bundle is kept", Path,
            shown="`$XDG_CACHE_HOME/inferledger`, else `~/.cache/inferledger`", derive=_cache_dir),
    Setting("duckdb_temp", "INFERLEDGER_DUCKDB_TEMP", None, "path",
            "where DuckDB spills beyond its memory limit (`inferledger sql` sessions in a folder of their own)", Path,
            shown="`<tmp>/inferledger-duckdb`", derive=lambda environ: default_duckdb_temp()),
    # The warehouse and finance's sessions.
    Setting("duckdb_memory_limit", "INFERLEDGER_DUCKDB_MEMORY_LIMIT", "2GB", "bytes (DuckDB's `2GB`, `500MB`)",
            "DuckDB's memory for building the marts, publishing, the report and `inferledger sql`; beyond it, it "
            "spills. Not less: at 1 GB the marts of a 30 M-request day failed one build in four"),
    Setting("keep_versions", "INFERLEDGER_KEEP_VERSIONS", "7", "versions",
            "published versions kept for rollback", _whole("versions", 7)),
    Setting("max_age_days", "INFERLEDGER_MAX_AGE_DAYS", "2", "days",
            "the freshness check warns when the latest published day is older", _whole("days", 2, least=0)),
    Setting("sql_timeout_s", "INFERLEDGER_SQL_TIMEOUT_S", "300", "s",
            "`inferledger sql` interrupts a statement after this long (`--timeout` overrides); finance cannot "
            "change it from SQL (docs/warehouse.md, \"Finance access\")", _seconds(300)),
    Setting("sql_threads", "INFERLEDGER_SQL_THREADS", None, "threads",
            "DuckDB threads of an `inferledger sql` session; finance cannot change it from SQL",
            _whole("threads", 2), shown="one per core"),
    # The attribution (docs/attribution.md).
    Setting("slot_s", "INFERLEDGER_SLOT_S", "60", "s", "slot length; a divisor of 86400", _whole("seconds", 60)),
    Setting("weight", "INFERLEDGER_WEIGHT", "time", "`time` or `tokens`",
            "how requests share a slot: overlap seconds, or tokens", _weight),
    Setting("gap_limit_s", "INFERLEDGER_GAP_LIMIT_S", "300", "s",
            "meter gaps up to this long are interpolated, longer ones estimated", _seconds(300, zero=True)),
    Setting("morsel_rows", "INFERLEDGER_MORSEL_ROWS", "25000", "rows",
            "rows per morsel of the streamed passes over a day's requests: smaller keeps the facts' Parquet sink "
            "small (about 0.65 GiB at 10 M requests, against 1.2 GiB at Polars' default) for the same CPU time",
            _whole("rows", 25_000)),
    Setting("quality_batch_rows", "INFERLEDGER_QUALITY_BATCH_ROWS", "2000000", "rows",
            "rows of a partition GX validates at once (docs/data-quality.md)", _whole("rows", 2_000_000)),
    # Unattended runs (docs/operations.md).
    Setting("nightly_cron", "INFERLEDGER_NIGHTLY_CRON", "30 2 * * *", "cron",
            "when the nightly schedule ticks (read when the code location loads)"),
    Setting("nightly_tz", "INFERLEDGER_NIGHTLY_TZ", "UTC", "IANA time zone", "the nightly schedule's time zone",
            _time_zone),
    Setting("late_days", "INFERLEDGER_LATE_DAYS", "62", "days", "how far back the late-data sensor looks",
            _whole("days", 62)),
    Setting("first_day", "INFERLEDGER_FIRST_DAY", "2024-01-01", "date (YYYY-MM-DD)",
            "the first UTC day the pipeline has partitions for (Dagster's daily partitions start there); a command "
            "for an earlier day is refused naming this variable: set it to your oldest data's day", _day),
)

# Read by Dagster itself (`{"env": ...}` in dagster-celery's executor configuration and
# deploy/celery.yaml; DAGSTER_HOME, which the runner also makes absolute and creates): declared for
# the table and for the executor.
DAGSTER_READS: tuple[Setting, ...] = (
    Setting("dagster_home", "DAGSTER_HOME", None, "path",
            "the Dagster instance that records the runs (`dg dev` shows them); made absolute and, when missing, "
            "created with the project's instance settings, storage paths absolute (`dagster.yaml`, "
            "pipelines/instance.py)", shown="none: runs kept in memory, not recorded (`make` sets `.dagster_home/`)"),
    Setting("celery_broker", "INFERLEDGER_CELERY_BROKER", None, "URL",
            "the Celery broker of `pipelines.celery_definitions` (docs/deploy.md), e.g. `redis://redis:6379/0`",
            shown="none: needed by the Celery location only"),
    Setting("celery_backend", "INFERLEDGER_CELERY_BACKEND", None, "URL",
            "where Celery step results come back, e.g. `redis://redis:6379/1`",
            shown="none: needed by the Celery location only"),
    # deploy/dagster.yaml's Postgres storage (`{env: ...}`), read where the instance is opened.
    *(Setting(f"dagster_pg_{part}", f"DAGSTER_PG_{part.upper()}", None, unit,
              f"the {what} of Dagster's run, event and schedule storage on PostgreSQL, in deploy/dagster.yaml "
              "(docs/deploy.md)", shown="none: needed by deploy/dagster.yaml only")
      for part, unit, what in (("host", "host name", "server"), ("port", "port", "server's port (5432)"),
                               ("db", "name", "database"), ("user", "name", "user"),
                               ("password", "secret", "user's password"))),
)

BY_NAME = {s.name: s for s in SETTINGS + DAGSTER_READS}


@dataclass(frozen=True)
class LibraryPreset:
    """An environment variable a library reads when it loads: set (unless the operator did) by
    `preset_library_environment`, which `transforms/__init__.py` calls before Polars or GX loads."""

    env: str
    value: str
    doc: str


LIBRARY_PRESETS: tuple[LibraryPreset, ...] = (
    LibraryPreset("_RJEM_MALLOC_CONF", "dirty_decay_ms:5000,muzzy_decay_ms:5000",
                  "how long Polars's allocator (jemalloc) keeps freed memory before giving it back to the system. "
                  "With Polars's own 0.5 s / 1 s the 10 M night took 61.5 s at a 2.1 GiB peak, with 5 s 59.1-60.3 s "
                  "at 2.8 GiB (less of the kernel handing pages back and forth): lower it to trade time for memory"),
    LibraryPreset("GX_ANALYTICS_ENABLED", "false", "Great Expectations sends no usage analytics"),
)


def preset_library_environment(environ: MutableMapping[str, str] | None = None) -> None:
    """Set each of LIBRARY_PRESETS the environment does not already set (an operator's own wins).
    Must run before Polars and GX are imported: `transforms/__init__.py` calls it."""
    environ = os.environ if environ is None else environ
    for preset in LIBRARY_PRESETS:
        environ.setdefault(preset.env, preset.value)


@dataclass(frozen=True)
class Settings:
    """The settings in force (`resolve`): one value per entry of SETTINGS, in its unit. None for
    inventory, report and sql_threads: derived where used (`<raw>/inventory.yaml`, beside the
    warehouse, DuckDB's default). `from_environment`: the names whose value the environment set."""

    raw: Path
    lake: Path | str  # str: an object store's URI
    warehouse: Path
    publish_to: str | None  # an object store's URI
    inventory: Path | None
    report: Path | None
    export_dir: Path
    cache_dir: Path
    duckdb_temp: Path
    duckdb_memory_limit: str
    keep_versions: int
    max_age_days: int
    sql_timeout_s: float
    sql_threads: int | None
    slot_s: int
    weight: str
    gap_limit_s: float
    morsel_rows: int
    quality_batch_rows: int
    nightly_cron: str
    nightly_tz: str
    late_days: int
    first_day: date
    from_environment: frozenset[str] = frozenset()

    def override(self, **values: Any) -> "Settings":
        """These settings with `values` in place (None keeps the value): what a command-line flag
        does. A value given as text is parsed as the environment's would be."""
        given = {k: _parse(BY_NAME[k], v) if isinstance(v, str) else v for k, v in values.items() if v is not None}
        changed = {k for k, v in given.items() if v != getattr(self, k)}
        return replace(self, **given, from_environment=self.from_environment - changed)


def _parse(setting: Setting, text: str) -> Any:
    try:
        return setting.parse(text.strip())
    except ValueError as e:
        raise SettingError(f"{setting.env}={text!r}: {e}") from None


def default(name: str) -> Any:
    """The declared default of setting `name`, parsed (None when it is derived where used)."""
    s = BY_NAME[name]
    return None if s.default is None else s.parse(s.default)


def resolve(environ: Mapping[str, str], **overrides: Any) -> Settings:
    """The settings `environ` sets, the declared defaults for the others, then `overrides`
    (`Settings.override`). An empty variable counts as unset. Raises SettingError naming every
    variable whose value cannot be used."""
    values: dict[str, Any] = {}
    from_environment, errors = set(), []
    for s in SETTINGS:
        text = environ.get(s.env, "").strip()
        if not text:
            values[s.name] = s.derive(environ) if s.derive else default(s.name)
            continue
        try:
            values[s.name] = _parse(s, text)
            from_environment.add(s.name)
        except SettingError as e:
            errors.append(str(e))
    if errors:
        raise SettingError("; ".join(errors))
    return Settings(**values, from_environment=frozenset(from_environment)).override(**overrides)


def defaults(**overrides: Any) -> Settings:
    """The declared defaults, with `overrides` (paths of a test or a benchmark, say); no environment."""
    return resolve({}, **overrides)


def markdown_table() -> str:
    """The settings as docs/operations.md shows them: every variable, its default, unit and role."""
    rows = ["| variable | default | unit | what it does |", "|---|---|---|---|"]
    for s in SETTINGS + DAGSTER_READS:
        rows.append(f"| `{s.env}` | {s.shown or f'`{s.default}`'} | {s.unit} | {s.doc} |")
    for p in LIBRARY_PRESETS:
        rows.append(f"| `{p.env}` | `{p.value}` | | {p.doc}; set before the library loads unless already set "
                    "(`settings.preset_library_environment`, from `transforms/__init__.py`) |")
    return "\n".join(rows) + "\n"

