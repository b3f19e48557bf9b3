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
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aco.errors import BundleError
from aco.features import check_feature_version
from aco.payload import BUNDLE_FORMAT_VERSION, BundlePayload, read_payload

log = logging.getLogger(__name__)

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

MAX_DEPTH = 32  # containers nested inside each other (a payload needs about 6)
MAX_NODES = 1_000_000  # containers in a payload (lists, dicts), each counted once
MAX_MANIFEST_BYTES = 1 << 20

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
    """ "v11", "11" or "latest" -> models_dir/router_bundle_v11.pkl; a path is returned as is.

    "latest" is the newest complete bundle: a version with its .pkl and its manifest (a
    write interrupted between the two leaves a .pkl alone; it is skipped, with a warning)."""
    text = str(ref)
    match = _VERSION_RE.fullmatch(text)
    if text == "latest":
        path = _latest_complete(Path(models_dir))
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


def _latest_complete(models_dir: Path) -> Path:
    for version in reversed(list_bundle_versions(models_dir)):
        path = bundle_path(models_dir, version)
        if path.is_file() and manifest_path(path).is_file():
            return path
        log.warning(
            "%s: skipped by 'latest': %s",
            path,
            "no manifest beside it" if path.is_file() else "a manifest without its .pkl",
        )
    raise BundleError(
        f"{models_dir}: no router bundle (a .pkl with its manifest); train one with `aco-lab train`"
    )


def bundle_key(key: str | bytes | None = None) -> bytes | None:
    """The HMAC key: the one given, else ACO_BUNDLE_KEY, else None."""
    if key is None:
        key = os.environ.get(KEY_ENV) or None
    return key.encode("utf-8") if isinstance(key, str) else key


def bundle_hmac(data: bytes, key: bytes) -> str:
    """Hex HMAC-SHA256 of a bundle's bytes."""
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def load_bundle(path: str | Path, key: str | bytes | None = None) -> dict[str, Any]:
    """Verify a bundle against its manifest, unpickle it without running any code, check every
    field (aco.payload); the plain data. `load_payload` gives the same bundle typed."""
    return _load(Path(path), key)[0]


def load_payload(path: str | Path, key: str | bytes | None = None) -> BundlePayload:
    """load_bundle's checks, and the payload as typed dataclasses (aco.payload.BundlePayload)."""
    return _load(Path(path), key)[1]


def _load(path: Path, key: str | bytes | None) -> tuple[dict[str, Any], BundlePayload]:
    manifest = read_manifest(path)
    data = _read_checked(path, manifest)
    _verify(path, data, manifest, bundle_key(key))
    if manifest.get("feature_version") is not None:  # refuse before unpickling anything
        check_feature_version(manifest["feature_version"], where=str(path))
    bundle = _restricted_loads(path, data)
    _check_payload(path, bundle)
    payload = read_payload(bundle, str(path))
    log.info("loaded %s (%d bytes, sha256 %s)", path, len(data), manifest["sha256"][:12])
    return bundle, payload


def _read_checked(path: Path, manifest: Mapping[str, Any]) -> bytes:
    """The bundle's bytes, after its size on disk matched the manifest (a huge file is never
    read just to find it is not the one the manifest describes)."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise BundleError(f"{path}: not a regular file; pass the path of a .pkl bundle")
        size = info.st_size
        if size != manifest["size"]:
            raise BundleError(
                f"{path}: tampered or truncated: size {size} bytes, manifest says "
                f"{manifest['size']}; restore the file or retrain"
            )
        with open(path, "rb") as stream:
            data = stream.read(manifest["size"] + 1)
    except FileNotFoundError:
        raise BundleError(f"{path}: bundle file missing (its manifest exists)") from None
    except OSError as exc:  # a directory, no permission, an I/O error
        raise BundleError(
            f"{path}: cannot read the bundle ({exc.strerror or exc}); check the "
            "path and its permissions"
        ) from None
    return data


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The parsed manifest beside a bundle; BundleError when missing or not one of ours."""
    where = manifest_path(path)
    try:
        if where.stat().st_size > MAX_MANIFEST_BYTES:
            raise BundleError(
                f"{where}: {where.stat().st_size} bytes is too large for a bundle manifest"
            )
        manifest = json.loads(where.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(
            f"{where}: manifest missing; refusing to load {Path(path).name} unverified "
            "(write bundles with aco_lab.train.bundle_writer.write_bundle)"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise BundleError(f"{where}: manifest is not valid JSON ({exc})") from None
    except OSError as exc:  # a directory, no permission, an I/O error
        raise BundleError(f"{where}: cannot read the manifest ({exc.strerror or exc})") from None
    if not isinstance(manifest, dict) or manifest.get("kind") != MANIFEST_KIND:
        raise BundleError(f"{where}: foreign: not an ACO bundle manifest (kind {MANIFEST_KIND!r})")
    for field, kind in (("sha256", str), ("size", int)):
        if type(manifest.get(field)) is not kind:
            raise BundleError(f"{where}: {field}: missing or not a {kind.__name__}")
    if manifest["size"] < 0:
        raise BundleError(f"{where}: size: expected an int >= 0, got {manifest['size']}")
    return manifest


def _verify(path: Path, data: bytes, manifest: Mapping[str, Any], key: bytes | None) -> None:
    if len(data) != manifest["size"]:  # changed since the stat
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
    """Raise BundleError naming the first value (by key path) that is not plain data.

    Each container is visited once, however many times the pickle refers to it (a shared
    list is legal, and a 300-byte pickle can nest one list 40 levels deep twice per level:
    2**40 paths, 41 containers). Nesting deeper than MAX_DEPTH or more than MAX_NODES values
    is refused: no bundle needs either, and a crafted file should not cost a long walk."""
    done: set[int] = set()  # containers checked (with everything inside them)
    on_path: set[int] = set()  # containers being checked: meeting one again is a cycle
    # (value, its location (parent location, key) -- a path is spelled out only for an error,
    # depth, whether this entry marks the end of the container's children)
    stack: list[tuple[Any, Any, int, bool]] = [(value, where, 0, False)]
    nodes = 0
    while stack:
        item, loc, depth, leaving = stack.pop()
        if leaving:
            on_path.discard(id(item))
            done.add(id(item))
            continue
        kind = type(item)
        if kind in PLAIN_SCALARS:
            continue
        nodes += 1
        if nodes > MAX_NODES:
            raise BundleError(
                f"{where}: more than {MAX_NODES:,} containers; too large to be a bundle"
            )
        if kind not in PLAIN_CONTAINERS:
            raise BundleError(
                f"{_spell(loc)}: {_type_name(item)} is not plain data; {_how_to_fix(item)}"
            )
        if id(item) in on_path:
            raise BundleError(
                f"{_spell(loc)}: refers to itself (a cycle); bundles hold trees of plain data"
            )
        if id(item) in done:
            continue
        if depth >= MAX_DEPTH:
            raise BundleError(
                f"{_spell(loc)}: nested more than {MAX_DEPTH} levels deep; too deep "
                "to be a bundle (a crafted file?)"
            )
        on_path.add(id(item))
        stack.append((item, loc, depth, True))
        if kind is dict:
            for key in item:
                if type(key) not in PLAIN_SCALARS:
                    raise BundleError(
                        f"{_spell(loc)}: key {key!r} ({_type_name(key)}) is not plain data"
                    )
            stack.extend((v, (loc, k), depth + 1, False) for k, v in reversed(item.items()))
        else:
            stack.extend(
                (v, (loc, i), depth + 1, False) for i, v in reversed(list(enumerate(item)))
            )


def _spell(loc: Any) -> str:
    """A location (parent, key) pairs as a path: payload.model.trees[3]."""
    keys = []
    while isinstance(loc, tuple):
        loc, key = loc
        keys.append(f".{key}" if type(key) is str else f"[{key!r}]")
    return loc + "".join(reversed(keys))


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
