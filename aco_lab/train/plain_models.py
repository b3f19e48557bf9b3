"""Fitted models -> the plain data aco.scoring evaluates (LightGBM trees, scikit-learn linear).

``lgbm_model_to_plain(booster)`` walks ``booster.dump_model()`` once at train time and lays
every tree out as flat little-endian arrays (bytes): one entry per internal node or leaf,
children of a node side by side, leaves pointing to themselves. The runtime never needs
lightgbm to read it. Categorical splits and linear trees are refused: the runtime scores
numerical "<=" splits only.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

import numpy as np

from aco import scoring as sc
from aco import tree_walk
from aco.errors import DataError
from aco.payload_trees import LGBM_LAYOUT_VERSION

_MISSING_CODES = {
    ("None", True): tree_walk.MISSING_NONE,
    ("None", False): tree_walk.MISSING_NONE,  # NaN counts as 0.0; default_left is never consulted
    ("NaN", True): tree_walk.MISSING_NAN_LEFT,
    ("NaN", False): tree_walk.MISSING_NAN_RIGHT,
    ("Zero", True): tree_walk.MISSING_ZERO_LEFT,
    ("Zero", False): tree_walk.MISSING_ZERO_RIGHT,
}


def lgbm_model_to_plain(booster: Any) -> dict[str, Any]:
    """Plain data of a trained lightgbm.Booster (or LGBMModel), for aco.scoring.predict_lgbm_raw."""
    booster = getattr(booster, "booster_", booster)  # accept the scikit-learn wrappers too
    return lgbm_dump_to_plain(booster.dump_model())


def lgbm_dump_to_plain(dump: Mapping[str, Any]) -> dict[str, Any]:
    """Plain data of a LightGBM model from its dump_model() dict (pure; no lightgbm needed)."""
    trees = dump["tree_info"]
    table = _Table()
    roots, depth = [], 0
    for tree in trees:
        where = f"lightgbm model: tree {tree.get('tree_index', len(roots))}"
        if tree.get("is_linear"):
            raise DataError(
                f"{where}: linear trees are not supported; train with linear_tree=False"
            )
        root, tree_depth = table.add_tree(tree["tree_structure"], where)
        roots.append(root)
        depth = max(depth, tree_depth)
    num_class = int(dump["num_tree_per_iteration"])
    if len(trees) % num_class:
        raise DataError(
            f"lightgbm model: {len(trees)} trees is not a multiple of {num_class} classes"
        )
    return {
        "kind": sc.LGBM_KIND,
        "layout_version": LGBM_LAYOUT_VERSION,
        "num_class": num_class,
        "num_trees": len(trees),
        "num_features": int(dump["max_feature_idx"]) + 1,
        "max_depth": depth,
        "average_output": bool(dump.get("average_output", False)),
        "objective": str(dump.get("objective", "")),
        "feature_names": [str(n) for n in dump.get("feature_names", [])],
        "monotone_constraints": [int(c) for c in dump.get("monotone_constraints", [])],
        "tree_root": np.asarray(roots, dtype="<i4").tobytes(),
        **table.to_bytes(),
    }


class _Table:
    """The growing entry table: breadth-first per tree, a node's two children adjacent."""

    def __init__(self) -> None:
        self.feature: list[int] = []
        self.threshold: list[float] = []
        self.left: list[int] = []
        self.missing: list[int] = []
        self.value: list[float] = []

    def _new(self) -> int:
        self.feature.append(0)
        self.threshold.append(np.inf)  # a leaf: x > inf never holds, so it never moves
        self.left.append(len(self.left))  # ... and its "left child" is itself
        self.missing.append(tree_walk.MISSING_NONE)
        self.value.append(0.0)
        return len(self.left) - 1

    def add_tree(self, structure: Mapping[str, Any], where: str) -> tuple[int, int]:
        """Append one tree; return (root entry, depth in internal nodes)."""
        root = self._new()
        queue = deque([(structure, root, 0)])
        depth = 0
        while queue:
            node, entry, level = queue.popleft()
            if "leaf_value" in node and "split_feature" not in node:
                self.value[entry] = float(node["leaf_value"])
                depth = max(depth, level)
                continue
            self._split(node, entry, f"{where} node {node.get('split_index', '?')}")
            left, right = self._new(), self._new()
            self.left[entry] = left
            queue.append((node["left_child"], left, level + 1))
            queue.append((node["right_child"], right, level + 1))
        return root, depth

    def _split(self, node: Mapping[str, Any], entry: int, where: str) -> None:
        if node.get("decision_type") != "<=":
            raise DataError(
                f"{where}: categorical split (decision_type {node.get('decision_type')!r}) is not "
                "supported; train with categorical_feature=[] and numeric features"
            )
        key = (str(node.get("missing_type", "None")), bool(node.get("default_left", True)))
        if key not in _MISSING_CODES:
            raise DataError(f"{where}: unknown missing_type {key[0]!r}")
        self.feature[entry] = int(node["split_feature"])
        self.threshold[entry] = float(node["threshold"])
        self.missing[entry] = _MISSING_CODES[key]

    def to_bytes(self) -> dict[str, bytes]:
        """The table as little-endian bytes (plain data for a bundle)."""
        return {
            "feature": np.asarray(self.feature, dtype="<i4").tobytes(),
            "threshold": np.asarray(self.threshold, dtype="<f8").tobytes(),
            "left": np.asarray(self.left, dtype="<i4").tobytes(),
            "missing": np.asarray(self.missing, dtype="u1").tobytes(),
            "value": np.asarray(self.value, dtype="<f8").tobytes(),
        }


def linear_model_to_plain(classifier: Any, scaler: Any = None) -> dict[str, Any]:
    """Plain data of a fitted scikit-learn linear classifier (optionally after a StandardScaler)."""
    mean = getattr(scaler, "mean_", None) if scaler is not None else None
    scale = getattr(scaler, "scale_", None) if scaler is not None else None
    return sc.build_linear_model(classifier.coef_, classifier.intercept_, mean, scale)
