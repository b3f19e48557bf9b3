"""Hostile and malformed bundles: each refused quickly with one line naming the file and field."""

import json
import logging
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from aco.bundle import (
    FORMAT_VERSION_KEY,
    check_plain,
    load_bundle,
    load_payload,
    manifest_path,
    resolve_bundle_path,
)
from aco.cli import main
from aco.errors import BundleError
from aco_lab.train.bundle_writer import write_bundle
from tests.bundle_files import write_raw, write_unchecked

ACO = Path(sys.executable).with_name("aco")


def shared_nesting(levels: int) -> list:
    """A list nested `levels` deep, each level holding the one below twice: 2**levels paths."""
    inner: list = []
    for _ in range(levels):
        inner = [inner, inner]
    return inner


def test_a_tiny_pickle_of_shared_nesting_is_refused_at_once(tmp_path: Path) -> None:
    data = pickle.dumps({FORMAT_VERSION_KEY: 1, "x": shared_nesting(40)}, protocol=5)
    assert len(data) < 400  # 2**40 paths in a few hundred bytes
    with pytest.raises(BundleError, match=r"b\.pkl\.x(\[0\]){31}: nested more than 32 levels"):
        load_bundle(write_raw(tmp_path / "b.pkl", data))


def test_shared_containers_are_walked_once() -> None:
    check_plain({"x": shared_nesting(30)})  # 2**30 paths, 31 lists: returns at once


def test_shared_nesting_inside_a_valid_payload_is_refused(
    tmp_path: Path, golden_payload: dict
) -> None:
    golden_payload["options"]["folds"] = shared_nesting(20)
    path = write_unchecked(golden_payload, tmp_path)
    with pytest.raises(BundleError, match=r"options\.folds\[0\]\[0\]: expected a number, bool"):
        load_bundle(path)


def test_a_huge_file_is_refused_by_its_size_before_it_is_read(
    tmp_path: Path, golden_payload: dict
) -> None:
    info = write_bundle(golden_payload, tmp_path)
    with open(info.path, "r+b") as stream:
        stream.truncate(4 << 30)  # sparse: 4 GiB on paper, nothing on disk
    with pytest.raises(BundleError, match=r"tampered or truncated: size 4294967296 bytes"):
        load_bundle(info.path)


MALFORMED = [  # (change to the golden payload, the message's field and what it expected)
    (lambda p: {FORMAT_VERSION_KEY: 1}, r"format: missing"),
    (lambda p: {**p, "model": [1, 2]}, r"model: expected a mapping, got list"),
    (lambda p: {**p, "policy": {}}, r"policy\.safety_threshold: missing"),
    (
        lambda p: {**p, "calibration": {"method": "bogus"}},
        r"calibration\.method: expected one of platt, isotonic, none, got str 'bogus'",
    ),
    (
        lambda p: {**p, "cost_model": {**p["cost_model"], "chars_per_token": 0}},
        r"cost_model\.chars_per_token: expected a finite number in \(0, inf\]",
    ),
    (
        lambda p: {**p, "cost_model": {**p["cost_model"], "default_output_tokens": [1.0]}},
        r"cost_model\.default_output_tokens: expected a list of 5 items",
    ),
    (lambda p: {**p, "cost_model": "cheap"}, r"cost_model: expected a mapping, got str"),
    (
        lambda p: {**p, "cost_model": {**p["cost_model"], "task_cost_factor": {"coding": [1.0]}}},
        r"cost_model\.task_cost_factor\.coding: expected a list of 5 items",
    ),
    (
        lambda p: {**p, "policy": {**p["policy"], "cost_scale": 0.0}},
        r"policy\.cost_scale: expected a finite number in \(0, inf\]",
    ),
    (
        lambda p: {**p, "tiers": [{**p["tiers"][0], "tier": 9}]},
        r"tiers\[0\]\.tier: expected an int in 1\.\.5, got int 9",
    ),
    (lambda p: {**p, "tiers": []}, r"tiers: expected at least one tier"),
    (lambda p: {**p, "task_floors": {"coding": 0}}, r"task_floors\.coding: expected an int in"),
    (lambda p: _booster(p, num_trees=125), r"model\.booster\.tree_root: 124 roots, num_trees"),
    (
        lambda p: _booster(p, threshold=p["model"]["booster"]["threshold"][:-8]),
        r"model\.booster\.threshold: 2037 entries, left has 2038",
    ),
    (
        lambda p: _booster(p, left=b"\x00" * 8152),
        r"model\.booster\.left\[1\]: expected a child after its parent .*, got 0",
    ),
    (lambda p: _booster(p, value=b"\xff" * 16304), r"model\.booster\.value\[0\]: expected a fin"),
    (lambda p: _booster(p, max_depth=3), r"model\.booster\.max_depth: expected an int in 6\.\.6"),
    (
        lambda p: _booster(p, num_features=100, feature_names=[], monotone_constraints=[]),
        r"model\.booster\.feature\[\d+\]: expected a feature index in 0\.\.99, got \d+",
    ),
    (
        lambda p: {**p, "feature_spec": {**p["feature_spec"], "hash_buckets": 100}},
        r"feature_spec: feature spec: hash_buckets: expected a power of two",
    ),
    (
        lambda p: {**p, "task_type_model": {**p["task_type_model"], "task_types": ["a"]}},
        r"task_type_model\.linear: 7 x 285 weights do not fit 1 task types",
    ),
    (
        lambda p: {**p, "controls": {"doom": {"kind": "doom_logistic"}}},
        r"controls\.doom\.version: expected 1",
    ),
    (lambda p: {**p, "surprise": 1}, r"surprise: unknown field"),
    (
        lambda p: {
            **p,
            "model": {"kind": "ensemble", "objective": "success", "members": [p["model"]]},
        },
        r"model\.members: expected a list of 2\.\.8 models",
    ),
    (
        lambda p: {
            **p,
            "model": {
                "kind": "ensemble",
                "objective": "success",
                "members": [
                    {"kind": "ensemble", "objective": "success", "members": []},
                    p["model"],
                ],
            },
        },
        r"model\.members\[0\]\.kind: expected one of",
    ),
]


def _booster(payload: dict, **changes) -> dict:
    model = {**payload["model"], "booster": {**payload["model"]["booster"], **changes}}
    return {**payload, "model": model}


@pytest.mark.parametrize("change, message", MALFORMED)
def test_malformed_payloads_are_one_line_errors_naming_the_field(
    tmp_path: Path, golden_payload: dict, change, message: str
) -> None:
    path = write_unchecked(change(golden_payload), tmp_path)
    with pytest.raises(BundleError, match=rf"^{path}: {message}"):
        load_payload(path)
    for args in (["route", "hello", "--bundle", str(path)], ["version", "--bundle", str(path)]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1 and result.exception.__class__ is SystemExit, result.output
        assert result.output.count("\n") == 1 and result.output.startswith(f"error: {path}: ")
    with pytest.raises(BundleError, match=message):  # the writer refuses it too
        write_bundle(change(golden_payload), tmp_path / "out")


def test_route_and_version_refuse_the_same_bundle_in_real_processes(
    tmp_path: Path, golden_payload: dict
) -> None:
    golden_payload["calibration"] = {"method": "bogus"}
    path = write_unchecked(golden_payload, tmp_path)
    for args in (["route", "hello", "--bundle", str(path)], ["version", "--bundle", str(path)]):
        out = subprocess.run([str(ACO), *args], capture_output=True, text=True, timeout=60)
        assert out.returncode == 1 and out.stdout == ""
        assert out.stderr == (
            f"error: {path}: calibration.method: expected one of platt, "
            "isotonic, none, got str 'bogus'\n"
        )


def test_a_manifest_that_is_a_directory_is_one_line(tmp_path: Path, golden_payload: dict) -> None:
    info = write_bundle(golden_payload, tmp_path)
    info.manifest_path.unlink()
    info.manifest_path.mkdir()
    with pytest.raises(BundleError, match=r"manifest\.json: cannot read the manifest"):
        load_bundle(info.path)


def test_a_bundle_that_is_not_a_regular_file_is_one_line(
    tmp_path: Path, golden_payload: dict
) -> None:
    info = write_bundle(golden_payload, tmp_path)
    manifest = info.manifest_path.read_text()
    for make in (Path.mkdir, lambda p: os.mkfifo(p)):  # a FIFO would block a plain read
        info.path.unlink() if info.path.is_file() else info.path.rmdir()
        make(info.path)
        manifest_path(info.path).write_text(manifest)
        with pytest.raises(BundleError, match=r"\.pkl: not a regular file"):
            load_bundle(info.path)
        if not info.path.is_dir():
            info.path.unlink()
            info.path.mkdir()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_bundle_is_one_line(tmp_path: Path, golden_payload: dict) -> None:
    info = write_bundle(golden_payload, tmp_path)
    info.path.chmod(0)
    with pytest.raises(BundleError, match=r"\.pkl: cannot read the bundle"):
        load_bundle(info.path)


def test_latest_skips_a_bundle_left_without_its_manifest(
    tmp_path: Path, golden_payload: dict, caplog: pytest.LogCaptureFixture
) -> None:
    first = write_bundle(golden_payload, tmp_path)
    second = write_bundle(golden_payload, tmp_path)
    second.manifest_path.unlink()  # a write interrupted between the .pkl and its manifest
    with caplog.at_level(logging.WARNING, logger="aco.bundle"):
        assert resolve_bundle_path("latest", tmp_path) == first.path
    assert f"{second.path}: skipped by 'latest': no manifest beside it" in caplog.text
    third = write_bundle(golden_payload, tmp_path)  # the next run takes the next version
    assert third.version == 3 and resolve_bundle_path("latest", tmp_path) == third.path
    first.manifest_path.unlink()
    third.manifest_path.unlink()
    with pytest.raises(BundleError, match="no router bundle"):
        resolve_bundle_path("latest", tmp_path)


def test_a_manifest_with_a_negative_or_huge_size_field(
    tmp_path: Path, golden_payload: dict
) -> None:
    info = write_bundle(golden_payload, tmp_path)
    manifest = json.loads(info.manifest_path.read_text())
    for size in (-1, True, 10**30):
        info.manifest_path.write_text(json.dumps({**manifest, "size": size}))
        with pytest.raises(BundleError, match="size"):
            load_bundle(info.path)
