"""What evaluating a bundle reads from it: its tier table, its held-out traces, the runs it
trained on, its name and figures, and whether evaluation requests overlap its training ones.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import polars as pl

from aco.bundle import BUNDLE_PREFIX, BUNDLE_SUFFIX, read_manifest
from aco.config import ACOConfig, TierSpec
from aco.errors import DataError
from aco.policy import PolicyParams
from aco.progress import stage
from aco_lab.evaluate.results import BundleInfo
from aco_lab.traces import schema as S
from aco_lab.traces.reading import read_traces

log = logging.getLogger(__name__)


def bundle_config(payload: dict) -> ACOConfig:
    """The tier table the bundle was trained with (no task floors beyond its learned ones)."""
    return ACOConfig(tiers=tuple(TierSpec(**t) for t in payload["tiers"]), task_floors={})


def holdout_of(payload: dict, path: Path) -> tuple[list[str], list[str] | None]:
    """The held-out traces a bundle recorded (files, and request ids when recorded) under
    training_data.holdout; a DataError saying what to pass when there are none."""
    holdout = payload.get("training_data", {}).get("holdout") or {}
    files = [f["path"] if isinstance(f, dict) else f for f in holdout.get("files", [])]
    if files and all(Path(f).exists() for f in files):
        ids = holdout.get("request_ids")
        return files, (list(ids) if ids else None)
    raise DataError(
        f"{path}: no evaluation traces given and the bundle records no held-out traces that "
        "exist here; pass trace files the bundle did not train on (split them off before "
        "training with `aco-lab holdout TRACES --out DIR`), e.g. "
        "`aco-lab evaluate --bundle vN DIR/eval.jsonl.gz`"
    )


def read_training_runs(payload: dict) -> pl.DataFrame | None:
    """The runs the bundle trained on, re-read from its recorded files (None when gone)."""

    training = payload.get("training_data", {})
    files = [f.get("path") for f in training.get("files", [])]
    if not files or not all(p and Path(p).exists() for p in files):
        log.warning("training files %s are not all present: trained baselines skipped", files)
        return None
    ids = set(training.get("request_ids", []))
    stage("reading the bundle's training traces")
    runs = read_traces(files, on_error="skip").runs
    return runs.filter(pl.col(S.REQUEST_ID).is_in(list(ids)))


def bundle_name(path: Path) -> str:
    """How reports name a bundle: "v11" for router_bundle_v11.pkl, else its file name."""
    match = re.fullmatch(rf"{BUNDLE_PREFIX}(\d+){re.escape(BUNDLE_SUFFIX)}", path.name)
    return f"v{match.group(1)}" if match else path.name


def bundle_info(path: Path, payload: dict) -> BundleInfo:
    """How reports name and describe a bundle (its winning candidate, floor and shortfall)."""
    validation = payload.get("validation", {})
    point = validation.get("operating_point", {})
    selection = validation.get("selection", {})
    return BundleInfo(
        name=bundle_name(path),
        path=str(path),
        sha256=read_manifest(path)["sha256"],
        model=str(selection.get("winner") or payload["model"].get("kind", "?")),
        n_training_requests=len(payload.get("training_data", {}).get("request_ids", [])),
        params=PolicyParams.from_dict(payload["policy"]),
        task_floors=tuple(sorted(payload.get("task_floors", {}).items())),
        floor=float(point.get("floor", 0.0)),
        shortfall=0.0 if point.get("met_floor", True) else float(point.get("shortfall", 0.0)),
    )


def check_overlap(training_ids: set[str], eval_ids: set[str], allow: bool) -> list[str]:
    """Evaluation requests the bundle trained on; a DataError unless allowed."""
    overlap = sorted(training_ids & eval_ids)
    if overlap and not allow:
        shown = ", ".join(overlap[:3])
        raise DataError(
            f"{len(overlap)} of {len(eval_ids)} evaluation request_ids were used to train the "
            f"bundle (e.g. {shown}); evaluate on held-out traces, or pass --allow-overlap to "
            "evaluate anyway (the report will flag it)"
        )
    if overlap:
        log.warning("%d evaluation requests were used in training (allowed)", len(overlap))
    return overlap
