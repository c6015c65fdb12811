"""Column-wise text building: numbers and times to fixed text without per-row Python.

Fixed-width fields (hex ids, clock times) are built as byte matrices in numpy and handed to
Polars through Arrow; variable-width numbers go through Polars casts. Floats are never
printed by a float formatter: values are scaled integers (ms, mW, Wh) printed with a decimal
point, so the same seed gives the same bytes on every machine.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

_HEX = np.array([f"{i:02x}".encode() for i in range(256)], dtype="S2")


def _bytes_to_series(fixed: np.ndarray, name: str) -> pl.Series:
    """A numpy `S<n>` array to a Polars String Series."""
    return pl.Series(name, pl.from_arrow(pc.cast(pa.array(fixed), pa.string())))


def hex_strings(octets: np.ndarray, name: str = "hex") -> pl.Series:
    """(n, k) uint8 -> n lowercase hex strings of 2k characters."""
    octets = np.ascontiguousarray(octets, dtype=np.uint8)
    return _bytes_to_series(_HEX[octets].view(f"S{2 * octets.shape[1]}").ravel(), name)


def uint_octets(values: np.ndarray, width: int) -> np.ndarray:
    """Big-endian octets of non-negative integers, (n, width) uint8."""
    v = np.asarray(values, dtype=np.uint64)
    shifts = np.arange(width - 1, -1, -1, dtype=np.uint64) * np.uint64(8)
    return ((v[:, None] >> shifts[None, :]) & np.uint64(0xFF)).astype(np.uint8)


def clock_strings(ms_of_day: np.ndarray, *, millis: bool = True, name: str = "clock") -> pl.Series:
    """Milliseconds since midnight -> `HH:MM:SS.mmm` (or `HH:MM:SS`)."""
    ms = np.asarray(ms_of_day, dtype=np.int64)
    h, m, s, f = ms // 3_600_000, (ms // 60_000) % 60, (ms // 1000) % 60, ms % 1000
    cols = [h // 10, h % 10, None, m // 10, m % 10, None, s // 10, s % 10]
    if millis:
        cols += [None, f // 100, (f // 10) % 10, f % 10]
    out = np.empty((len(ms), len(cols)), dtype=np.uint8)
    for i, c in enumerate(cols):
        out[:, i] = (ord(":") if i in (2, 5) else ord(".")) if c is None else c + 48
    return _bytes_to_series(out.view(f"S{len(cols)}").ravel(), name)


def decimal_text(scaled: pl.Expr, decimals: int) -> pl.Expr:
    """A non-negative integer expression holding value x 10^decimals, as `int.frac` text."""
    unit = 10 ** decimals
    return pl.concat_str([(scaled // unit).cast(pl.String), pl.lit("."),
                          (scaled % unit).cast(pl.String).str.zfill(decimals)])


def signed_decimal_text(scaled: pl.Expr, decimals: int) -> pl.Expr:
    return (pl.when(scaled < 0).then(pl.lit("-") + decimal_text(-scaled, decimals))
            .otherwise(decimal_text(scaled, decimals)))


# Compressed request logs (`simulate(..., compress=...)`): codec -> the suffix added to `.jsonl`.
COMPRESSION_SUFFIX = {"zstd": ".zst", "gzip": ".gz"}


@contextmanager
def line_sink(path: Path) -> Iterator:
    """A binary stream writing `path`, compressed as its suffix says (`.zst`: zstd, `.gz`: gzip,
    anything else: plain), for writing lines chunk by chunk (`write_lines_to`)."""
    codec = {suffix: codec for codec, suffix in COMPRESSION_SUFFIX.items()}.get(path.suffix)
    if codec is None:
        with open(path, "wb") as f:
            yield f
    else:
        with pa.CompressedOutputStream(str(path), codec) as f:
            yield f


def write_lines_to(sink, lines: pl.DataFrame) -> int:
    """Write each string of the one-column `lines` as one line ending in `\\n` into `sink` (a
    `line_sink`); returns the number of strings written."""
    if lines.height:
        lines.write_csv(sink, include_header=False, quote_style="never")
    return lines.height


def write_lines(path: Path, lines: pl.Series | pl.DataFrame) -> int:
    """Write each string as one line ending in `\\n` to `path` (compressed as its suffix says);
    returns the number of strings written."""
    with line_sink(path) as sink:
        return write_lines_to(sink, lines.to_frame() if isinstance(lines, pl.Series) else lines)


def money(x: float) -> str:
    """Amounts rounded half-up to the cent, two decimals."""
    return f"{round_cents(x):.2f}"


def round_cents(x: float) -> float:
    return float(Decimal(repr(float(x))).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))
