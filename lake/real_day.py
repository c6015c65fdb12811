"""The raw drop of `inferledger demo --real` (make demo-real; docs/real-data.md): one day built only
from the real public samples the repository ships (tests/data/real/), placed in the raw layout
(docs/raw-formats.md) as their exporters would deliver them. No sample file is changed: each is
copied as it is, or replayed onto the day by `import-trace`'s code (lake/trace_logs.py).

How each sample is placed on REAL_DAY, the day of the IPMI dumps (docs/real-data.md, "The worked
example" has the why of each):

- Harvard FASRC `ipmitool sdr` dumps: `<day>/mghpcc/ipmi/`, as they are (their own day).
- Azure LLM inference trace 2023 (code + conv): replayed on holygpu8a11101 from 02:08:08 UTC, the
  start of that node's dump.
- Mooncake FAST'25 conversation trace: replayed on holygpu2c0701 from 00:00 UTC, the start of that
  node's dump.
- FOCUS 1.0 sample (September 2024): `<day>/aws-us-west-2/focus/`, a bill delivered that day; its
  lines reach September 2024's days (DOMAIN.md section 7), not this one.
- ECB reference rates (2025-04-14 to 2025-04-25): `<day>/_fleet/fx/`, as they are (the fleet
  reports in EUR, the prices' currency: nothing of the day is converted).
- Energinet day-ahead prices, DK2: the UTC day PRICE_DAY (2022-10-18, the slice's one complete day)
  replayed onto the day, `prices/Elspotprices.csv` in Energinet's own layout (`replay_prices`).
"""

import shutil
from dataclasses import dataclass
from datetime import date, time, timedelta
from pathlib import Path

import polars as pl

from lake.files import write_atomically, write_text
from lake.inventory import NAME as INVENTORY_NAME
from lake.inventory import load_inventory
from lake.trace_logs import Replay, WrittenLog, replayed_requests, write_request_logs

REAL_DAY = date(2025, 6, 3)
INVENTORY = Path(__file__).with_name("real_day_inventory.yaml")
SITE, CLOUD_SITE = "mghpcc", "aws-us-west-2"
MODEL = "llama-3.1-70b-instruct"

# (sample folder, file names, destination under <raw>/<day>/): copied as they are.
COPIES = (
    ("harvard_fasrc_ipmi_sdr", ("ipmi_sdr_holygpu2c0701_2025-06-03_first60min.txt",
                                "ipmi_sdr_holygpu8a11101_2025-06-03_0208-0308UTC.txt",
                                "ipmi_sdr_lichtmandce04_2025-06-03_first60min.txt"), f"{SITE}/ipmi"),
    ("focus_sample_data_v1.0", ("focus_sample.csv",), f"{CLOUD_SITE}/focus"),
    ("ecb_eurofxref_hist", ("eurofxref-hist.csv",), "_fleet/fx"),
)
# (sample folder, files, replay): the traces, replayed by import-trace's code.
TRACES = (
    ("azure_llm_inference_2023", ("AzureLLMInferenceTrace_code.csv", "AzureLLMInferenceTrace_conv.csv"),
     Replay("azure", REAL_DAY, "holygpu8a11101", MODEL, "standard", "azure-replay", start=time(2, 8, 8))),
    ("mooncake_fast25_traces", ("conversation_trace.jsonl",),
     Replay("mooncake", REAL_DAY, "holygpu2c0701", MODEL, "batch", "kimi-replay", start=time(0, 0))),
)
# No price of the day ships with the samples (the Energinet slice is 2022-10-17..19; docs/real-data.md,
# "Prices: a replayed Energinet day"): the slice's one complete UTC day, replayed onto the day.
PRICES = ("energinet_elspot_dk2", "Elspotprices.csv")
PRICE_DAY = date(2022, 10, 18)
PRICE_FILE = "prices/Elspotprices.csv"


class MissingSample(FileNotFoundError):
    """A sample the real day needs is not in the samples folder."""


@dataclass
class RealDay:
    """What `assemble_real_day` wrote: the raw directory, its day, the files copied and the logs."""

    raw: Path
    day: date
    copied: list[tuple[Path, Path]]
    logs: list[WrittenLog]
    prices: Path

    def describe(self) -> str:
        lines = [f"real public samples placed on {self.day} in {self.raw}:"]
        lines += [f"  {src.parent.name}/{src.name} -> {dst.relative_to(self.raw)}" for src, dst in self.copied]
        lines += [f"  trace replayed: {w.requests:,} requests -> {w.path.relative_to(self.raw)}" for w in self.logs]
        lines.append(f"  {PRICES[0]}/{PRICES[1]}: Energinet DK2 prices of {PRICE_DAY} (UTC) replayed onto "
                     f"{self.day} -> {self.prices.relative_to(self.raw)}")
        return "\n".join(lines)


def _sample(samples: Path, folder: str, name: str) -> Path:
    path = Path(samples) / folder / name
    if not path.is_file():
        raise MissingSample(f"{path}: sample missing; the real day needs the samples of the repository's "
                            "tests/data/real (pass their folder with --samples)")
    return path


def replay_prices(sample: Path, days: list[date], source: date = PRICE_DAY) -> str:
    """The text of an Energinet Elspotprices export (docs/raw-formats.md) whose rows are the
    sample's rows of the UTC day `source`, once for each of `days`: the sample's header, then the
    rows newest first, as Energinet writes them. Only the dates of `HourUTC` and `HourDK` change
    (each moved by the days from `source` to the day; the hours, the price area, the prices and
    their decimal commas are the sample's bytes). Both days are in Danish summer time (UTC+2), so a
    row's HourDK stays its HourUTC's Danish hour."""
    text = Path(sample).read_text(encoding="utf-8")
    header, _, body = text.partition("\n")
    rows = pl.LazyFrame({"line": body.splitlines()}).filter(pl.col("line").str.starts_with(f"{source.isoformat()} "))
    dk = pl.col("line").str.slice(17, 10).str.to_date("%Y-%m-%d")
    replayed = pl.concat([rows.select(pl.concat_str(
        pl.lit(day.isoformat()), pl.col("line").str.slice(10, 7),
        (dk + timedelta(days=(day - source).days)).dt.strftime("%Y-%m-%d"), pl.col("line").str.slice(27)
    ).alias("line")) for day in sorted(days, reverse=True)]).collect()
    if replayed.height != 24 * len(days):
        raise MissingSample(f"{sample}: {replayed.height // max(len(days), 1)} rows of {source} (UTC), not 24; the "
                            "real day replays that whole day (restore the sample from tests/data/real)")
    return "\n".join([header, *replayed["line"]]) + "\n"


def assemble_real_day(samples: Path, raw: Path) -> RealDay:
    """Write the raw drop of REAL_DAY into `raw` from the samples folder (tests/data/real): the
    inventory, the copied samples, the replayed traces and the replayed prices. Files of an earlier
    assembly are replaced."""
    raw = Path(raw)
    day_dir = raw / REAL_DAY.isoformat()
    sources = [(_sample(samples, folder, name), day_dir / dest / name) for folder, names, dest in COPIES
               for name in names]
    traces = [([_sample(samples, folder, name) for name in names], replay) for folder, names, replay in TRACES]
    price_text = replay_prices(_sample(samples, *PRICES), [REAL_DAY])
    raw.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(INVENTORY, raw / INVENTORY_NAME)
    inventory = load_inventory(raw / INVENTORY_NAME)
    for src, dst in sources:
        dst.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(dst, lambda tmp, src=src: shutil.copyfile(src, tmp))
    logs = []
    for files, replay in traces:
        logs += write_request_logs(replayed_requests(replay, files, inventory), raw, replay, files, force=True)
    prices = raw / PRICE_FILE
    prices.parent.mkdir(parents=True, exist_ok=True)
    write_text(prices, price_text)
    return RealDay(raw, REAL_DAY, sources, logs, prices)
