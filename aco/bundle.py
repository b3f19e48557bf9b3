"""Router bundles: find one, verify it, load it without letting it run anything.

A bundle is ``router_bundle_vN.pkl`` (a pickled dict of plain data: dict, list, tuple, str,
int, float, bool, None, bytes) with ``router_bundle_vN.manifest.json`` beside it recording
its sha256, size, format and feature versions, and an HMAC-SHA256 when ``ACO_BUNDLE_KEY``
was set at write time. ``load_bundle`` checks, in this order, before anything is unpickled:
the manifest exists and is one of ours, the size and sha256 match the bytes read, the HMAC
matches when a key is configured (a manifest without one is then refused). It unpickles those
same bytes with an unpickler whose ``find_class`` refuses every global, so no class, function
or reduce call in the file can run, and checks the result is plain data of a known format.
The writer is ``aco_lab.train.bundle_writer.write_bundle``; the format is in docs/bundle.md.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aco.errors import BundleError
from aco.features import check_feature_version

log = logging.getLogger(__name__)

BUNDLE_FORMAT_VERSION = 1  # bump when the payload's layout changes incompatibly
PICKLE_PROTOCOL = 5
DEFAULT_MODELS_DIR = "router_models"
KEY_ENV = "ACO_BUNDLE_KEY"  # HMAC key (text) for writing and verifying bundles
BUNDLE_PREFIX = "router_bundle_v"
BUNDLE_SUFFIX = ".pkl"
MANIFEST_SUFFIX = ".manifest.json"
MANIFEST_KIND = "aco-router-bundle-manifest"

# Keys the writer adds to every payload and the loader checks.
FORMAT_VERSION_KEY = "bundle_format_version"
FEATURE_SPEC_KEY = "feature_spec"  # FeatureSpec.to_dict(); its "version" is the feature version
CREATED_AT_KEY = "created_at"
PACKAGE_VERSIONS_KEY = "package_versions"

PLAIN_SCALARS = (str, int, float, bool, type(None), bytes)
PLAIN_CONTAINERS = (dict, list, tuple)
_VERSION_RE = re.compile(r"[vV]?(\d+)")
_FILE_RE = re.compile(
    re.escape(BUNDLE_PREFIX)
    + r"(\d+)(?:"
    + re.escape(BUNDLE_SUFFIX)
    + "|"
    + re.escape(MANIFEST_SUFFIX)
    + ")"
)


def bundle_path(models_dir: str | Path, version: int) -> Path:
    """Where version N of a bundle lives in a models directory."""
    return Path(models_dir) / f"{BUNDLE_PREFIX}{version}{BUNDLE_SUFFIX}"


def manifest_path(path: str | Path) -> Path:
    """The manifest beside a bundle: router_bundle_vN.pkl -> router_bundle_vN.manifest.json."""
    path = Path(path)
    stem = path.name[: -len(BUNDLE_SUFFIX)] if path.name.endswith(BUNDLE_SUFFIX) else path.name
    return path.with_name(stem + MANIFEST_SUFFIX)


def list_bundle_versions(models_dir: str | Path = DEFAULT_MODELS_DIR) -> list[int]:
    """Versions present in a models directory (a bundle or a manifest counts), ascending."""
    try:
        names = os.listdir(models_dir)
    except FileNotFoundError:
        return []
    return sorted({int(m.group(1)) for n in names if (m := _FILE_RE.fullmatch(n))})


def resolve_bundle_path(ref: str | Path, models_dir: str | Path = DEFAULT_MODELS_DIR) -> Path:
    """ "v11", "11" or "latest" -> models_dir/router_bundle_v11.pkl; a path is returned as is."""
    text = str(ref)
    match = _VERSION_RE.fullmatch(text)
    if text == "latest":
        versions = list_bundle_versions(models_dir)
        if not versions:
            raise BundleError(f"{models_dir}: no router bundle; train one with `aco-lab train`")
        path = bundle_path(models_dir, versions[-1])
    elif match and not isinstance(ref, Path):
        path = bundle_path(models_dir, int(match.group(1)))
    else:
        path = Path(ref)
    if not path.is_file():
        available = ", ".join(f"v{v}" for v in list_bundle_versions(path.parent)) or "none"
        raise BundleError(
            f"{path}: no such router bundle; available in {path.parent}: {available} "
            "(pass a version like v3, 'latest' or a path to a .pkl)"
        )
    return path


def bundle_key(key: str | bytes | None = None) -> bytes | None:
    """The HMAC key: the one given, else ACO_BUNDLE_KEY, else None."""
    if key is None:
        key = os.environ.get(KEY_ENV) or None
    return key.encode("utf-8") if isinstance(key, str) else key


def bundle_hmac(data: bytes, key: bytes) -> str:
    """Hex HMAC-SHA256 of a bundle's bytes."""
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def load_bundle(path: str | Path, key: str | bytes | None = None) -> dict[str, Any]:
    """Verify a bundle against its manifest, then unpickle it without running any code."""
    path = Path(path)
    manifest = read_manifest(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BundleError(f"{path}: bundle file missing (its manifest exists)") from None
    _verify(path, data, manifest, bundle_key(key))
    if manifest.get("feature_version") is not None:  # refuse before unpickling anything
        check_feature_version(manifest["feature_version"], where=str(path))
    bundle = _restricted_loads(path, data)
    _check_payload(path, bundle)
    log.info("loaded %s (%d bytes, sha256 %s)", path, len(data), manifest["sha256"][:12])
    return bundle


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The parsed manifest beside a bundle; BundleError when missing or not one of ours."""
    where = manifest_path(path)
    try:
        manifest = json.loads(where.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(
            f"{where}: manifest missing; refusing to load {Path(path).name} unverified "
            "(write bundles with aco_lab.train.bundle_writer.write_bundle)"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{where}: manifest is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("kind") != MANIFEST_KIND:
        raise BundleError(f"{where}: foreign: not an ACO bundle manifest (kind {MANIFEST_KIND!r})")
    for field, kind in (("sha256", str), ("size", int)):
        if not isinstance(manifest.get(field), kind):
            raise BundleError(f"{where}: {field}: missing or not a {kind.__name__}")
    return manifest


def _verify(path: Path, data: bytes, manifest: Mapping[str, Any], key: bytes | None) -> None:
    if len(data) != manifest["size"]:
        raise BundleError(
            f"{path}: tampered or truncated: size {len(data)} bytes, manifest says "
            f"{manifest['size']}; restore the file or retrain"
        )
    digest = hashlib.sha256(data).hexdigest()
    if not hmac.compare_digest(digest, manifest["sha256"]):
        raise BundleError(
            f"{path}: tampered: sha256 mismatch with its manifest; restore or retrain"
        )
    recorded = manifest.get("hmac_sha256")
    if key is None:
        if recorded:
            log.info("%s: manifest has an HMAC but no key is configured (%s)", path, KEY_ENV)
        return
    if not isinstance(recorded, str):
        raise BundleError(
            f"{manifest_path(path)}: no HMAC but a key is configured ({KEY_ENV} or key=); "
            "rewrite the bundle with the key set, or unset the key"
        )
    if not hmac.compare_digest(bundle_hmac(data, key), recorded):
        raise BundleError(
            f"{path}: HMAC mismatch: wrong key, or the bundle and manifest were altered"
        )


class _NoGlobalsUnpickler(pickle.Unpickler):
    """Refuses every global: plain data needs none, and a global is how a pickle runs code."""

    def __init__(self, file: io.BytesIO, source: Path) -> None:
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        raise BundleError(
            f"{self.source}: unsafe: the pickle references a global {module}.{name}; refused "
            "(a bundle holds plain data only)"
        )


def _restricted_loads(path: Path, data: bytes) -> Any:
    try:
        return _NoGlobalsUnpickler(io.BytesIO(data), path).load()
    except BundleError:
        raise
    except Exception as exc:  # any malformed pickle: truncated, bad opcode, persistent id ...
        raise BundleError(
            f"{path}: not a readable bundle pickle ({type(exc).__name__}: {exc})"
        ) from None


def _check_payload(path: Path, bundle: Any) -> None:
    if not isinstance(bundle, dict) or FORMAT_VERSION_KEY not in bundle:
        raise BundleError(f"{path}: foreign: not an ACO bundle (no {FORMAT_VERSION_KEY})")
    check_plain(bundle, where=str(path))
    version = bundle[FORMAT_VERSION_KEY]
    if version != BUNDLE_FORMAT_VERSION:
        raise BundleError(
            f"{path}: bundle format version {version!r}, this aco reads version "
            f"{BUNDLE_FORMAT_VERSION}; retrain with this aco-lab, or install the aco that wrote it"
        )
    spec = bundle.get(FEATURE_SPEC_KEY)
    if isinstance(spec, Mapping):
        check_feature_version(spec.get("version"), where=f"{path}: {FEATURE_SPEC_KEY}")


def check_plain(value: Any, where: str = "payload") -> None:
    """Raise BundleError naming the first value (by key path) that is not plain data."""
    try:
        _check_plain(value, where, set())
    except RecursionError:
        raise BundleError(f"{where}: nested too deeply to be a bundle (a crafted file?)") from None


def _check_plain(value: Any, where: str, path_ids: set[int]) -> None:
    kind = type(value)
    if kind in PLAIN_SCALARS:
        return
    if kind not in PLAIN_CONTAINERS:
        raise BundleError(f"{where}: {_type_name(value)} is not plain data; {_how_to_fix(value)}")
    if id(value) in path_ids:
        raise BundleError(f"{where}: refers to itself (a cycle); bundles hold trees of plain data")
    path_ids.add(id(value))
    if kind is dict:
        for key, item in value.items():
            if type(key) not in PLAIN_SCALARS:
                raise BundleError(f"{where}: key {key!r} ({_type_name(key)}) is not plain data")
            _check_plain(
                item, f"{where}.{key}" if type(key) is str else f"{where}[{key!r}]", path_ids
            )
    else:
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]", path_ids)
    path_ids.discard(id(value))


def _type_name(value: Any) -> str:
    kind = type(value)
    return (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )


def _how_to_fix(value: Any) -> str:
    if hasattr(value, "tobytes") and hasattr(value, "tolist") and hasattr(value, "shape"):
        if getattr(value, "shape", None) == ():
            return "convert with .item()"
        return "convert with .tolist() or .tobytes()"
    if isinstance(value, set | frozenset):
        return "convert with sorted(...) into a list"
    if isinstance(value, bytearray | memoryview):
        return "convert with bytes(...)"
    if isinstance(value, Mapping):
        return "convert with dict(...)"
    return "use dict, list, tuple, str, int, float, bool, None or bytes"
