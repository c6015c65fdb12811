"""What decides which runs happen, kept apart from the Dagster decorators (pipelines/defs/automation/)
so it is testable against a real instance.

- `nightly_run_requests`: the previous UTC day's ingest, one run per site.
- `changed_raw_partitions`: (dataset, day, site) partitions whose raw files changed since they
  were ingested (late meter uploads, a corrected invoice, a re-issued FOCUS export).
- `downstream_requests`: attribute each day whose inputs are complete and newer than its
  attribution (including every day a late or re-delivered bill covers), then publish once when the
  marts changed and nothing upstream is still running; a day whose next day's request log
  holds requests in flight at its midnight is attributed again too (pipelines/midnight.py).
"""

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg

from lake.raw import raw_fingerprint

INGEST_ASSETS = {"requests": "requests", "power_readings": "power_readings", "cost_lines": "cost_lines"}
ACTIVE = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
          dg.DagsterRunStatus.STARTED]


def previous_utc_day(tick: datetime) -> date:
    """The day a nightly tick processes: the UTC day before the tick's UTC date."""
    return tick.astimezone(UTC).date() - timedelta(days=1)


def nightly_run_requests(tick: datetime, site_ids: list[str]) -> list[dg.RunRequest]:
    day = previous_utc_day(tick).isoformat()
    return [dg.RunRequest(run_key=f"nightly-{day}-{s}", partition_key=dg.MultiPartitionKey({"date": day, "site": s}),
                          tags={"inferledger/nightly": day, "inferledger/date": day}) for s in site_ids]


def _latest(instance: dg.DagsterInstance, asset: str, partition: str | None = None):
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition] if partition else None),
        limit=1, ascending=False).records
    return records[0] if records else None


def _meta(record, key: str):
    mat = record.asset_materialization if record else None
    v = mat.metadata.get(key) if mat else None
    return getattr(v, "value", getattr(v, "text", v))


def changed_raw_partitions(instance: dg.DagsterInstance, raw_root: Path, site_ids: list[str], today: date,
                           lookback_days: int = 62) -> list[tuple[str, date, str, str]]:
    """Ingested partitions of the last `lookback_days` whose raw files differ from those the
    last ingest read (by `raw_fingerprint`), with the files' current fingerprint. Days never
    ingested are the nightly run's."""
    out = []
    for folder in sorted(Path(raw_root).glob("????-??-??")):
        try:
            day = date.fromisoformat(folder.name)
        except ValueError:
            continue
        if not (today - timedelta(days=lookback_days) <= day <= today):
            continue
        for site in site_ids:
            for dataset, asset in INGEST_ASSETS.items():
                record = _latest(instance, asset, f"{day.isoformat()}|{site}")
                if record is None:
                    continue
                now = raw_fingerprint(dataset, Path(raw_root), day, site)
                if _meta(record, "raw_fingerprint") != now:
                    out.append((asset, day, site, now))
    return out


def late_data_run_requests(changed: list[tuple[str, date, str, str]]) -> list[dg.RunRequest]:
    """One run per changed (day, site), re-materializing exactly the changed assets. The run
    key names the files' fingerprints, so a tick while that run is still going asks nothing new."""
    by_partition: dict[tuple[date, str], list[tuple[str, str]]] = {}
    for asset, day, site, fingerprint in changed:
        by_partition.setdefault((day, site), []).append((asset, fingerprint))
    return [dg.RunRequest(
        run_key=f"late-{day}-{site}-" + "-".join(f"{a}:{f}" for a, f in sorted(changes)),
        partition_key=dg.MultiPartitionKey({"date": day.isoformat(), "site": site}),
        asset_selection=[dg.AssetKey(a) for a, _ in sorted(changes)],
        tags={"inferledger/late-data": ",".join(a for a, _ in sorted(changes)), "inferledger/date": day.isoformat()})
        for (day, site), changes in sorted(by_partition.items())]


@dataclass
class Cursor:
    after: int = 0  # storage id of the last ingest materialization looked at
    # Days waiting (for their inputs, or for runs to finish), each with the storage id of the
    # newest bill that concerns it (0 when only its own inputs do).
    pending: dict[str, int] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str | None) -> "Cursor":
        return cls(**json.loads(text)) if text else cls()

    def dump(self) -> str:
        return json.dumps({"after": self.after, "pending": dict(sorted(self.pending.items()))})


def _run_failed(instance: dg.DagsterInstance, run_id: str) -> bool:
    run = instance.get_run_by_id(run_id)
    return run is not None and run.status == dg.DagsterRunStatus.FAILURE


def _active_days(instance: dg.DagsterInstance) -> set[str] | None:
    """Days with an ingest or attribution run queued or running; None when a publish is running."""
    days = set()
    for rec in instance.get_run_records(dg.RunsFilter(statuses=ACTIVE)):
        tags = rec.dagster_run.tags
        if rec.dagster_run.job_name == "publish_warehouse":
            return None
        day = tags.get("inferledger/date") or tags.get("dagster/partition/date") or tags.get("dagster/partition")
        if day:
            days.add(day.split("|")[0])
    return days


def _previous_day(instance: dg.DagsterInstance, record, day: str, attributed: set[str],
                  candidates: dict[str, int]) -> None:
    """A request log of `day` with requests in flight at its midnight (`started_before_day`), or
    one replacing a log whose in-flight requests the day before was charged with, makes the
    attributed day before a candidate again (pipelines/midnight.py)."""
    prev = (date.fromisoformat(day) - timedelta(days=1)).isoformat()
    if prev not in attributed:
        return
    charged = _meta(_latest(instance, "request_costs", prev), "in_flight_from_next_day")
    if _meta(record, "started_before_day") or charged:
        candidates[prev] = max(candidates.get(prev, 0), record.storage_id)


def downstream_requests(instance: dg.DagsterInstance, cursor: Cursor,
                        site_ids: list[str]) -> tuple[list[dg.RunRequest], Cursor]:
    """Attribution runs for days whose ingest is complete and newer than their attribution, and
    one publish when the marts are newer than the warehouse and nothing upstream runs."""
    new_after = cursor.after
    candidates: dict[str, int] = dict(cursor.pending)
    attributed = set(instance.get_materialized_partitions(dg.AssetKey("request_costs")))
    for asset in INGEST_ASSETS.values():
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), after_storage_id=cursor.after), limit=10_000).records
        for r in records:
            new_after = max(new_after, r.storage_id)
            day = (r.partition_key or "").split("|")[0]
            if not day:
                continue
            candidates.setdefault(day, 0)
            first, last = _meta(r, "period_first_day"), _meta(r, "period_last_day")
            if asset == "cost_lines" and first and last:
                # A bill delivered on `day` is read by every other day its period covers, before
                # or after its delivery (lake/bills.py): those days are attributed again.
                for d in attributed:
                    if d != day and first <= d <= last:
                        candidates[d] = max(candidates.get(d, 0), r.storage_id)
            if asset == "requests":
                _previous_day(instance, r, day, attributed, candidates)
    active = _active_days(instance)
    requests: list[dg.RunRequest] = []
    pending: dict[str, int] = {}
    for day, bill_id in sorted(candidates.items()):
        if active is None or day in active:
            pending[day] = bill_id
            continue
        inputs = [_latest(instance, asset, f"{day}|{site}") for site in site_ids for asset in INGEST_ASSETS.values()]
        if any(r is None for r in inputs):
            pending[day] = bill_id  # a site's inputs are not ingested yet
            continue
        if any(_run_failed(instance, r.run_id) for r in inputs):
            continue  # an input failed a blocking check: fixing and re-ingesting it brings the day back
        upstream = max([r.storage_id for r in inputs] + [bill_id])
        attribution = _latest(instance, "request_costs", day)
        if attribution is None or attribution.storage_id < upstream:
            requests.append(dg.RunRequest(job_name="attribute_day", partition_key=day,
                                          run_key=f"attribute-{day}-{upstream}",
                                          tags={"inferledger/date": day, "inferledger/trigger": "downstream"}))
    marts = _latest(instance, "cost_marts")
    published = _latest(instance, "warehouse")
    if (not requests and not pending and active is not None and not active and marts is not None
            and (published is None or published.storage_id < marts.storage_id)):
        requests.append(dg.RunRequest(job_name="publish_warehouse", run_key=f"publish-{marts.storage_id}",
                                      tags={"inferledger/trigger": "downstream"}))
    return requests, Cursor(new_after, pending)
