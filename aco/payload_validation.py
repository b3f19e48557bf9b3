"""The validation section of a bundle payload: what training measured, section by section.

Sections of named figures (numbers or bools): the operating point and the calibration (both
required), the task-type predictor, the folds; and the selection: which candidate router the
cross-validation chose, why, and every candidate's figures (aco_lab.train.model_selection).
"""

from __future__ import annotations

from typing import Any

from aco.payload_fields import (
    Fields,
    PayloadError,
    as_floats,
    as_int,
    as_str,
    check,
    is_number,
)
from aco.trace_format import TIERS

N_TIERS = len(TIERS)

FIGURE_SECTIONS = {  # validation section -> the figures it must have (others may follow)
    "operating_point": (
        "n_requests",
        "success",
        "cost",
        "top_success",
        "top_cost",
        "success_ratio",
        "cost_ratio",
        "met_floor",
    ),
    "calibration": ("n", "brier_before", "brier_after", "log_loss_before", "log_loss_after"),
    "task_type": (),
    "folds": (),
    "selection": None,  # the candidates' cross-validated figures: read_selection
}


def read_figures(data: Any, where: str, required: tuple[str, ...]) -> dict[str, Any]:
    """A section of named figures: str keys, values numbers (NaN allowed) or bools."""
    check(type(data) is dict, where, "a mapping", data)
    for key, value in data.items():
        as_str(key, f"{where} key")
        check(is_number(value) or type(value) is bool, f"{where}.{key}", "a number or bool", value)
    for key in required:
        if key not in data:
            raise PayloadError(f"{where}.{key}: missing; rebuild the bundle with this aco-lab")
    if "n_requests" in required:
        as_int(data["n_requests"], f"{where}.n_requests", 0)
    return dict(data)


def read_validation(data: Any, where: str = "validation") -> dict[str, dict[str, Any]]:
    """The validation figures, section by section (operating_point and calibration required)."""
    f = Fields(data, where, FIGURE_SECTIONS)
    out = {
        key: read_figures(f.get(key), f.at(key), required)
        for key, required in FIGURE_SECTIONS.items()
        if required is not None and (key in data or required)
    }
    if f.has("selection"):
        out["selection"] = read_selection(f.get("selection"), f.at("selection"))
    return out


def read_selection(data: Any, where: str) -> dict[str, Any]:
    """Which candidate won the cross-validation and why, with every candidate's figures (a
    number, None where its curve never reached the target) and, for a table, its rates."""
    f = Fields(data, where, ("winner", "why", "target", "folds", "candidates", "table"))
    f.str("winner"), f.str("why"), f.float("target", 0.0), f.int("folds", 1)
    for name, figures in f.mapping("candidates").items():
        at = f"{f.at('candidates')}.{as_str(name, f.at('candidates') + ' key')}"
        check(type(figures) is dict, at, "a mapping", figures)
        for key, value in figures.items():
            check(
                value is None or is_number(value),
                f"{at}.{as_str(key, at + ' key')}",
                "a number or None",
                value,
            )
    if f.has("table"):
        for name, rates in f.mapping("table").items():
            as_floats(
                rates, f"{f.at('table')}.{as_str(name, f.at('table') + ' key')}", N_TIERS, 0.0, 1.0
            )
    return dict(data)
