"""The bundle payload's record of its training: the data it was trained on, what was held
out, the validation figures and the training options, each checked by its path.

Part of the payload schema (aco.payload.BundlePayload reads these sections); the errors are
`PayloadError`s naming the field, as in aco/payload.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aco.payload_fields import (
    Fields,
    as_list,
    as_str,
    as_strings,
    check,
    is_number,
)


def read_files(data: Any, where: str) -> tuple[dict[str, Any], ...]:
    """A list of files: {"path": str, "sha256": str, "bytes": int >= 0} (a bare path: its path)."""
    files = []
    for i, item in enumerate(as_list(data, where)):
        if type(item) is str:
            item = {"path": item}
        g = Fields(item, f"{where}[{i}]", ("path", "sha256", "bytes"))
        entry = {"path": g.str("path")}
        if "sha256" in item:
            entry["sha256"] = g.str("sha256")
        if "bytes" in item:
            entry["bytes"] = g.int("bytes", 0)
        files.append(entry)
    return tuple(files)


@dataclass(frozen=True, slots=True)
class Holdout:
    """Traces split off before training, for `aco-lab evaluate` without paths."""

    files: tuple[Mapping[str, Any], ...]
    request_ids: tuple[str, ...] | None = None  # the held-out requests, when recorded

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Holdout:
        """Checked: the file list, the ids (str)."""
        f = Fields(data, where, ("files", "request_ids"))
        ids = as_strings(data["request_ids"], f.at("request_ids")) if f.has("request_ids") else None
        return cls(read_files(f.get("files"), f.at("files")), ids)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the payload."""
        out: dict[str, Any] = {"files": [dict(x) for x in self.files]}
        if self.request_ids is not None:
            out["request_ids"] = list(self.request_ids)
        return out


@dataclass(frozen=True, slots=True)
class TrainingData:
    """What the router was trained on: file digests, counts, the request ids and their digest."""

    files: tuple[Mapping[str, Any], ...]  # {"path": str, "sha256": str, "bytes": int}
    n_runs: int
    n_requests: int
    counterfactual: bool
    request_ids_sha256: str
    request_ids: tuple[str, ...]
    holdout: Holdout | None = None

    @classmethod
    def from_dict(cls, data: Any, where: str = "training_data") -> TrainingData:
        """Checked: the file list's fields, counts >= 0, one id per request."""
        f = Fields(data, where, cls.__slots__)
        ids = as_strings(f.get("request_ids"), f.at("request_ids"))
        holdout = Holdout.from_dict(data["holdout"], f.at("holdout")) if f.has("holdout") else None
        return cls(
            read_files(f.get("files"), f.at("files")),
            f.int("n_runs", 0),
            f.int("n_requests", len(ids), len(ids)),
            f.bool("counterfactual"),
            f.str("request_ids_sha256"),
            ids,
            holdout,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the payload."""
        out = {
            "files": [dict(x) for x in self.files],
            "n_runs": self.n_runs,
            "n_requests": self.n_requests,
            "counterfactual": self.counterfactual,
            "request_ids_sha256": self.request_ids_sha256,
            "request_ids": list(self.request_ids),
        }
        if self.holdout is not None:
            out["holdout"] = self.holdout.to_dict()
        return out


def read_options(data: Any, where: str = "options") -> dict[str, Any]:
    """The training options as recorded: str keys; scalars, lists of them, or lists of pairs."""
    check(type(data) is dict, where, "a mapping", data)
    for key, value in data.items():
        _check_scalars(value, f"{where}.{as_str(key, f'{where} key')}", depth=2)
    return dict(data)


def _check_scalars(value: Any, where: str, depth: int) -> None:
    if type(value) in (list, tuple) and depth > 0:
        for i, item in enumerate(value):
            _check_scalars(item, f"{where}[{i}]", depth - 1)
        return
    check(
        value is None or is_number(value) or type(value) in (bool, str),
        where,
        "a number, bool, str or None" + (" (or a list of them)" if depth else ""),
        value,
    )
