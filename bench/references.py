"""What a user might write instead of the engine, computing IT energy alone: each request's share
of its node's metered energy, slot by slot, by time (the engine's default `time` weight).

1. Slot energy: a node's energy in each 60 s slot is `power_w x 60` of the node's readings
   in that minute (node meters, or the GPU meters of a node without one; one sample per
   meter and minute).
2. Explode every request into the slots it occupies (GPU start = arrival + queue, to
   completion), with its seconds in each slot.
3. Merge with the slot energy and with the occupied seconds of every node-slot (all its
   requests), divide, and sum per request.

Written as a competent user would, straightforwardly, in each library's own idioms: pandas
repeats rows (`index.repeat` + `cumcount`, the vectorized explode) and merges; Polars is lazy
(`int_ranges` + `explode`, joins, `sink_parquet`). Both read the lake's Parquet and write one
row per request (`request_id`, `it_energy_j`) as Parquet.
"""

from datetime import date, datetime, UTC
from pathlib import Path

import numpy as np

SLOT_S = 60
REQUEST_COLUMNS = ["request_id", "node_id", "arrived_at", "completed_at", "queue_s"]
READING_COLUMNS = ["node_id", "scope", "ts", "power_w"]


def pandas_energy(requests_files: list[Path], readings_files: list[Path], day: date, out: Path) -> int:
    """IT energy per request with pandas; returns the rows written."""
    import pandas as pd  # noqa: PLC0415 (each reference loads only its own library)

    day0 = pd.Timestamp(day.isoformat(), tz="UTC")
    readings = pd.concat([pd.read_parquet(f, columns=READING_COLUMNS) for f in readings_files], ignore_index=True)
    readings = readings[readings["scope"].isin(["node", "gpu"]) & readings["power_w"].notna()]
    readings["slot"] = (readings["ts"] - day0) // pd.Timedelta(seconds=SLOT_S)
    readings["slot_energy_j"] = readings["power_w"] * SLOT_S
    slot_energy = readings.groupby(["node_id", "slot"], as_index=False)["slot_energy_j"].sum()

    req = pd.concat([pd.read_parquet(f, columns=REQUEST_COLUMNS) for f in requests_files], ignore_index=True)
    end = ((req["completed_at"] - day0).dt.total_seconds()).clip(0, 86_400)
    start = ((req["arrived_at"] - day0).dt.total_seconds() + req["queue_s"].fillna(0.0)).clip(0, 86_400)
    req["start"], req["end"] = np.minimum(start, end), end
    first = (req["start"] // SLOT_S).astype("int64")
    slots = (np.ceil(req["end"] / SLOT_S).astype("int64") - first).clip(lower=0)

    x = req.loc[req.index.repeat(slots), ["request_id", "node_id", "start", "end"]]
    x["slot"] = first.repeat(slots).to_numpy() + x.groupby(level=0).cumcount().to_numpy()
    x["seconds"] = (np.minimum(x["end"], (x["slot"] + 1) * SLOT_S) - np.maximum(x["start"], x["slot"] * SLOT_S))
    occupied = (x.groupby(["node_id", "slot"], as_index=False)["seconds"].sum()
                .rename(columns={"seconds": "slot_seconds"}))
    x = x.merge(occupied, on=["node_id", "slot"]).merge(slot_energy, on=["node_id", "slot"], how="left")
    x["it_energy_j"] = x["seconds"] / x["slot_seconds"] * x["slot_energy_j"].fillna(0.0)
    energy = x.groupby("request_id", as_index=False)["it_energy_j"].sum()
    energy.to_parquet(out, index=False)
    return len(energy)


def polars_energy(requests_files: list[Path], readings_files: list[Path], day: date, out: Path) -> int:
    """IT energy per request with Polars, lazy end to end; returns the rows written."""
    import polars as pl  # noqa: PLC0415 (each reference loads only its own library)

    day0 = datetime(day.year, day.month, day.day, tzinfo=UTC)
    seconds_since = lambda c: (pl.col(c) - day0).dt.total_microseconds() / 1e6  # noqa: E731
    slot_energy = (pl.scan_parquet(readings_files)
                   .filter(pl.col("scope").is_in(["node", "gpu"]) & pl.col("power_w").is_not_null())
                   .group_by("node_id", (seconds_since("ts") // SLOT_S).cast(pl.Int64).alias("slot"))
                   .agg((pl.col("power_w") * SLOT_S).sum().alias("slot_energy_j")))

    end = seconds_since("completed_at").clip(0, 86_400)
    start = pl.min_horizontal((seconds_since("arrived_at") + pl.col("queue_s").fill_null(0.0)).clip(0, 86_400), end)
    x = (pl.scan_parquet(requests_files)
         .select("request_id", "node_id", start.alias("start"), end.alias("end"))
         .with_columns(pl.int_ranges((pl.col("start") // SLOT_S).cast(pl.Int64),
                                     (pl.col("end") / SLOT_S).ceil().cast(pl.Int64)).alias("slot"))
         .explode("slot")
         .with_columns((pl.min_horizontal("end", (pl.col("slot") + 1) * SLOT_S)
                        - pl.max_horizontal("start", pl.col("slot") * SLOT_S)).alias("seconds")))
    occupied = x.group_by("node_id", "slot").agg(pl.col("seconds").sum().alias("slot_seconds"))
    (x.join(occupied, on=["node_id", "slot"])
     .join(slot_energy, on=["node_id", "slot"], how="left")
     .group_by("request_id")
     .agg((pl.col("seconds") / pl.col("slot_seconds") * pl.col("slot_energy_j").fill_null(0.0)).sum()
          .alias("it_energy_j"))
     .sink_parquet(out))
    return pl.scan_parquet(out).select(pl.len()).collect().item()


REFERENCES = {"pandas": pandas_energy, "polars": polars_energy}
