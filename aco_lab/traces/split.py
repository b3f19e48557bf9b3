"""Splits grouped by request: every run of one request lands in the same split.

A request's split comes from a seeded hash of its `request_id`, sorted and cut at the given
fractions: exact proportions, independent of row order, and the same ids on every machine.
Splitting runs rather than requests would leak a request's other tiers into validation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import polars as pl

from aco.errors import DataError
from aco_lab.traces import schema as S

MAX_LISTED_IDS = 3  # overlapping request_ids quoted in an error message


def assign_splits(
    request_ids: Iterable[str], fractions: Sequence[tuple[str, float]], seed: int
) -> dict[str, list[str]]:
    """Distinct request_ids -> {split name: sorted ids}, cut at `fractions` (summing to 1)."""
    names = [name for name, _ in fractions]
    shares = [share for _, share in fractions]
    if len(set(names)) != len(names) or any(s < 0 for s in shares) or abs(sum(shares) - 1) > 1e-9:
        raise ValueError(f"fractions: expected distinct names, shares >= 0, sum 1: {fractions}")
    ids = sorted(set(request_ids), key=lambda rid: (_key(rid, seed), rid))
    cuts, total = [], 0.0
    for share in shares:
        total += share
        cuts.append(round(total * len(ids)))
    out, start = {}, 0
    for name, stop in zip(names, cuts, strict=True):
        out[name] = sorted(ids[start:stop])
        start = stop
    return out


def split_by_request(
    runs: pl.DataFrame, fractions: Sequence[tuple[str, float]], seed: int
) -> dict[str, pl.DataFrame]:
    """The runs divided into named splits, all runs of a request in one split."""
    parts = assign_splits(runs[S.REQUEST_ID].unique().to_list(), fractions, seed)
    return {name: runs.filter(pl.col(S.REQUEST_ID).is_in(ids)) for name, ids in parts.items()}


def check_disjoint(train_ids: Iterable[str], eval_ids: Iterable[str], where: str = "") -> None:
    """Raise DataError when evaluation requests were also used in training."""
    overlap = sorted(set(train_ids) & set(eval_ids))
    if overlap:
        shown = ", ".join(overlap[:MAX_LISTED_IDS])
        prefix = f"{where}: " if where else ""
        raise DataError(
            f"{prefix}{len(overlap)} evaluation request_ids were used to train the router "
            f"(e.g. {shown}); evaluate on traces the bundle did not train on"
        )


def _key(request_id: str, seed: int) -> bytes:
    return hashlib.sha256(f"{seed}\x00{request_id}".encode()).digest()[:8]
