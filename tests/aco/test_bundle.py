"""load_bundle: integrity before unpickling, no globals ever, clear refusals; path resolution."""

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from aco.bundle import (
    BUNDLE_FORMAT_VERSION,
    FORMAT_VERSION_KEY,
    KEY_ENV,
    list_bundle_versions,
    load_bundle,
    load_payload,
    manifest_path,
    resolve_bundle_path,
)
from aco.errors import BundleError, FeatureVersionError
from aco.features import FEATURE_VERSION
from aco_lab.train.bundle_writer import write_bundle
from tests.bundle_files import write_raw


def test_round_trip_of_plain_data(tmp_path: Path, golden_payload: dict) -> None:
    info = write_bundle(golden_payload, tmp_path)
    loaded = load_bundle(info.path)
    assert loaded == golden_payload
    assert loaded[FORMAT_VERSION_KEY] == BUNDLE_FORMAT_VERSION
    typed = load_payload(info.path)
    assert typed.to_dict() == loaded
    assert typed.model.booster.num_trees == 124 and typed.tiers[0].model_id == "tiny-local-3b"


class _CreatesAFile:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = pickle.dumps({FORMAT_VERSION_KEY: 1, "x": _CreatesAFile(marker)}, protocol=5)
    # The payload is live: plain pickle.loads really would create the file.
    pickle.loads(evil)
    assert marker.exists()
    marker.unlink()
    path = write_raw(tmp_path / "router_bundle_v1.pkl", evil)  # sha256 in the manifest is right
    with pytest.raises(
        BundleError, match=r"unsafe: the pickle references a global (os|posix)\.system"
    ):
        load_bundle(path)
    assert not marker.exists()


def test_any_global_is_refused_even_a_harmless_class(tmp_path: Path) -> None:
    data = pickle.dumps({FORMAT_VERSION_KEY: 1, "when": Path("x")}, protocol=5)
    with pytest.raises(BundleError, match="unsafe"):
        load_bundle(write_raw(tmp_path / "b.pkl", data))


def test_tampered_bytes_are_refused(tmp_path: Path, golden_payload: dict) -> None:
    info = write_bundle(golden_payload, tmp_path)
    data = bytearray(info.path.read_bytes())
    data[len(data) // 2] ^= 0x01
    info.path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="tampered: sha256 mismatch"):
        load_bundle(info.path)


def test_truncated_bundle_is_refused(tmp_path: Path, golden_payload: dict) -> None:
    info = write_bundle(golden_payload, tmp_path)
    info.path.write_bytes(info.path.read_bytes()[:-10])
    with pytest.raises(BundleError, match="truncated"):
        load_bundle(info.path)


def test_missing_manifest_is_refused(tmp_path: Path, golden_payload: dict) -> None:
    info = write_bundle(golden_payload, tmp_path)
    info.manifest_path.unlink()
    with pytest.raises(BundleError, match="manifest missing"):
        load_bundle(info.path)


def test_foreign_pickle_and_foreign_manifest_are_refused(tmp_path: Path) -> None:
    path = write_raw(tmp_path / "b.pkl", pickle.dumps(["just", "a", "list"], protocol=5))
    with pytest.raises(BundleError, match="foreign: not an ACO bundle"):
        load_bundle(path)
    manifest_path(path).write_text(json.dumps({"sha256": "x", "size": 1}))
    with pytest.raises(BundleError, match="foreign: not an ACO bundle manifest"):
        load_bundle(path)
    write_raw(path, b"not a pickle at all")
    with pytest.raises(BundleError, match="not a readable bundle pickle"):
        load_bundle(path)


def test_other_bundle_format_version_is_refused(tmp_path: Path) -> None:
    data = pickle.dumps({FORMAT_VERSION_KEY: BUNDLE_FORMAT_VERSION + 1}, protocol=5)
    with pytest.raises(BundleError, match="bundle format version"):
        load_bundle(write_raw(tmp_path / "b.pkl", data))


def test_other_feature_version_is_refused_with_what_to_do(
    tmp_path: Path, golden_payload: dict
) -> None:
    golden_payload["feature_spec"]["version"] = FEATURE_VERSION + 1
    data = pickle.dumps(golden_payload, protocol=5)
    path = write_raw(tmp_path / "b.pkl", data)
    with pytest.raises(
        FeatureVersionError, match="retrain the router with this version of aco-lab"
    ):
        load_bundle(path)


def test_hmac_is_checked_when_a_key_is_configured(
    tmp_path: Path, monkeypatch, golden_payload: dict
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    signed = write_bundle(golden_payload, tmp_path, key="right key")
    assert load_bundle(signed.path, key="right key")["model"] == golden_payload["model"]
    assert load_bundle(signed.path)["model"] == golden_payload["model"]  # no key: sha256 only
    with pytest.raises(BundleError, match="HMAC mismatch"):
        load_bundle(signed.path, key="wrong key")
    monkeypatch.setenv(KEY_ENV, "wrong key")
    with pytest.raises(BundleError, match="HMAC mismatch"):
        load_bundle(signed.path)
    monkeypatch.setenv(KEY_ENV, "right key")
    assert load_bundle(signed.path)["tiers"] == golden_payload["tiers"]
    monkeypatch.delenv(KEY_ENV)
    unsigned = write_bundle(golden_payload, tmp_path)
    with pytest.raises(BundleError, match="no HMAC but a key is configured"):
        load_bundle(unsigned.path, key="right key")


def test_hmac_written_from_the_environment(
    tmp_path: Path, monkeypatch, golden_payload: dict
) -> None:
    monkeypatch.setenv(KEY_ENV, "env key")
    info = write_bundle(golden_payload, tmp_path)
    assert "hmac_sha256" in json.loads(info.manifest_path.read_text())
    with pytest.raises(BundleError, match="HMAC mismatch"):
        load_bundle(info.path, key="other")


def test_resolve_bundle_path_forms(tmp_path: Path, golden_payload: dict) -> None:
    first, second = write_bundle(golden_payload, tmp_path), write_bundle(golden_payload, tmp_path)
    assert resolve_bundle_path("v2", tmp_path) == second.path
    assert resolve_bundle_path("1", tmp_path) == first.path
    assert resolve_bundle_path("latest", tmp_path) == second.path
    assert resolve_bundle_path(str(first.path)) == first.path
    assert resolve_bundle_path(first.path) == first.path
    assert list_bundle_versions(tmp_path) == [1, 2]
    with pytest.raises(
        BundleError, match=r"router_bundle_v9\.pkl: no such router bundle; .*v1, v2"
    ):
        resolve_bundle_path("v9", tmp_path)
    with pytest.raises(BundleError, match="no router bundle"):
        resolve_bundle_path("latest", tmp_path / "empty")


def test_loading_imports_no_heavy_library(tmp_path: Path, golden_payload: dict) -> None:
    info = write_bundle(golden_payload, tmp_path)
    code = (
        "import sys; from aco.bundle import load_bundle; b = load_bundle(sys.argv[1]); "
        "heavy = ('lightgbm', 'sklearn', 'polars', 'pandas'); "
        "print(' '.join(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(info.path)], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""


def test_sets_bytearrays_and_deep_nesting_built_without_globals_are_refused(tmp_path: Path) -> None:
    # Pickle opcodes build these without any global, so the unpickler alone lets them through.
    for i, extra in enumerate([{1, 2}, bytearray(b"x"), frozenset()]):
        data = pickle.dumps({FORMAT_VERSION_KEY: 1, "x": extra}, protocol=5)
        with pytest.raises(BundleError, match="payload|is not plain data"):
            load_bundle(write_raw(tmp_path / f"b{i}.pkl", data))

    # 100,000 nested lists, written opcode by opcode (pickle.dumps itself would recurse).
    def text(s: str) -> bytes:
        return b"\x8c" + bytes([len(s)]) + s.encode()  # SHORT_BINUNICODE

    nested = b"]" * 100_000 + b"a" * 99_999  # EMPTY_LIST each, then APPEND each into the one below
    data = b"\x80\x04}(" + text(FORMAT_VERSION_KEY) + b"K\x01" + text("x") + nested + b"u."
    with pytest.raises(BundleError, match="nested more than 32 levels deep"):
        load_bundle(write_raw(tmp_path / "deep.pkl", data))
