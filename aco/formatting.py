"""How figures are written for people: shares, money and counts, defined once.

Every human-readable output of both command lines (`aco`, `aco-lab`) and the figures in the
reports' text use these, so a success rate reads 65.8% and a cost $0.0000802 everywhere.
Machine-readable output (`--json`, metrics.json, CSV) keeps the raw numbers.

- share: a fraction 0..1 as a percentage with one decimal (0.6583 -> 65.8%), as the
  dashboard's charts write it (d3's `.1%`).
- money: US dollars. From $1 up, cents with thousands separators ($7,931.16); below $1, three
  significant digits without trailing zeros ($0.25, $0.5, $0.0000802; nothing: $0), as the
  dashboard's charts write it (d3's `$,.3~r`): per-request costs are often fractions of a
  cent. Never an exponent.
- count: a whole number with thousands separators (200,000).
"""

from __future__ import annotations

import math

MONEY_DIGITS = 3  # significant digits of an amount below $1
SHARE_DECIMALS = 1  # decimals of a percentage


def format_share(value: float) -> str:
    """A fraction as a percentage with one decimal: 0.6583 -> '65.8%'."""
    return f"{100.0 * value:.{SHARE_DECIMALS}f}%"


def format_money(value: float) -> str:
    """US dollars: '$7,931.16' from $1 up, '$0.0000802' (three significant digits) below."""
    if not math.isfinite(value):
        return f"${value}"
    sign, size = ("-" if value < 0 else ""), abs(value)
    if size == 0:
        return "$0"
    if size >= 1:
        return f"{sign}${size:,.2f}"
    decimals = MONEY_DIGITS - 1 - math.floor(math.log10(size))
    digits = f"{size:.{decimals}f}".rstrip("0").rstrip(".")
    return f"{sign}${size:,.2f}" if digits == "1" else f"{sign}${digits}"  # 0.9996: $1.00


def format_count(value: int) -> str:
    """A whole number with thousands separators: 200000 -> '200,000'."""
    return f"{value:,}"
