"""What a router bundle holds, for a person deciding whether to deploy it (`aco version --bundle`).

`describe_bundle` turns a loaded (integrity-checked, typed) payload and its manifest into plain
figures: the file and its checks, who built it with what, the training data, the model, the
task types and how a missing one is inferred, the tiers, the operating point and what it
reached on validation requests, and the learned run controls. `format_description` lays them
out as lines. Both are pure; the CLI loads the bundle and prints.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aco.formatting import format_count, format_share
from aco.payload import BundlePayload

CONTROL_NAMES = ("cascade", "doom", "gate", "verify", "context_budget")


def describe_bundle(
    path: Path, payload: BundlePayload, manifest: Mapping[str, Any], key_configured: bool
) -> dict[str, Any]:
    """Plain figures of a bundle loaded by `aco.bundle.load_payload` (size and sha256 checked
    against the manifest, its HMAC when a key was configured, every field of the payload)."""
    training, validation = payload.training_data, payload.validation
    task_model = payload.task_type_model
    novelty = task_model.novelty if task_model is not None else None
    controls = payload.controls or {}
    return {
        "path": str(path),
        "version": manifest.get("version"),
        "size": manifest.get("size"),
        "sha256": manifest.get("sha256"),
        "hmac": (
            "none"
            if "hmac_sha256" not in manifest
            else "verified"
            if key_configured
            else "not verified (no ACO_BUNDLE_KEY)"
        ),
        "created_at": payload.created_at,
        "package_versions": dict(payload.package_versions),
        "training": {
            "requests": training.n_requests,
            "runs": training.n_runs,
            "counterfactual": training.counterfactual,
            "files": [{"path": f["path"], "sha256": f.get("sha256")} for f in training.files],
        },
        "model": {
            "kind": payload.model.KIND,
            "objective": payload.model.objective,
            "calibration": payload.calibration.method,
            "seed": payload.seed,
        },
        "task_types": list(payload.feature_spec.task_types),
        "task_type_predictor": None
        if task_model is None
        else {
            **validation.get("task_type", {}),
            "novelty_threshold": None if novelty is None else novelty.threshold,
        },
        "tiers": {t.tier: t.model_id for t in payload.tiers},
        "policy": payload.policy.to_dict(),
        "task_floors": dict(payload.task_floors),
        "validation": dict(validation.get("operating_point", {})),
        "mix": None if payload.policy_mix is None else payload.policy_mix.to_dict(),
        "selection": dict(validation.get("selection", {})),
        "warnings": list(payload.warnings),
        "controls": [name for name in CONTROL_NAMES if controls.get(name)],
    }


def format_description(info: Mapping[str, Any]) -> list[str]:
    """describe_bundle's figures as the lines `aco version --bundle` prints."""
    training, model = info["training"], info["model"]
    packages = info["package_versions"]
    built_with = ", ".join(f"{k} {v}" for k, v in packages.items() if k != "aco")
    files = ", ".join(f"{f['path']} ({(f['sha256'] or '')[:12]})" for f in training["files"])
    lines = [
        f"bundle v{info['version']}: {info['path']} ({format_count(info['size'])} bytes, sha256 "
        f"{info['sha256'][:16]}... as its manifest says; HMAC {info['hmac']})",
        f"created {info['created_at']} by aco {packages.get('aco', '?')} ({built_with})",
        f"trained on {format_count(training['requests'])} requests, "
        f"{format_count(training['runs'])} runs "
        f"({'counterfactual' if training['counterfactual'] else 'ordinary logs'}) from "
        f"{len(training['files'])} file(s): {files}",
        f"model: {model['kind']}, objective {model['objective']}, calibration "
        f"{model['calibration']}, seed {model['seed']}",
        "tiers: " + ", ".join(f"{t} {m}" for t, m in sorted(info["tiers"].items())),
    ]
    lines.append("task types: " + (", ".join(info["task_types"]) or "none"))
    predictor = info["task_type_predictor"]
    if predictor:
        threshold = predictor.get("novelty_threshold")
        check = (
            "no novelty check (trained before it)"
            if threshold is None
            else f"requests less similar than {threshold:.2f} to its training ones take "
            "their type from rule cues"
        )
        figures = (
            f"{format_share(predictor['accuracy'])} right on "
            f"{format_count(predictor['requests'])} held-out requests; "
            if "accuracy" in predictor
            else ""
        )
        lines.append(f"task-type predictor: {figures}{check}")
    policy = info["policy"]
    lines.append(
        f"operating point: success_value {policy.get('success_value', 0):.4g}, "
        f"safety_threshold {policy.get('safety_threshold', 0):.2f}, downgrade_threshold "
        f"{policy.get('downgrade_threshold', 0):.2f}; learned task floors: "
        + (", ".join(f"{k}={v}" for k, v in info["task_floors"].items()) or "none")
    )
    if info.get("mix"):
        mix = info["mix"]
        lines.append(
            f"mixed with: success_value {mix['policy']['success_value']:.4g}, "
            f"safety_threshold {mix['policy']['safety_threshold']:.2f}, "
            f"downgrade_threshold {mix['policy']['downgrade_threshold']:.2f}, for "
            f"{format_share(mix['share'])} of requests (by a hash of their text)"
        )
    point = info["validation"]
    if point:
        lines.append(
            f"validation ({format_count(point['n_requests'])} requests"
            f"{', out of fold' if info.get('selection') else ''}): "
            f"{format_share(point['success_ratio'])} of the top tier's success at "
            f"{format_share(point['cost_ratio'])} of its cost"
            + (
                ""
                if point.get("met_floor", True)
                else f"; SHORT of its {format_share(point.get('floor', 0))} floor"
            )
        )
    lines.extend(_selection_lines(info.get("selection") or {}))
    lines.extend(f"warning: {w}" for w in info.get("warnings", []))
    lines.append("learned run controls: " + (", ".join(info["controls"]) or "none (rules)"))
    return lines


def _selection_lines(selection: Mapping[str, Any]) -> list[str]:
    """The candidates' cross-validated figures and why the winner won."""
    if not selection:
        return []
    lines = [f"chosen: {selection['winner']}: {selection['why']}"]
    for name, f in selection.get("candidates", {}).items():
        cost = f.get("cost_at_target")
        error = f.get("standard_error")
        lines.append(
            f"  candidate {name}: cost at {format_share(selection['target'])} of the "
            f"top's success {'-' if cost is None else format_share(cost)}"
            f"{'' if error is None else f' (± {format_share(error)} against the lowest)'}"
            ", "
            f"AIQ {f.get('aiq', float('nan')):.4f}, log loss "
            f"{f.get('log_loss', float('nan')):.4f}"
        )
    return lines
