"""Power of one node for one day, per second, following its requests; and its meter files.

Each replica's GPUs draw the performance profile's power at the batch the replica runs
(`fleetsim.profiles`), their idle power (~17% of TDP per GPU, an H100/H200 with a model loaded
and no request: ~120 W) at batch 0. The node's BMC reads the sum of its GPUs plus the host
(CPUs, memory, fans), which also rises with load. Counters integrate the
per-second power exactly, so DCGM mJ, Redfish kWh and the facility meter agree.

Files (docs/raw-formats.md): DCGM Prometheus scrapes every `dcgm_interval_s` (30 s) per
GPU with the power gauge (W), the energy counter (mJ since boot) and GPU utilization (%,
not a record); `ipmitool sdr` dumps or Redfish Sensor polls every `bmc_interval_s` (60 s).
"""

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime, UTC
from pathlib import Path

import numpy as np
import polars as pl

from fleetsim.profiles import replica_groups
from fleetsim.spec import FleetSpec, Node
from fleetsim.text import clock_strings, decimal_text, write_lines
from fleetsim.traffic import NodeRequests

SECONDS = 86_400
ENERGY_REF_DAY = date(2020, 1, 1)
DCGM_BLANK_INT64 = 9223372036854775794  # DCGM_INT64_NOT_SUPPORTED


@dataclass
class NodePower:
    node: Node
    gpu_w: np.ndarray  # (gpus, SECONDS) float64, W during each second
    node_w: np.ndarray  # (SECONDS,) float64, whole node (what the BMC sees)
    concurrency: np.ndarray  # (SECONDS,) mean requests on the GPUs during each second

    def energy_per_interval_j(self, seconds: int) -> np.ndarray:
        return self.node_w.reshape(-1, seconds).sum(axis=1)


def occupancy_per_second(start_s: np.ndarray, end_s: np.ndarray) -> np.ndarray:
    """Time-weighted number of intervals [start, end) open during each second of the day."""
    start_s = np.clip(start_s, 0, SECONDS - 1e-6)
    end_s = np.clip(end_s, start_s, SECONDS - 1e-6)
    fa, fb = np.floor(start_s).astype(np.int64), np.floor(end_s).astype(np.int64)
    whole = np.bincount(fa, minlength=SECONDS + 1) - np.bincount(fb, minlength=SECONDS + 1)
    corr = np.bincount(fb, weights=end_s - fb, minlength=SECONDS + 1) - np.bincount(fa, weights=start_s - fa,
                                                                                    minlength=SECONDS + 1)
    return (np.cumsum(whole) + corr)[:SECONDS]


def gpu_utilization(concurrency: np.ndarray, gpus: int) -> np.ndarray:
    """0..1: how hard the node's GPUs work with `concurrency` requests in flight. Steep at
    first (one decode stream already wakes every tensor-parallel rank), saturating as
    batches fill (~0.6 at one request per GPU, ~0.9 at four)."""
    return 1.0 - np.exp(-((concurrency / (1.2 * gpus)) ** 0.7))


def node_power(reqs: NodeRequests, rng: np.random.Generator, spec: FleetSpec) -> NodePower:
    """Per second: each replica group's GPUs at the profile's power for the batch its replicas
    run (requests in flight / replicas, within seconds), idle power at batch 0; the node = GPUs
    + host (idle, plus up to `host_dynamic_w` as the GPUs work)."""
    node, pool = reqs.node, reqs.node.pool
    start_s, end_s = reqs.gpu_start_ms / 1000.0, reqs.end_ms / 1000.0
    conc = occupancy_per_second(start_s, end_s)
    idle_gpu_w = pool.gpu_idle_frac * pool.gpu_tdp_w
    mean_w = np.full((pool.gpus, SECONDS), idle_gpu_w)
    for g in replica_groups(spec, pool):
        sel = reqs.model == g.model_index
        in_flight = np.convolve(occupancy_per_second(start_s[sel], end_s[sel]), np.ones(5) / 5, mode="same")
        batch = np.minimum(in_flight / g.replicas, g.max_batch)
        per_gpu = g.curve.power(batch, idle_gpu_w * g.gpus_per_replica) / g.gpus_per_replica
        mean_w[g.first_gpu: g.first_gpu + g.replicas * g.gpus_per_replica] = per_gpu
    share = rng.uniform(0.97, 1.03, pool.gpus)[:, None]  # GPUs of a replica differ a little
    noise = rng.normal(0.0, 0.012 * pool.gpu_tdp_w, (pool.gpus, SECONDS))
    gpu_w = np.clip(mean_w * share + noise, 0.1 * pool.gpu_tdp_w, pool.gpu_tdp_w)
    full_w = pool.gpus * (pool.gpu_max_frac * pool.gpu_tdp_w - idle_gpu_w)
    util = np.clip((mean_w.sum(axis=0) - pool.gpus * idle_gpu_w) / full_w, 0.0, 1.0)
    host = pool.host_idle_w + pool.host_dynamic_w * util + rng.normal(0.0, 4.0, SECONDS)
    return NodePower(node, gpu_w, gpu_w.sum(axis=0) + host, conc)


def _uuid(node_id: str, gpu: int) -> str:
    h = hashlib.sha1(f"{node_id}/gpu{gpu}".encode()).hexdigest()
    return f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _integral_j(watts: np.ndarray, t_s: np.ndarray) -> np.ndarray:
    """Energy (J) from 00:00 to each time `t_s` (s) of a per-second power series."""
    cum = np.concatenate([[0.0], np.cumsum(watts)])
    sec = np.minimum(np.floor(t_s).astype(np.int64), SECONDS - 1)
    return cum[sec] + (t_s - sec) * watts[sec]


@dataclass
class DcgmDefects:
    reboot_gpu: int | None = None  # GPU whose counter restarts near 0
    reboot_at_scrape: int | None = None
    blank_energy: list[tuple[int, int]] = field(default_factory=list)  # (gpu, scrape) with the sentinel


def write_dcgm(path: Path, day: date, power: NodePower, interval_s: int, rng: np.random.Generator,
               defects: DcgmDefects | None = None) -> tuple[int, int]:
    """One file of Prometheus scrapes for a node's GPUs. Returns (records, lines): records are
    the power and energy samples (what ingest counts), lines every line written."""
    node, pool = power.node, power.node.pool
    day0_ms = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)
    k = np.arange(SECONDS // interval_s)
    offset_ms = int(rng.integers(0, interval_s * 1000 - 1000))
    t_ms = np.minimum(k * interval_s * 1000 + offset_ms + rng.integers(-40, 41, len(k)), SECONDS * 1000 - 1)
    t_ms = np.maximum(t_ms, 0)
    t_s = t_ms / 1000.0
    sec = np.minimum(t_ms // 1000, SECONDS - 1)
    stamp = pl.Series((t_ms + day0_ms).astype(np.int64)).cast(pl.String)
    days = (day - ENERGY_REF_DAY).days
    util = np.clip(np.round(100 * gpu_utilization(power.concurrency[sec], pool.gpus)), 0, 100).astype(np.int64)

    cols: dict[str, pl.Series | str] = {}
    metrics = (("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %)."),
               ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W)."),
               ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "counter", "Total energy consumption since boot (in mJ)."))
    values: dict[str, list[pl.Series]] = {m[0]: [] for m in metrics}
    for g in range(pool.gpus):
        w = power.gpu_w[g]
        mw = np.round(w[sec] * (1.0 + rng.normal(0, 0.004, len(k))) * 1000).astype(np.int64)
        since_boot_j = float(rng.uniform(2e8, 9e9)) + days * pool.gpu_tdp_w * SECONDS  # monotone across days
        mj = np.round((since_boot_j + _integral_j(w, t_s)) * 1000).astype(np.int64)
        if defects and defects.reboot_gpu == g:
            r = defects.reboot_at_scrape
            restart_s = t_s[r] - float(rng.uniform(20, interval_s - 2))
            mj[r:] = np.round((_integral_j(w, t_s[r:]) - _integral_j(w, np.array([restart_s]))) * 1000).astype(np.int64)
        for gg, scrape in (defects.blank_energy if defects else []):
            if gg == g:
                mj[scrape] = DCGM_BLANK_INT64
        values["DCGM_FI_DEV_GPU_UTIL"].append(pl.Series(util).cast(pl.String))
        values["DCGM_FI_DEV_POWER_USAGE"].append(
            pl.select(decimal_text(pl.lit(pl.Series(mw)), 3) + "000").to_series())
        values["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"].append(pl.Series(mj).cast(pl.String))

    i = 0
    for name, kind, help_text in metrics:
        cols[f"c{i}"] = f"# HELP {name} {help_text}"
        cols[f"c{i + 1}"] = f"# TYPE {name} {kind}"
        i += 2
        for g in range(pool.gpus):
            labels = (f'{name}{{gpu="{g}",UUID="{_uuid(node.id, g)}",device="nvidia{g}",'
                      f'modelName="{pool.dcgm_model_name}",Hostname="{node.id}"}} ')
            cols[f"c{i}"] = pl.select(pl.concat_str([pl.lit(labels), pl.lit(values[name][g]), pl.lit(" "),
                                                     pl.lit(stamp)])).to_series()
            i += 1
    lines = pl.select(pl.concat_str([pl.lit(v) for v in cols.values()], separator="\n").alias("l"))
    write_lines(path, lines)
    return 2 * pool.gpus * len(k), len(cols) * len(k)


def bmc_sample_times(interval_s: int, rng: np.random.Generator) -> np.ndarray:
    """Seconds of the day a BMC poller sampled at: a fixed phase per host, a second of jitter."""
    k = np.arange(SECONDS // interval_s)
    phase = int(rng.integers(2, interval_s - 3))
    return k * interval_s + phase + rng.integers(0, 2, len(k))


def _trailing_mean(x: np.ndarray, at_s: np.ndarray, window: int) -> np.ndarray:
    cum = np.concatenate([[0.0], np.cumsum(x)])
    hi = np.minimum(at_s, SECONDS)
    lo = np.maximum(hi - window, 0)
    return (cum[hi] - cum[lo]) / np.maximum(hi - lo, 1)


def _pad(expr: pl.Expr, width: int) -> pl.Expr:
    return expr.str.pad_end(width)


def write_ipmi_sdr(path: Path, day: date, power: NodePower, interval_s: int, rng: np.random.Generator,
                   gap: tuple[int, int] | None = None) -> tuple[int, int]:
    """`ipmitool sdr` dumps, one block per poll. `gap` = (first, last) block indexes where the
    BMC did not answer: `Timestamp:` lines with no sensor lines (as in the Harvard dumps).
    Returns (records = blocks, lines)."""
    pool = power.node.pool
    t = bmc_sample_times(interval_s, rng)
    sys_w = np.round(_trailing_mean(power.node_w, t, 10)).astype(np.int64)
    util = np.clip((sys_w - pool.idle_w) / max(1.0, pool.nameplate_w - pool.idle_w), 0, 1)
    psu1 = np.round(sys_w * rng.uniform(0.49, 0.53, len(t))).astype(np.int64)
    cpu = np.round(90 + 140 * util + rng.normal(0, 4, len(t))).astype(np.int64)
    mem = np.round(40 + 35 * util + rng.normal(0, 2, len(t))).astype(np.int64)
    inlet = np.round(22 + rng.normal(0, 0.4, len(t))).astype(np.int64)
    exhaust = inlet + np.round(9 + 16 * util).astype(np.int64)
    fan = (np.round((5200 + 7800 * util + rng.normal(0, 120, len(t))) / 8) * 8).astype(np.int64)
    date_text = day.isoformat()

    def sensor(name: str, value: pl.Expr, status: str = "ok") -> pl.Expr:
        return pl.concat_str([pl.lit(f"{name:<24} | "), _pad(value, 17), pl.lit(f" | {status}")])

    def num(a: np.ndarray, unit: str) -> pl.Expr:
        return pl.lit(pl.Series(a)).cast(pl.String) + f" {unit}"

    ts_line = pl.concat_str([pl.lit(f"Timestamp: {date_text} "), pl.lit(clock_strings(t * 1000, millis=False)),
                             pl.lit(" UTC")])
    sensors = [
        sensor("Host Power", pl.lit("0x00")),
        sensor("IPMI Watchdog", pl.lit("0x00")),
        sensor("CPU Utilization", pl.lit("no reading"), "ns"),
        sensor("Sys Power", num(sys_w, "Watts")),
        sensor("CPU Power", num(cpu, "Watts")),
        sensor("Mem Power", num(mem, "Watts")),
        sensor("PSU1 AC In Pwr", num(psu1, "Watts")),
        sensor("PSU2 AC In Pwr", num(sys_w - psu1, "Watts")),
        sensor("Inlet Temp", num(inlet, "degrees C")),
        sensor("Exhaust Temp", num(exhaust, "degrees C")),
        sensor("Fan 1 Tach", num(fan, "RPM")),
        sensor("Fan 2 Tach", num(fan + 96, "RPM")),
        sensor("SysBrd 12V", pl.lit("12.04 Volts")),
        sensor("GPT Status", pl.lit("Not Readable"), "ns"),
    ]
    block = pl.concat_str([ts_line, *sensors], separator="\n")
    silent = np.zeros(len(t), dtype=bool)
    if gap:
        silent[gap[0]: gap[1] + 1] = True
    lines = pl.select(pl.when(pl.lit(pl.Series(silent))).then(ts_line).otherwise(block).alias("l"))
    write_lines(path, lines)
    return len(t), int(len(t) + (~silent).sum() * len(sensors))


def write_redfish(path: Path, day: date, power: NodePower, interval_s: int,
                  rng: np.random.Generator) -> tuple[int, int]:
    """Redfish Sensor polls: TotalPower (W) and TotalEnergy (kW.h, cumulative) per poll, one
    JSON object per line. Returns (records, lines), both the number of lines."""
    node = power.node
    t = bmc_sample_times(interval_s, rng)
    deci_w = np.round(_trailing_mean(power.node_w, t, 5) * 10).astype(np.int64)
    days = (day - ENERGY_REF_DAY).days
    base_wh = float(rng.uniform(2e6, 9e6)) + days * node.pool.nameplate_w * 24
    wh = np.round(base_wh + _integral_j(power.node_w, t.astype(np.float64)) / 3600.0).astype(np.int64)
    stamp = pl.concat_str([pl.lit(f"{day.isoformat()}T"), pl.lit(clock_strings(t * 1000, millis=False)),
                           pl.lit("+00:00")])
    chassis = "/redfish/v1/Chassis/1/Sensors"
    status = '"Status":{"State":"Enabled","Health":"OK"}}'
    power_line = pl.concat_str([
        pl.lit(f'{{"@odata.id":"{chassis}/TotalPower","@odata.type":"#Sensor.v1_9_0.Sensor","Id":"TotalPower",'
               '"Name":"Total Power","ReadingType":"Power","Reading":'),
        decimal_text(pl.lit(pl.Series(deci_w)), 1),
        pl.lit(',"ReadingUnits":"W","ReadingTime":"'), stamp, pl.lit('","PhysicalContext":"Chassis",' + status)])
    energy_line = pl.concat_str([
        pl.lit(f'{{"@odata.id":"{chassis}/TotalEnergy","@odata.type":"#Sensor.v1_9_0.Sensor","Id":"TotalEnergy",'
               '"Name":"Total Energy","ReadingType":"EnergykWh","Reading":'),
        decimal_text(pl.lit(pl.Series(wh)), 3),
        pl.lit(',"ReadingUnits":"kW.h","ReadingTime":"'), stamp, pl.lit('","PhysicalContext":"Chassis",' + status)])
    lines = pl.select(pl.concat_str([power_line, energy_line], separator="\n").alias("l"))
    write_lines(path, lines)
    return 2 * len(t), 2 * len(t)
