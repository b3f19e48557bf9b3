"""Reading one field of a bundle payload: its type, range and length, or a PayloadError naming it.

`Fields(data, where, known)` wraps one mapping of the payload; each accessor (`int`, `float`,
`str`, `bool`, `array`, `strings`, `floats`, `section`, ...) returns the field's value checked
and converted, or raises `PayloadError` with the field's path: ``model.booster.threshold:
expected little-endian float64 bytes (a multiple of 8), got 13 bytes``. The dataclasses of
`aco.payload` are built from these; nothing else reads a payload's raw dicts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from aco.errors import BundleError

MAX_SHOWN = 40  # characters of a wrong value quoted in an error


class PayloadError(BundleError):
    """A bundle payload's field is missing, of the wrong type, out of range or inconsistent."""


def shown(value: Any) -> str:
    """A wrong value as an error quotes it: its type and a short repr."""
    text = repr(value)
    if len(text) > MAX_SHOWN:
        text = text[:MAX_SHOWN] + "..."
    return f"{type(value).__name__} {text}"


def is_int(value: Any) -> bool:
    """An int that is not a bool."""
    return type(value) is int


def is_number(value: Any) -> bool:
    """An int or float that is not a bool."""
    return type(value) in (int, float)


def check(ok: bool, where: str, expected: str, value: Any) -> None:
    """Raise PayloadError `where: expected ..., got ...` unless ok."""
    if not ok:
        raise PayloadError(f"{where}: expected {expected}, got {shown(value)}")


def as_float(
    value: Any,
    where: str,
    lo: float = -math.inf,
    hi: float = math.inf,
    finite: bool = True,
    lo_open: bool = False,
) -> float:
    """A number in [lo, hi] (or (lo, hi] with lo_open) as a float; finite unless told."""
    ok = is_number(value)
    if ok:
        value = float(value)
        ok = (not finite or math.isfinite(value)) and not math.isnan(value)
        ok = ok and (value > lo if lo_open else value >= lo) and value <= hi
    bound = f"{'(' if lo_open else '['}{lo:g}, {hi:g}]"
    check(ok, where, f"a {'finite ' if finite else ''}number in {bound}", value)
    return value


def as_int(value: Any, where: str, lo: int | None = None, hi: int | None = None) -> int:
    """An int (not a bool) in [lo, hi]."""
    ok = is_int(value) and (lo is None or value >= lo) and (hi is None or value <= hi)
    span = f" in {lo}..{hi}" if hi is not None else f" >= {lo}" if lo is not None else ""
    check(ok, where, f"an int{span}", value)
    return value


def as_str(value: Any, where: str, choices: Iterable[str] | None = None) -> str:
    """A str, one of `choices` when given."""
    if choices is not None:
        choices = tuple(choices)
        check(type(value) is str and value in choices, where, f"one of {', '.join(choices)}", value)
    check(type(value) is str, where, "a str", value)
    return value


def as_list(value: Any, where: str, length: int | None = None) -> list | tuple:
    """A list or tuple (of `length` items when given)."""
    ok = type(value) in (list, tuple) and (length is None or len(value) == length)
    check(ok, where, "a list" + (f" of {length} items" if length is not None else ""), value)
    return value


def as_strings(value: Any, where: str, distinct: bool = False) -> tuple[str, ...]:
    """A list of str (distinct when told)."""
    items = as_list(value, where)
    for i, item in enumerate(items):
        as_str(item, f"{where}[{i}]")
    if distinct and len(set(items)) != len(items):
        raise PayloadError(f"{where}: expected distinct strings, got a repeated one")
    return tuple(items)


def as_floats(
    value: Any, where: str, length: int | None = None, lo: float = -math.inf, hi: float = math.inf
) -> tuple[float, ...]:
    """A list of finite numbers in [lo, hi], as floats."""
    items = as_list(value, where, length)
    return tuple(as_float(v, f"{where}[{i}]", lo, hi) for i, v in enumerate(items))


def as_ints(
    value: Any, where: str, lo: int | None = None, hi: int | None = None, length: int | None = None
) -> tuple[int, ...]:
    """A list of ints in [lo, hi]."""
    items = as_list(value, where, length)
    return tuple(as_int(v, f"{where}[{i}]", lo, hi) for i, v in enumerate(items))


def as_array(value: Any, where: str, dtype: str, count: int | None = None) -> np.ndarray:
    """Little-endian bytes of `dtype` (`count` items when given), decoded read-only."""
    size = np.dtype(dtype).itemsize
    ok = type(value) is bytes and len(value) % size == 0
    ok = ok and (count is None or len(value) == count * size)
    expected = f"{dtype} bytes" + (
        f" of {count} items ({count * size} bytes)"
        if count is not None
        else f" (a multiple of {size})"
    )
    if type(value) is bytes and not ok:
        raise PayloadError(f"{where}: expected {expected}, got {len(value)} bytes")
    check(ok, where, expected, value)
    return np.frombuffer(value, dtype=dtype)


def check_finite(array: np.ndarray, where: str, allow_nan: bool = False) -> None:
    """Refuse infinities (and NaN unless allowed) in a decoded array, naming the first."""
    bad = ~np.isfinite(array) if not allow_nan else np.isinf(array)
    if bad.any():
        i = int(np.flatnonzero(bad.ravel())[0])
        raise PayloadError(f"{where}[{i}]: expected a finite number, got {array.ravel()[i]!r}")


def _listed(names: Iterable[str]) -> str:
    names = list(names)
    return ", ".join(names) if len(names) <= 6 else ", ".join(names[:6]) + ", ... (docs/bundle.md)"


class Fields:
    """One mapping of the payload, read field by field; unknown fields are refused."""

    def __init__(self, data: Any, where: str, known: Iterable[str]) -> None:
        check(type(data) is dict, where, "a mapping", data)
        self.data, self.where = data, where
        unknown = sorted(str(k) for k in data if k not in set(known))
        if unknown:
            raise PayloadError(
                f"{self.at(unknown[0])}: unknown field; this aco reads {_listed(known)}"
            )

    def at(self, key: str) -> str:
        """The path of one field."""
        return f"{self.where}.{key}" if self.where else key

    def has(self, key: str) -> bool:
        """Whether the field is present (and not None)."""
        return self.data.get(key) is not None

    def get(self, key: str) -> Any:
        """A required field's raw value."""
        if key not in self.data:
            raise PayloadError(f"{self.at(key)}: missing; rebuild the bundle with this aco-lab")
        return self.data[key]

    def int(self, key: str, lo: int | None = None, hi: int | None = None) -> int:
        """A required int field in [lo, hi]."""
        return as_int(self.get(key), self.at(key), lo, hi)

    def float(
        self,
        key: str,
        lo: float = -math.inf,
        hi: float = math.inf,
        finite: bool = True,
        lo_open: bool = False,
    ) -> float:
        """A required number field in [lo, hi], as a float."""
        return as_float(self.get(key), self.at(key), lo, hi, finite, lo_open)

    def str(self, key: str, choices: Iterable[str] | None = None) -> str:
        """A required str field (one of choices when given)."""
        return as_str(self.get(key), self.at(key), choices)

    def bool(self, key: str) -> bool:
        """A required bool field."""
        value = self.get(key)
        check(type(value) is bool, self.at(key), "true or false", value)
        return value

    def array(self, key: str, dtype: str, count: int | None = None) -> np.ndarray:
        """A required bytes field of `dtype` items."""
        return as_array(self.get(key), self.at(key), dtype, count)

    def mapping(self, key: str) -> Mapping[Any, Any]:
        """A required mapping field, not read further here."""
        value = self.get(key)
        check(type(value) is dict, self.at(key), "a mapping", value)
        return value
