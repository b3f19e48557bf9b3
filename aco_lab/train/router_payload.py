"""What a router bundle holds, as plain data: model, calibration, operating point, cost model,
tier table, feature spec, training-data fingerprint, validation metrics, provenance.

`build_payload` is pure; `read_file_fingerprints` reads the input files (sha256, size).
The training request ids are stored in full (sorted) with their digest, so an evaluation can
refuse requests the router trained on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from aco.config import ACOConfig
from aco.errors import BundleError
from aco.features import FEATURE_VERSION, FeatureSpec
from aco.payload import (
    BUNDLE_FORMAT,
    BUNDLE_FORMAT_VERSION,
    PAYLOAD_VERSION,
    BundlePayload,
    PayloadError,
)
from aco_lab.traces import schema as S
from aco_lab.traces.labels import OutcomeMatrix
from aco_lab.train.bundle_writer import package_versions

DEFAULT_CHARS_PER_TOKEN = 4.0  # when no run has both a prompt and its token count


def build_cost_model(fit_runs: pl.DataFrame) -> dict:
    """Per-tier output tokens (median per task type, and overall) and characters per token."""
    known = fit_runs.filter(pl.col(S.OUTPUT_TOKENS).is_not_null() & pl.col(S.TIER).is_not_null())
    overall = _medians(known)
    default = [overall.get(t, np.nan) for t in range(1, 6)]
    fallback = float(np.nanmedian(default)) if not np.isnan(default).all() else 0.0
    default = [fallback if np.isnan(v) else v for v in default]
    by_type = {}
    for (task_type,), part in known.filter(pl.col(S.TASK_TYPE).is_not_null()).group_by(
        S.TASK_TYPE, maintain_order=True
    ):
        medians = _medians(part)
        by_type[task_type] = [medians.get(t, default[t - 1]) for t in range(1, 6)]
    ratio = (
        fit_runs.filter(pl.col(S.FIRST_INPUT_TOKENS) > 0)
        .select((pl.col(S.REQUEST).str.len_chars() / pl.col(S.FIRST_INPUT_TOKENS)).median())
        .item()
    )
    return {
        "output_tokens": dict(sorted(by_type.items())),
        "default_output_tokens": default,
        "chars_per_token": float(ratio) if ratio else DEFAULT_CHARS_PER_TOKEN,
        "cost_scale": 1.0,  # set by the trainer: the fit fold's mean top-tier expected cost
    }


# A tier whose runs cost less than a tenth of its priced-token estimate, or more than 100
# times it, gets a warning: wrong prices in the config, or missing token counts. The range is
# lopsided on purpose: an agent's run of many calls, with paid tools, costs several times its
# first call's estimate (12x at tier 1 in the simulated sample), which is not a mismatch.
COST_FACTOR_RANGE = (0.1, 100.0)


def fit_cost_factors(
    cost_model: dict, config: ACOConfig, outcomes: OutcomeMatrix
) -> tuple[dict, list[str]]:
    """The cost model's factors from priced tokens to what the training runs cost
    (`tier_cost_factor`, `task_cost_factor`), and a warning naming the tiers whose config
    prices misjudge their runs' cost. The requests are priced once, before any factor."""
    from aco.router import expected_cost_table

    chars = np.array([len(r) for r in outcomes.requests], dtype=np.float64)
    estimate = expected_cost_table(
        cost_model, config.tiers, outcomes.input_tokens, list(outcomes.task_types), chars
    )
    observed, estimated = _tier_means(outcomes.cost, estimate)
    ok = np.isfinite(observed) & np.isfinite(estimated) & (observed > 0) & (estimated > 0)
    tier = np.where(ok, observed / np.where(ok, estimated, 1.0), 1.0)
    factors = {
        "tier_cost_factor": [float(f) for f in tier],
        "task_cost_factor": _task_cost_factors(tier, estimate, outcomes),
    }
    return factors, _price_warnings(tier, observed, estimated, config)


# A task type's cost factor is shrunk toward its tier's as if this many more requests had the
# tier's ratio: a type seen on a handful of requests keeps about the tier's factor.
COST_FACTOR_PRIOR = 20.0


def _task_cost_factors(
    tier: np.ndarray, estimate: np.ndarray, outcomes: OutcomeMatrix
) -> dict[str, list[float]]:
    """Per task type and tier 1..5, the runs' observed cost over their priced-token estimate,
    shrunk toward the tier's factor (COST_FACTOR_PRIOR). Tool costs and the number of calls an
    agent makes differ by task type, so one factor per tier misprices some types by 2-4x."""
    seen = ~np.isnan(outcomes.cost) & (estimate > 0)
    types = np.array(["" if t is None else t for t in outcomes.task_types], dtype=object)
    out = {}
    for task_type in sorted({t for t in outcomes.task_types if t is not None}):
        rows = types == task_type
        n = seen[rows].sum(axis=0)
        observed = np.where(seen[rows], outcomes.cost[rows], 0.0).sum(axis=0)
        estimated = np.where(seen[rows], estimate[rows], 0.0).sum(axis=0)
        mean = np.divide(estimated, n, out=np.zeros_like(tier), where=n > 0)
        factor = np.divide(
            observed + COST_FACTOR_PRIOR * tier * mean,
            estimated + COST_FACTOR_PRIOR * mean,
            out=tier.copy(),
            where=estimated + COST_FACTOR_PRIOR * mean > 0,
        )
        out[task_type] = [float(f) for f in factor]
    return out


def _price_warnings(
    tier: np.ndarray, observed: np.ndarray, estimated: np.ndarray, config: ACOConfig
) -> list[str]:
    """A warning naming the tiers whose factor lies outside COST_FACTOR_RANGE."""
    low, high = COST_FACTOR_RANGE
    off = [spec for spec in config.tiers if not low <= tier[spec.tier - 1] <= high]
    if not off:
        return []
    shown = "; ".join(
        f"tier {s.tier} ({s.model_id}) ${estimated[s.tier - 1]:.4g} priced, "
        f"${observed[s.tier - 1]:.4g} observed"
        for s in off
    )
    return [
        f"the config's prices misjudge what the traced runs cost per request ({shown}): "
        "routing uses the observed costs (cost_model.tier_cost_factor); check the prices in "
        "--config, or the traces' token counts"
    ]


def _tier_means(cost: np.ndarray, estimate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(5,) mean observed USD per request and tier, and the priced estimate for the same
    requests (NaN where no request was run at the tier)."""
    seen = ~np.isnan(cost)
    counts = np.maximum(seen.sum(axis=0), 1)
    observed = np.where(seen.any(axis=0), np.where(seen, cost, 0).sum(axis=0) / counts, np.nan)
    estimated = np.where(seen.any(axis=0), np.where(seen, estimate, 0).sum(axis=0) / counts, np.nan)
    return observed, estimated


def _medians(runs: pl.DataFrame) -> dict[int, float]:
    table = runs.group_by(S.TIER).agg(pl.col(S.OUTPUT_TOKENS).median())
    return {int(t): float(v) for t, v in table.iter_rows()}


def read_file_fingerprints(paths: Iterable[Path]) -> list[dict]:
    """sha256 and size of each input file (streamed); of an ingested dataset, its manifest."""
    from aco_lab.traces.reading import DATASET_MANIFEST, is_dataset

    out = []
    for path in paths:
        target = path / DATASET_MANIFEST if is_dataset(path) else path
        digest = hashlib.sha256()
        with open(target, "rb") as stream:
            while block := stream.read(1 << 20):
                digest.update(block)
        out.append(
            {"path": str(path), "sha256": digest.hexdigest(), "bytes": target.stat().st_size}
        )
    return out


def build_training_fingerprint(
    files: Sequence[dict], runs: pl.DataFrame, request_ids: Sequence[str], counterfactual: bool
) -> dict:
    """Counts, file digests and the training request ids (sorted) with their sha256."""
    ids = sorted(request_ids)
    return {
        "files": list(files),
        "n_runs": runs.height,
        "n_requests": len(ids),
        "counterfactual": counterfactual,
        "request_ids_sha256": hashlib.sha256("\n".join(ids).encode("utf-8")).hexdigest(),
        "request_ids": ids,
    }


def build_payload(
    *,
    model: dict,
    calibration: dict,
    operating_point: Any,
    cost_model: dict,
    spec: FeatureSpec,
    config: ACOConfig,
    task_type_model: dict | None,
    training: dict,
    validation: dict,
    options: Mapping[str, Any],
    created_at: str | None = None,
    warnings: Sequence[str] = (),
) -> dict:
    """The bundle payload as plain data, every field checked by aco.payload.BundlePayload (the
    schema the runtime reads)."""
    raw = {
        "format": BUNDLE_FORMAT,
        "payload_version": PAYLOAD_VERSION,
        "feature_version": FEATURE_VERSION,
        "feature_spec": spec.to_dict(),
        "model": model,
        "calibration": calibration,
        "policy": operating_point.params.to_dict(),
        "task_floors": dict(sorted(operating_point.task_floors.items())),
        "cost_model": cost_model,
        "tiers": [asdict(t) for t in config.tiers],
        "task_type_model": task_type_model,
        "training_data": training,
        "validation": validation,
        "options": dict(options),
        "seed": int(options["seed"]),
        "command": str(options.get("command", "")),
        "package_versions": package_versions(),
        "created_at": created_at or datetime.now(UTC).isoformat(timespec="seconds"),
        "bundle_format_version": BUNDLE_FORMAT_VERSION,
        "warnings": list(warnings),
    }
    if operating_point.mix is not None:
        raw["policy_mix"] = operating_point.mix.to_dict()
    try:
        return BundlePayload.from_dict(raw).to_dict()
    except PayloadError as exc:
        raise BundleError(f"payload: {exc}") from None
