"""The numpy walk of LightGBM trees compiled by aco.scoring (used when aco._native is not built).

Bit vectors (QuickScorer), for trees of up to 64 leaves: the leaves of a tree are numbered
left to right, and each internal node holds the set of leaves still possible when it goes
right (a uint64). A row's exit leaf in a tree is the lowest bit of the AND of the masks of
its nodes that go right, so every tree of every row is scored with a fixed number of numpy
calls, whatever the depth. Rows that differ in few columns (one request at its five tiers)
share the decisions of the other nodes: a plan per set of varying columns decides them once.
Wider trees are walked level by level (`leaf_values_levels`).

Missing values: each node reads its feature from the variant of X that sends its missing
values the right way (see aco.scoring's docstring); `x_variants` builds those variants.
"""

from __future__ import annotations

from itertools import count
from typing import TYPE_CHECKING

import numpy as np

from aco.errors import BundleError

if TYPE_CHECKING:
    from aco.scoring import CompiledTrees

# Missing-value codes of a node (the variant of X it reads), see aco.scoring's docstring.
MISSING_NONE, MISSING_NAN_LEFT, MISSING_NAN_RIGHT, MISSING_ZERO_LEFT, MISSING_ZERO_RIGHT = range(5)
ZERO_THRESHOLD = float(np.float32(1e-35))  # LightGBM's kZeroThreshold (a float literal)
PLAN_CACHE_SIZE = 64  # shared-row plans kept per model (one per set of varying columns)

_ALL_LEAVES = (1 << 64) - 1
_ALL = np.uint64(_ALL_LEAVES)


def bit_vector_tables(roots: np.ndarray, left: np.ndarray, value: np.ndarray) -> tuple | None:
    """QuickScorer tables; None when a tree has more than 64 leaves (one uint64 per node)."""
    nodes: list[int] = []  # entry of each internal node; -1: a single-leaf tree's dummy node
    masks: list[int] = []
    starts, node_tree, leaf_base, leaf_value = [], [], [], []
    for tree, root in enumerate(roots.tolist()):
        starts.append(len(nodes))
        leaf_base.append(len(leaf_value) - 1)  # exit exponents count from 1
        first_leaf = len(leaf_value)
        # In-order walk (explicit stack): leaves come out left to right, so a subtree's
        # leaves are a contiguous range of numbers; a node going right kills its left range.
        stack: list[tuple[int, int]] = [(root, 0)]
        pending: list[int] = []  # internal nodes waiting for the end of their left subtree
        for steps in count():
            if not stack:
                break
            if steps > 3 * len(left):  # each entry is pushed at most twice: a cycle
                raise BundleError("model: a LightGBM tree does not end in leaves (a cycle); "
                                  "retrain with aco-lab")
            entry, state = stack.pop()
            child = int(left[entry])
            if state == 1:  # left subtree done: its leaves are [start, now)
                start = pending.pop()
                nodes.append(entry)
                masks.append(_range_mask(start - first_leaf, len(leaf_value) - first_leaf))
            elif child == entry:
                leaf_value.append(float(value[entry]))
                if len(leaf_value) - first_leaf > 64:
                    return None
            else:
                pending.append(len(leaf_value))
                stack += [(child + 1, 0), (entry, 1), (child, 0)]
        if len(nodes) == starts[-1]:  # a single leaf: one dummy node that keeps it
            nodes.append(-1)
            masks.append(_ALL_LEAVES)
        node_tree += [tree] * (len(nodes) - starts[-1])
    return (
        np.asarray(nodes, dtype=np.intp),
        np.asarray(masks, dtype=np.uint64),
        np.asarray(starts, dtype=np.intp),
        np.asarray(node_tree, dtype=np.intp),
        np.asarray(leaf_base, dtype=np.intp),
        np.asarray(leaf_value, dtype=np.float64),
    )


def _range_mask(lo: int, hi: int) -> int:
    return _ALL_LEAVES ^ (((1 << (hi - lo)) - 1) << lo)


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


def leaf_values_bits(trees: CompiledTrees, X: np.ndarray) -> np.ndarray:
    """(n, T) leaf values by bit vectors: a fixed number of numpy calls, whatever the depth."""
    plain = not trees.zero_as_missing and not np.isnan(X).any()
    xv = x_variants(trees, X, plain)
    cols = trees.node_feature if plain else trees.node_col
    alive = None
    if len(xv) > 1:  # rows that differ in few columns share most decisions
        plan = _shared_plan(trees, ~(xv == xv[0]).all(axis=0), cols)
        if plan is not None:
            alive = alive_with_plan(trees, xv[0].take(cols), xv.take(plan[-1], axis=1), plan)
    if alive is None:
        right = xv.take(cols, axis=-1) > trees.node_thr
        masks = np.where(right, trees.node_mask, _ALL)
        alive = np.atleast_2d(np.bitwise_and.reduceat(masks, trees.tree_start, axis=-1))
    return exit_values(trees, alive)


def exit_values(trees: CompiledTrees, alive: np.ndarray) -> np.ndarray:
    # The exit leaf is the lowest surviving bit; frexp's exponent of 2**i is i + 1.
    exponent = np.frexp((alive & np.negative(alive)).astype(np.float64))[1]
    return trees.leaf_value.take(trees.leaf_base + exponent)


def alive_with_plan(
    trees: CompiledTrees, shared_values: np.ndarray, varying_values: np.ndarray, plan: tuple
) -> np.ndarray:
    """(rows, T) surviving leaves: shared nodes decided once, varying nodes per row."""
    shared_thr, v_thr, v_mask, v_tree, v_starts, _ = plan
    # Varying nodes have threshold +inf in shared_thr: they keep every leaf there.
    masks = np.where(shared_values > shared_thr, trees.node_mask, _ALL)
    shared = np.bitwise_and.reduceat(masks, trees.tree_start)
    alive = np.repeat(shared[None, :], len(varying_values), axis=0)
    if len(v_starts):  # else the rows are identical
        per_row = np.where(varying_values > v_thr, v_mask, _ALL)
        alive[:, v_tree] &= np.bitwise_and.reduceat(per_row, v_starts, axis=1)
    return alive


def _shared_plan(trees: CompiledTrees, varies: np.ndarray, cols: np.ndarray) -> tuple | None:
    """Plan for rows differing in the `varies` columns; None when most nodes vary."""
    key = (varies.tobytes(), cols is trees.node_feature)
    if key not in trees.plans:
        varying = np.flatnonzero(varies.take(cols))
        plan = None
        if len(varying) * 2 <= len(cols):
            plan = _build_plan(trees, varying, cols.take(varying))
        if len(trees.plans) < PLAN_CACHE_SIZE:  # a router always varies the same column
            trees.plans[key] = plan
        return plan
    return trees.plans[key]


def sweep_plan(trees: CompiledTrees, column: int, plain: bool) -> tuple:
    """Plan for one row swept over one column; the last item indexes the values' variants."""
    key = ("sweep", column, plain)
    plan = trees.plans.get(key)
    if plan is None:
        varying = np.flatnonzero(trees.node_feature == column)
        slots = np.zeros(len(varying), dtype=np.intp)
        if not plain:
            slots = trees.node_col.take(varying) // trees.num_features
        plan = _build_plan(trees, varying, slots)
        if len(trees.plans) < PLAN_CACHE_SIZE:
            trees.plans[key] = plan
    return plan


def _build_plan(trees: CompiledTrees, varying: np.ndarray, read: np.ndarray) -> tuple:
    shared_thr = trees.node_thr.copy()
    shared_thr[varying] = np.inf
    # Varying nodes come tree by tree: one reduceat segment per tree that has some.
    trees_of = trees.node_tree.take(varying)
    starts = np.flatnonzero(np.r_[len(varying) > 0, trees_of[1:] != trees_of[:-1]])
    return (
        shared_thr,
        trees.node_thr.take(varying),
        trees.node_mask.take(varying),
        trees_of.take(starts),
        starts,
        read,  # per varying node: the column (or variant slot) its rows are read from
    )


def leaf_values_levels(trees: CompiledTrees, X: np.ndarray) -> np.ndarray:
    """(n, T) leaf values, descending all trees one level per step (trees of any size)."""
    plain = not trees.zero_as_missing and not np.isnan(X).any()
    xv = x_variants(trees, X, plain)
    entries = trees.entries
    cols = entries[:, 2] if plain else entries[:, 0]
    offsets = (np.arange(len(X), dtype=np.intp) * xv.shape[1])[:, None]
    flat = xv.ravel()
    g = np.broadcast_to(trees.roots, (len(X), trees.num_trees))
    for _ in range(trees.depth):
        right = flat.take(cols.take(g) + offsets) > trees.entry_thr.take(g)
        g = entries[:, 1].take(g) + right
    return trees.entry_value.take(g)
