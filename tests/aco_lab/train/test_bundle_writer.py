"""write_bundle: plain data only, checked before writing; new versions only, even under races."""

import copy
import hashlib
import json
import threading
from pathlib import Path

import numpy as np
import pytest

from aco.bundle import BUNDLE_FORMAT_VERSION, MANIFEST_KIND, load_bundle
from aco.errors import BundleError
from aco.features import FEATURE_VERSION
from aco.payload import BundlePayload
from aco_lab.train.bundle_writer import BundleInfo, write_bundle


@pytest.mark.parametrize(
    "payload, message",
    [
        (
            {"model": {"trees": [1, 2, 3, np.zeros(2)]}},
            r"payload\.model\.trees\[3\]: numpy\.ndarray is not plain data; "
            r"convert with \.tolist\(\) or \.tobytes\(\)",
        ),
        (
            {"auc": np.float64(0.7)},
            "payload.auc: numpy.float64 is not plain data; convert with .item()",
        ),
        ({"tiers": {1, 2}}, "payload.tiers: set is not plain data; convert with sorted"),
        ({"raw": bytearray(b"x")}, "payload.raw: bytearray is not plain data; convert with bytes"),
        ({"f": len}, "payload.f: builtin_function_or_method is not plain data"),
        ({(1, 2): "tuple key"}, "key \\(1, 2\\) \\(tuple\\) is not plain data"),
        ({"path": Path("x")}, "payload.path: pathlib.*Path is not plain data"),
    ],
)
def test_non_plain_payload_is_refused_before_anything_is_written(
    tmp_path: Path, payload: dict, message: str, golden_payload: dict
) -> None:
    out = tmp_path / "models"
    with pytest.raises(BundleError, match=message):
        write_bundle(payload, out)
    with pytest.raises(BundleError, match=message):  # inside a real payload too
        write_bundle({**golden_payload, **payload}, out)
    assert not out.exists() or list(out.iterdir()) == []


def test_cycles_are_refused(tmp_path: Path) -> None:
    loop: list = []
    loop.append(loop)
    with pytest.raises(BundleError, match=r"payload.x\[0\]: refers to itself"):
        write_bundle({"x": loop}, tmp_path)


def test_versions_increment_and_never_overwrite(tmp_path: Path, golden_payload: dict) -> None:
    infos = [write_bundle({**golden_payload, "seed": i}, tmp_path) for i in range(3)]
    assert [i.version for i in infos] == [1, 2, 3]
    assert [i.path.name for i in infos] == [f"router_bundle_v{n}.pkl" for n in (1, 2, 3)]
    before = infos[0].path.read_bytes()
    # A version whose manifest survived without its pickle is still taken.
    (tmp_path / "router_bundle_v7.manifest.json").write_text("{}")
    assert write_bundle({**golden_payload, "seed": 99}, tmp_path).version == 8
    assert infos[0].path.read_bytes() == before
    assert [load_bundle(i.path)["seed"] for i in infos] == [0, 1, 2]
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == []  # temp files are cleaned up


def test_manifest_records_what_the_loader_checks(tmp_path: Path, golden_payload: dict) -> None:
    info = write_bundle(golden_payload, tmp_path)
    manifest = json.loads(info.manifest_path.read_text())
    data = info.path.read_bytes()
    assert info.sha256 == manifest["sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["size"] == info.size == len(data)
    assert manifest["kind"] == MANIFEST_KIND and manifest["version"] == info.version == 1
    assert manifest["bundle_format_version"] == BUNDLE_FORMAT_VERSION
    assert manifest["feature_version"] == FEATURE_VERSION
    assert manifest["created_at"] == load_bundle(info.path)["created_at"]
    assert "hmac_sha256" not in manifest
    assert data[:2] == b"\x80\x05"  # pickle protocol 5


def test_the_payload_is_not_modified(tmp_path: Path, golden_payload: dict) -> None:
    del golden_payload["created_at"], golden_payload["bundle_format_version"]
    before = copy.deepcopy(golden_payload)
    write_bundle(golden_payload, tmp_path)
    assert golden_payload == before


def test_the_writer_refuses_what_the_loader_would(tmp_path: Path, golden_payload: dict) -> None:
    golden_payload["calibration"] = {"method": "bogus"}
    with pytest.raises(BundleError, match=r"^payload: calibration.method: expected one of "):
        write_bundle(golden_payload, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_typed_payload_is_written_as_its_plain_data(tmp_path: Path, golden_payload: dict) -> None:
    typed = BundlePayload.from_dict(golden_payload)
    assert load_bundle(write_bundle(typed, tmp_path).path) == golden_payload


def test_a_foreign_format_version_in_the_payload_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="bundle_format_version"):
        write_bundle({"bundle_format_version": 99}, tmp_path)


def test_concurrent_writers_each_get_their_own_version(
    tmp_path: Path, golden_payload: dict
) -> None:
    n_writers = 8
    infos: list[BundleInfo] = []
    errors: list[BaseException] = []
    start = threading.Barrier(n_writers)

    def writer(i: int) -> None:
        try:
            start.wait()
            infos.append(write_bundle({**golden_payload, "seed": i}, tmp_path))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(n_writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(i.version for i in infos) == list(range(1, n_writers + 1))
    for info in infos:
        loaded = load_bundle(info.path)
        assert loaded == {**golden_payload, "seed": loaded["seed"]}
        assert info.sha256 == json.loads(info.manifest_path.read_text())["sha256"]
