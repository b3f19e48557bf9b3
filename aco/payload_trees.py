"""LightGBM trees in a bundle payload: one entry table for all trees, checked at load.

The `lgbm_trees` model data (docs/bundle.md) that aco.payload_models' LightGBM router holds and
aco.scoring compiles: counts, table lengths, indexes inside the table, proper trees of the
stated depth, finite values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from aco.payload_fields import Fields, PayloadError, as_ints, as_strings, check_finite

LGBM_TREES_KIND = "lgbm_trees"
LGBM_LAYOUT_VERSION = 1
MISSING_CODES = 5  # 0 none, 1/2 NaN left/right, 3/4 zero and NaN left/right (aco.tree_walk)
LGBM_OBJECTIVES = (
    "binary",
    "multiclass",
    "multiclassova",
    "softmax",
    "cross_entropy",
    "regression",
    "poisson",
    "gamma",
    "tweedie",
)


@dataclass(frozen=True, slots=True)
class LgbmTrees:
    """LightGBM trees in one entry table (docs/bundle.md): tree i scores class i % num_class."""

    num_class: int
    num_trees: int
    num_features: int
    max_depth: int
    average_output: bool
    objective: str
    feature_names: tuple[str, ...]
    monotone_constraints: tuple[int, ...]
    tree_root: bytes  # <i4 per tree
    feature: bytes  # <i4 per entry
    threshold: bytes  # <f8 per entry
    left: bytes  # <i4 per entry; a leaf points to itself
    missing: bytes  # u1 per entry
    value: bytes  # <f8 per entry

    TABLES: ClassVar = (
        ("tree_root", "<i4"),
        ("feature", "<i4"),
        ("threshold", "<f8"),
        ("left", "<i4"),
        ("missing", "u1"),
        ("value", "<f8"),
    )
    FIELDS: ClassVar = (
        "kind",
        "layout_version",
        "num_class",
        "num_trees",
        "num_features",
        "max_depth",
        "average_output",
        "objective",
        "feature_names",
        "monotone_constraints",
        *(name for name, _ in TABLES),
    )

    @classmethod
    def from_dict(cls, data: Any, where: str) -> LgbmTrees:
        """Checked: counts, table lengths, indexes inside, proper trees, depth, finite values."""
        f = Fields(data, where, cls.FIELDS)
        f.str("kind", (LGBM_TREES_KIND,))
        f.int("layout_version", LGBM_LAYOUT_VERSION, LGBM_LAYOUT_VERSION)
        num_class, num_trees = f.int("num_class", 1), f.int("num_trees", 1)
        if num_trees % num_class:
            raise PayloadError(
                f"{f.at('num_trees')}: {num_trees} is not a multiple of num_class {num_class}"
            )
        num_features = f.int("num_features", 1)
        objective = f.str("objective")
        name, _, param = objective.partition(" ")
        if name not in LGBM_OBJECTIVES or (
            param.startswith("sigmoid:") and not _is_number(param[len("sigmoid:") :])
        ):
            raise PayloadError(
                f"{f.at('objective')}: expected a LightGBM objective "
                f"({', '.join(LGBM_OBJECTIVES)}), got {objective!r}"
            )
        names = as_strings(f.get("feature_names"), f.at("feature_names"))
        monotone = as_ints(f.get("monotone_constraints"), f.at("monotone_constraints"), -1, 1)
        for key, items in (("feature_names", names), ("monotone_constraints", monotone)):
            if len(items) not in (0, num_features):
                raise PayloadError(
                    f"{f.at(key)}: expected {num_features} items (num_features) "
                    f"or none, got {len(items)}"
                )
        tables = {key: f.array(key, dtype) for key, dtype in cls.TABLES}
        depth = _check_trees(tables, num_trees, num_features, where)
        f.int("max_depth", depth, depth)
        return cls(
            num_class,
            num_trees,
            num_features,
            depth,
            f.bool("average_output"),
            objective,
            names,
            monotone,
            *(f.get(key) for key, _ in cls.TABLES),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the payload."""
        return {
            "kind": LGBM_TREES_KIND,
            "layout_version": LGBM_LAYOUT_VERSION,
            "num_class": self.num_class,
            "num_trees": self.num_trees,
            "num_features": self.num_features,
            "max_depth": self.max_depth,
            "average_output": self.average_output,
            "objective": self.objective,
            "feature_names": list(self.feature_names),
            "monotone_constraints": list(self.monotone_constraints),
            **{key: getattr(self, key) for key, _ in self.TABLES},
        }


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _check_trees(t: dict[str, np.ndarray], num_trees: int, num_features: int, where: str) -> int:
    """Refuse tables that are not num_trees proper binary trees; return their depth."""
    left, roots = t["left"].astype(np.int64), t["tree_root"].astype(np.int64)
    n = len(left)
    for key in ("feature", "threshold", "missing", "value"):
        if len(t[key]) != n:
            raise PayloadError(f"{where}.{key}: {len(t[key])} entries, left has {n}")
    if len(roots) != num_trees:
        raise PayloadError(f"{where}.tree_root: {len(roots)} roots, num_trees is {num_trees}")
    inner = np.flatnonzero(left != np.arange(n))

    def refuse(key: str, bad: np.ndarray, what: str) -> None:
        if bad.any():
            i = int(inner[np.flatnonzero(bad)[0]])
            raise PayloadError(f"{where}.{key}[{i}]: expected {what}, got {t[key][i].item()!r}")

    refuse(
        "left",
        (left[inner] <= inner) | (left[inner] + 1 >= n),
        f"a child after its parent and inside the table (< {n - 1})",
    )
    every = np.arange(n)  # leaves too: the walks index tables by every entry's code
    for key, bad, what in (
        (
            "feature",
            (t["feature"] < 0) | (t["feature"] >= num_features),
            f"a feature index in 0..{num_features - 1}",
        ),
        ("missing", t["missing"] >= MISSING_CODES, f"a code in 0..{MISSING_CODES - 1}"),
    ):
        if bad.any():
            i = int(every[bad][0])
            raise PayloadError(f"{where}.{key}[{i}]: expected {what}, got {t[key][i].item()!r}")
    refuse("threshold", np.isnan(t["threshold"][inner]), "a number")
    check_finite(t["value"], f"{where}.value")
    bad_root = (roots < 0) | (roots >= n)
    if bad_root.any():
        i = int(np.flatnonzero(bad_root)[0])
        raise PayloadError(
            f"{where}.tree_root[{i}]: expected an entry in 0..{n - 1}, got {int(roots[i])}"
        )
    parents = np.bincount(np.concatenate([left[inner], left[inner] + 1]), minlength=n)
    orphans = np.flatnonzero(parents == 0)
    if (
        parents.max(initial=0) > 1
        or not np.array_equal(orphans, np.unique(roots))
        or len(orphans) != num_trees
    ):
        raise PayloadError(
            f"{where}: the entries are not {num_trees} separate trees (an entry "
            "shared, unreached, or a root used twice)"
        )
    depth, level = 0, roots
    while True:  # children come after their parent, so this ends within n levels
        level = level[left[level] != level]
        if not len(level):
            return depth
        level = np.concatenate([left[level], left[level] + 1])
        depth += 1


# -- the routing model: a union of kinds -------------------------------------------------------
