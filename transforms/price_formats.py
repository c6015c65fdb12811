"""The market price file formats a tariff may name (`market_price_format:`, docs/inventory.md,
"Market price files"), and the inventory's rules for them: what each format needs and refuses.
The `Tariff` model (`transforms.inventory`) calls these; they read its fields only.
"""

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

FORMATS = ("canonical", "energinet_elspot", "hourly_csv")
# The `hourly_csv` keys, refused on another format.
HOURLY_CSV_KEYS = ("market_price_columns", "market_price_separator", "market_price_decimal", "market_price_unit",
                   "market_price_timezone")


def price_format_problems(t: Any) -> list[str]:
    """What the tariff's `market_price_format` lacks or does not read (docs/inventory.md)."""
    fmt, problems = t.market_price_format, []
    if fmt != "canonical" and t.kind != "market":
        problems.append(f"`market_price_format: {fmt}` is for a market tariff; remove it")
    if fmt == "energinet_elspot":
        if not t.market_price_area:
            problems.append("an energinet_elspot tariff needs `market_price_area:` (the PriceArea its site buys in, "
                            "e.g. DK1 or DK2)")
        if t.currency not in ("EUR", "DKK"):
            problems.append(f"an energinet_elspot tariff is priced in EUR (SpotPriceEUR) or DKK (SpotPriceDKK), "
                            f"not {t.currency}; set `currency:` to one of them")
    elif t.market_price_area is not None:
        problems.append(f"`market_price_area:` is read by the energinet_elspot format only, not {fmt}; remove it")
    if fmt == "hourly_csv":
        if t.market_price_columns is None:
            problems.append("an hourly_csv tariff needs `market_price_columns: {hour: <column>, price: <column>}`")
        if t.market_price_separator == "," and t.market_price_decimal == ",":
            problems.append("`market_price_separator` and `market_price_decimal` are both ','; a file cannot use "
                            "one character for both: set the separator (e.g. ';')")
        if t.market_price_timezone is not None:
            try:
                ZoneInfo(t.market_price_timezone)
            except (ZoneInfoNotFoundError, ValueError):
                problems.append(f"`market_price_timezone: {t.market_price_timezone}` is not an IANA time zone "
                                "(e.g. Europe/Copenhagen, UTC)")
    else:
        extra = [k for k in HOURLY_CSV_KEYS if getattr(t, k) is not None]
        if extra:
            problems.append(f"{', '.join(extra)} {'is' if len(extra) == 1 else 'are'} read by the hourly_csv format "
                            f"only, not {fmt}; remove {'it' if len(extra) == 1 else 'them'} or set "
                            "`market_price_format: hourly_csv`")
    return problems


def shared_price_file_problems(tariffs: list[Any]) -> list[str]:
    """Tariffs naming one price file must read it one way (its format and separator)."""
    problems, first = [], {}
    for i, t in enumerate(tariffs):
        if t.kind != "market" or not t.market_price_file:
            continue
        way = (t.market_price_format, t.price_separator)
        j, other = first.setdefault(t.market_price_file, (i, way))
        if other != way:
            problems.append(f"tariffs[{i}].market_price_format: {t.market_price_file} is read by tariffs[{j}] as "
                            f"{other[0]} (separator {other[1]!r}), here as {way[0]} (separator {way[1]!r}); "
                            "a file is read one way: make them agree")
    return problems
