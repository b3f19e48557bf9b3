"""Write router bundles: plain data only, a new version every time, atomically, with a manifest.

``write_bundle(payload, out_dir)`` refuses anything that is not plain data, or not a payload
``aco.payload.BundlePayload`` reads (the one schema of reader and writer), before writing a
byte; pickles with protocol 5, writes a temp file, fsyncs it and claims the next free
``router_bundle_vN.pkl`` with ``os.link`` (which fails instead of overwriting, so concurrent
writers each get their own N), then writes ``router_bundle_vN.manifest.json`` beside it
(temp file + ``os.replace``). ``aco.bundle.load_bundle`` is the reader; docs/bundle.md the format.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import pickle
import platform
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from aco import bundle as B
from aco.errors import BundleError
from aco.payload import BundlePayload, PayloadError
from aco_lab.files import fsync_dir, write_new, write_temp, write_text

log = logging.getLogger(__name__)

RECORDED_PACKAGES = ("aco", "numpy", "lightgbm", "scikit-learn", "polars")
MAX_CLAIM_ATTEMPTS = 1000  # versions tried before giving up (only reached by a broken directory)


@dataclass(frozen=True, slots=True)
class BundleInfo:
    """Where a bundle was written, its version N and the sha256 of its bytes."""

    path: Path
    version: int
    sha256: str
    manifest_path: Path
    size: int


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages a bundle's numbers depend on (plain data)."""
    versions = {"python": platform.python_version()}
    for name in RECORDED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def build_bundle_payload(payload: Mapping[str, Any] | BundlePayload) -> dict[str, Any]:
    """The payload as written: every field checked (aco.payload.BundlePayload), the format
    version set, created_at and package versions added when missing; a new dict."""
    if isinstance(payload, BundlePayload):
        payload = payload.to_dict()
    if not isinstance(payload, Mapping):
        raise BundleError(f"payload: expected a dict, got {type(payload).__name__}")
    given = payload.get(B.FORMAT_VERSION_KEY, B.BUNDLE_FORMAT_VERSION)
    if given != B.BUNDLE_FORMAT_VERSION:
        raise BundleError(
            f"payload.{B.FORMAT_VERSION_KEY}: this aco writes version {B.BUNDLE_FORMAT_VERSION}, "
            f"got {given!r}; leave the key out"
        )
    full = dict(payload)
    full[B.FORMAT_VERSION_KEY] = B.BUNDLE_FORMAT_VERSION
    full.setdefault(B.CREATED_AT_KEY, datetime.now(UTC).isoformat(timespec="seconds"))
    full.setdefault(B.PACKAGE_VERSIONS_KEY, package_versions())
    B.check_plain(full, where="payload")
    try:
        return BundlePayload.from_dict(full).to_dict()
    except PayloadError as exc:
        raise BundleError(f"payload: {exc}") from None


def write_bundle(
    payload: Mapping[str, Any] | BundlePayload,
    out_dir: str | Path = B.DEFAULT_MODELS_DIR,
    key: str | bytes | None = None,
) -> BundleInfo:
    """Write payload as the next router_bundle_vN.pkl in out_dir, with its manifest."""
    full = build_bundle_payload(payload)  # checked before anything is written
    data = pickle.dumps(full, protocol=B.PICKLE_PROTOCOL)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = write_temp(out, data, ".router_bundle_")
    try:
        version, path = _claim_version(out, tmp)
    finally:
        tmp.unlink(missing_ok=True)
    digest = hashlib.sha256(data).hexdigest()
    manifest = _manifest(path, version, full, data, digest, B.bundle_key(key))
    where = B.manifest_path(path)
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    write_text(where, text)
    fsync_dir(out)
    log.info("wrote %s (%d bytes, sha256 %s)", path, len(data), digest[:12])
    return BundleInfo(
        path=path, version=version, sha256=digest, manifest_path=where, size=len(data)
    )


def _manifest(
    path: Path, version: int, full: Mapping[str, Any], data: bytes, digest: str, key: bytes | None
) -> dict[str, Any]:
    spec = full.get(B.FEATURE_SPEC_KEY)
    manifest = {
        "kind": B.MANIFEST_KIND,
        "bundle_file": path.name,
        "version": version,
        "sha256": digest,
        "size": len(data),
        B.FORMAT_VERSION_KEY: B.BUNDLE_FORMAT_VERSION,
        "feature_version": spec.get("version") if isinstance(spec, Mapping) else None,
        B.CREATED_AT_KEY: full[B.CREATED_AT_KEY],
    }
    if key is not None:
        manifest["hmac_sha256"] = B.bundle_hmac(data, key)
    return manifest


def _claim_version(out: Path, tmp: Path) -> tuple[int, Path]:
    """Link the finished temp file to the next free version; never replaces an existing one."""
    version = (max(B.list_bundle_versions(out), default=0)) + 1
    for _ in range(MAX_CLAIM_ATTEMPTS):
        path = B.bundle_path(out, version)
        try:
            _link_exclusive(tmp, path)
            return version, path
        except FileExistsError:
            # Another writer took this N (or a manifest-only version exists): try the next.
            version = max(version + 1, max(B.list_bundle_versions(out), default=0) + 1)
    raise BundleError(f"{out}: could not claim a bundle version after {MAX_CLAIM_ATTEMPTS} tries")


def _link_exclusive(tmp: Path, path: Path) -> None:
    if B.manifest_path(path).exists():
        raise FileExistsError(errno.EEXIST, "manifest exists", str(path))
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:
        # Filesystems without hard links: create the name exclusively, then copy the bytes in.
        write_new(path, tmp.read_bytes())
