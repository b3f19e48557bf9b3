"""The walk of LightGBM trees compiled by aco.scoring: all trees of all rows, level by level.

Each step moves every (row, tree) pair one level down at once: a node sends a row to
``left`` or ``left + 1`` as its feature is above its threshold. Leaves point to themselves
with threshold +inf, so a pair that reached its leaf stays there; ``depth`` steps end every
tree.

Missing values: each node reads its feature from the variant of X that sends its missing
values the right way (see aco.scoring's docstring); `x_variants` builds those variants.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Missing-value codes of a node (the variant of X it reads), see aco.scoring's docstring.
MISSING_NONE, MISSING_NAN_LEFT, MISSING_NAN_RIGHT, MISSING_ZERO_LEFT, MISSING_ZERO_RIGHT = range(5)
ZERO_THRESHOLD = float(np.float32(1e-35))  # LightGBM's kZeroThreshold (a float literal)


@dataclass(frozen=True, slots=True)
class CompiledTrees:
    """A plain LightGBM model decoded into numpy tables, ready to score (aco.tree_walk)."""

    num_class: int
    num_trees: int
    num_features: int
    average_output: bool
    objective: str
    variants: tuple[int, ...]  # missing codes used, in the order of X's variant blocks
    zero_as_missing: bool  # some node sends 0.0 to its default side
    # One row per entry (internal node or leaf), every tree's entries in one table.
    column: np.ndarray  # (E,) intp: column in the X variants
    feature: np.ndarray  # (E,) intp: column in X itself
    threshold: np.ndarray  # (E,) x > threshold goes right (+inf at a leaf: it stays)
    left: np.ndarray  # (E,) intp: left child, right is left + 1; a leaf points to itself
    value: np.ndarray  # (E,) leaf values
    roots: np.ndarray  # (T,) intp: each tree's root entry
    depth: int  # levels of the deepest tree: that many steps reach every leaf


def x_variants(trees: CompiledTrees, X: np.ndarray, plain: bool) -> np.ndarray:
    """X laid out as the nodes read it: X itself when plain, else one block per variant."""
    if plain:
        return X  # no NaN and no zero-as-missing node: every variant equals X
    nan = np.isnan(X)
    blocks = []
    zero = None
    for code in trees.variants:
        if code >= MISSING_ZERO_LEFT and zero is None:
            zero = nan | (np.abs(np.where(nan, 0.0, X)) <= ZERO_THRESHOLD)
        mask = zero if code >= MISSING_ZERO_LEFT else nan
        fill = 0.0 if code == MISSING_NONE else -np.inf if code % 2 else np.inf
        blocks.append(np.where(mask, fill, X))
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=1)


def leaf_values(trees: CompiledTrees, X: np.ndarray) -> np.ndarray:
    """(n, T) the value of the leaf each row reaches in each tree.

    Every entry is decided at once for every row (the entry each would go to next), then all
    (row, tree) pairs step through those decisions, one ``take`` per level.
    """
    plain = not trees.zero_as_missing and not np.isnan(X).any()
    xv = x_variants(trees, X, plain)
    column = trees.feature if plain else trees.column
    offsets = np.arange(0, len(X) * len(trees.left), len(trees.left), dtype=np.intp)[:, None]
    # Row r's copy of the entries starts at offsets[r]: "right" is one past "left".
    after = ((xv.take(column, axis=1) > trees.threshold) + (trees.left + offsets)).ravel()
    at = trees.roots + offsets
    for _ in range(trees.depth):
        at = after.take(at)
    return trees.value.take(at - offsets)
