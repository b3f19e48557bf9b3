"""Bundle files written past the writer's checks: what a hostile or broken writer leaves."""

import hashlib
import json
import pickle
from pathlib import Path
from typing import Any

from aco.bundle import MANIFEST_KIND, bundle_path, manifest_path


def write_raw(path: Path, data: bytes, **manifest_fields: Any) -> Path:
    """A bundle file holding `data`, with a manifest that truthfully describes its bytes."""
    path.write_bytes(data)
    manifest = {
        "kind": MANIFEST_KIND,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "feature_version": None,
        **manifest_fields,
    }
    manifest_path(path).write_text(json.dumps(manifest))
    return path


def write_unchecked(payload: Any, out_dir: Path, version: int = 1) -> Path:
    """router_bundle_v{version}.pkl of any picklable payload, with a truthful manifest."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return write_raw(
        bundle_path(out_dir, version), pickle.dumps(payload, protocol=5), version=version
    )
