"""A bundle's learned run controls evaluated on held-out traces (`aco-lab evaluate-cascade`).

The evaluation itself is aco_lab.controls.suite.evaluate_controls; this is its I/O edge: the
bundle loaded, the traces read and restricted to requests the bundle did not train on.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aco.bundle import load_bundle, resolve_bundle_path
from aco.config import load_config
from aco.errors import DataError
from aco_lab.controls.suite import (
    CONTROL_NAMES,
    ControlsEvaluation,
    evaluate_controls,
    restrict_tables,
)
from aco_lab.evaluate.bundle_inputs import bundle_config, check_overlap, holdout_of
from aco_lab.traces import schema as S
from aco_lab.traces.reading import expand_paths, read_traces


def evaluate_bundle_controls(
    bundle_ref: str | Path,
    paths: Sequence[str | Path],
    config_path: str | Path | None = None,
    models_dir: str | Path = "router_models",
    only: Sequence[str] = CONTROL_NAMES,
    allow_overlap: bool = False,
    on_error: str = "skip",
) -> tuple[ControlsEvaluation, dict]:
    """Load a bundle and held-out traces, then evaluate its controls; (evaluation, meta)."""
    path = resolve_bundle_path(bundle_ref, models_dir)
    payload = load_bundle(path)
    controls = {k: v for k, v in (payload.get("controls") or {}).items() if k in only}
    if not controls:
        raise DataError(
            f"{path}: the bundle has no learned {' or '.join(only)} control; "
            f"retrain with this aco-lab on traces that can teach it"
        )
    config = load_config(config_path) if config_path else bundle_config(payload)
    held_ids = None
    if not paths:
        paths, held_ids = holdout_of(payload, path)
    tables = restrict_tables(
        read_traces(expand_paths(paths), on_error=on_error),
        set(held_ids) if held_ids is not None else None,
    )
    training_ids = set(payload.get("training_data", {}).get("request_ids", []))
    overlap = check_overlap(training_ids, set(tables.runs[S.REQUEST_ID].to_list()), allow_overlap)
    meta = {"bundle": str(path), "runs": tables.runs.height, "overlap_requests": len(overlap)}
    ev = evaluate_controls(controls, tables, config)
    failed = {k: v for k, v in ev.skipped.items() if k in controls}
    if failed and len(failed) == len(controls):
        raise DataError("; ".join(f"{k}: {v}" for k, v in sorted(failed.items())))
    return ev, meta
