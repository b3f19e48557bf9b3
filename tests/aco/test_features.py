"""Request features: spec round trip, signals, few-shot split, bounded windows, stability."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest

from aco.bundle import check_plain
from aco.errors import ConfigError, FeatureVersionError
from aco.features import (
    FEATURE_VERSION,
    TASK_MISSING,
    TASK_UNKNOWN,
    FeatureSpec,
    build_feature_spec,
    request_features,
    set_task_type,
    split_few_shot,
)

SPEC = build_feature_spec(["coding", "quick_answer", None, "coding"], hash_buckets=64)


def feature(vector: np.ndarray, name: str, spec: FeatureSpec = SPEC) -> float:
    return float(vector[spec.names.index(name)])


def hashed(vector: np.ndarray, spec: FeatureSpec = SPEC) -> np.ndarray:
    return vector[spec.hash_offset :]


def few_shot_prompt(preamble_questions: list[str], final: str) -> str:
    blocks = [f"{q}\nA) yes\nB) no\nAnswer:\nA" for q in preamble_questions]
    return "\n\n".join([*blocks, f"{final}\nA) yes\nB) no\nAnswer:"])


def test_spec_round_trips_through_plain_data() -> None:
    data = SPEC.to_dict()
    check_plain(data)
    again = FeatureSpec.from_dict(data)
    assert again == SPEC
    assert again.names == SPEC.names
    assert SPEC.task_types == ("coding", "quick_answer")  # sorted, None dropped, deduplicated
    assert len(SPEC.names) == SPEC.n_features == len(set(SPEC.names))


def test_spec_from_another_feature_version_is_refused_with_what_to_do() -> None:
    data = SPEC.to_dict() | {"version": FEATURE_VERSION + 1}
    with pytest.raises(
        FeatureVersionError, match="retrain the router with this version of aco-lab"
    ):
        FeatureSpec.from_dict(data)


def test_spec_with_edited_names_is_refused() -> None:
    data = SPEC.to_dict()
    data["names"] = data["names"][:-1] + ["extra"]
    with pytest.raises(ConfigError, match="names do not match"):
        FeatureSpec.from_dict(data)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"hash_buckets": 100}, "power of two"),
        ({"word_ngrams": (1, 3)}, "word_ngrams"),
        ({"char_ngrams": (4, 3)}, "char_ngrams"),
        ({"char_ngrams": (3, 9)}, "char_ngrams"),
        ({"window_head": 4}, "window_head"),
    ],
)
def test_invalid_settings_are_refused(settings: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_feature_spec(["coding"], **settings)


def test_vector_shape_dtype_and_unit_norm_buckets() -> None:
    x = request_features(SPEC, "Write a function that reverses a list in Python.")
    assert x.dtype == np.float64 and x.shape == (SPEC.n_features,)
    assert math.isclose(float(np.sum(hashed(x) ** 2)), 1.0)
    assert np.all(hashed(x) >= 0)


@pytest.mark.parametrize(
    "task_type, flag",
    [("coding", "task_type=coding"), ("legal", TASK_UNKNOWN), (None, TASK_MISSING)],
)
def test_task_type_is_one_hot_with_unknown_and_missing_flags(task_type, flag) -> None:
    x = request_features(SPEC, "hello", task_type=task_type)
    names = ["task_type=coding", "task_type=quick_answer", TASK_UNKNOWN, TASK_MISSING]
    assert {n: feature(x, n) for n in names} == {n: float(n == flag) for n in names}


@pytest.mark.parametrize("task_type", ["coding", "quick_answer", "legal", None])
@pytest.mark.parametrize("given", ["quick_answer", None])
def test_set_task_type_equals_recomputing_the_features(task_type, given) -> None:
    text = few_shot_prompt(["Is ice cold?"], "Fix the auth bug in production ```def f(): 1```")
    x = request_features(SPEC, text, given, 3, 420)
    set_task_type(SPEC, x, task_type)
    np.testing.assert_array_equal(x, request_features(SPEC, text, task_type, 3, 420))


def test_difficulty_and_input_tokens() -> None:
    text = "x" * 400
    missing = request_features(SPEC, text)
    given = request_features(SPEC, text, difficulty=4, input_tokens=1000)
    assert math.isnan(feature(missing, "difficulty"))
    assert feature(given, "difficulty") == 4.0
    assert feature(missing, "input_tokens_estimated") == 1.0
    assert feature(missing, "input_tokens_log") == pytest.approx(math.log1p(100))  # 400 chars / 4
    assert feature(given, "input_tokens_estimated") == 0.0
    assert feature(given, "input_tokens_log") == pytest.approx(math.log1p(1000))
    assert feature(request_features(SPEC, text, difficulty=float("nan")), "difficulty") != 3


@pytest.mark.parametrize(
    "text, name, expected",
    [
        ("URGENT: production outage, fix asap!", "urgency_words", 4),
        (
            "Review the contract for legal and compliance risk, and the payment terms.",
            "risk_words",
            4,
        ),
        ("def f(x):\n    return {x: [1]}\n", "code_words", 2),
        ("def f(x):\n    return {x: [1]}\n", "code_braces", 4),
        ("```python\nprint(1)\n```", "code_backticks", 6),
        ("Which one?\nA) red\nB) blue\n(c) green\nd. none", "mc_options", 4),
        ("Is it 42 or 7? Or 1000 (2.5)?", "numbers", 5),
        ("Is it 42 or 7.5? Or 1e3?", "question_marks", 2),
        ("see https://a.b and http://c.d", "urls", 2),
        ("one two  three\nfour", "final_words", 4),
        ("plain words only", "risk_words", 0),
    ],
)
def test_structure_signals(text: str, name: str, expected: float) -> None:
    assert feature(request_features(SPEC, text), name) == expected


def test_length_signals_and_non_ascii() -> None:
    text = "naïve café\nsecond line"
    x = request_features(SPEC, text)
    assert feature(x, "chars_log") == pytest.approx(math.log1p(len(text)))
    assert feature(x, "lines_log") == pytest.approx(math.log1p(2))
    assert feature(x, "non_ascii_ratio") == pytest.approx(2 / len(text.encode()))
    assert feature(request_features(SPEC, "plain"), "non_ascii_ratio") == 0.0


def test_few_shot_preamble_is_counted_and_the_final_question_hashed_alone() -> None:
    final = "Is the sky green at noon?"
    prompt = few_shot_prompt(["Is water wet?", "Do fish fly?", "Is ice cold?"], final)
    other_preamble = few_shot_prompt(["Is fire hot?", "Can dogs read?"], final)
    shots, split = split_few_shot(prompt.lower())
    assert shots == 3
    assert prompt[split:].startswith(final)
    x, y = request_features(SPEC, prompt), request_features(SPEC, other_preamble)
    assert feature(x, "few_shot_examples") == 3 and feature(y, "few_shot_examples") == 2
    assert feature(x, "preamble_chars_log") == pytest.approx(math.log1p(split))
    np.testing.assert_array_equal(hashed(x), hashed(y))  # the shared boilerplate is not hashed
    changed = request_features(SPEC, few_shot_prompt(["Is water wet?"], "Is the sea salty?"))
    assert not np.array_equal(hashed(x), hashed(changed))


@pytest.mark.parametrize(
    "text, shots",
    [
        ("Just a question without examples?", 0),
        ("Q: 2+2?\nAnswer:", 0),  # only the open marker of the final question
        ("Q: 1+1?\nA: 2\n\nQ: 2+2?\nA:", 1),
        ("Q: 1+1?\nAnswer: 2\n\nQ: 2+3?\nAnswer: 5\n\nNow: 3+3?", 2),  # no open marker at the end
    ],
)
def test_split_few_shot_counts_completed_examples(text: str, shots: int) -> None:
    assert split_few_shot(text.lower())[0] == shots


def test_long_texts_only_hash_the_head_and_tail_window() -> None:
    spec = build_feature_spec([], hash_buckets=64, window_head=64, window_tail=32)
    head, tail = "h" * 20 + " alpha beta gamma " * 3, " omega psi chi" * 3
    a = request_features(spec, head + " middle one " * 5000 + tail)
    b = request_features(spec, head + " another middle " * 5000 + tail)
    np.testing.assert_array_equal(hashed(a, spec), hashed(b, spec))
    c = request_features(spec, "z" + head[1:] + " middle one " * 5000 + tail)
    assert not np.array_equal(hashed(a, spec), hashed(c, spec))


@pytest.mark.parametrize(
    "text",
    ["", " ", "\n\n\n", "日本語のテキスト 🚀", "lone \ud800 surrogate", "a" * 100_000, "Answer:"],
)
def test_edge_texts_give_finite_vectors(text: str) -> None:
    x = request_features(SPEC, text)
    assert np.isfinite(np.delete(x, SPEC.names.index("difficulty"))).all()


def test_request_must_be_text() -> None:
    with pytest.raises(TypeError, match="request: expected a str"):
        request_features(SPEC, None)  # type: ignore[arg-type]


def test_different_texts_get_different_buckets() -> None:
    a = request_features(SPEC, "translate this sentence into French")
    b = request_features(SPEC, "prove that the square root of two is irrational")
    assert not np.array_equal(hashed(a), hashed(b))


FIXED_REQUESTS = [
    ("Fix the failing test in auth.py: KeyError 'user_id'", "coding", 3, 812),
    (few_shot_prompt(["Is water wet?"], "Is the sky green?"), "quick_answer", None, None),
    ("Ünïcödé — 日本語 and emoji 🚀? URGENT legal review!", None, None, None),
]
DIGEST_CODE = f"""
import hashlib, sys
import numpy as np
from aco.features import build_feature_spec, request_features
spec = build_feature_spec(["coding", "quick_answer"])
rows = [request_features(spec, *args) for args in {FIXED_REQUESTS!r}]
print(hashlib.sha256(np.round(np.stack(rows), 9).tobytes()).hexdigest())
"""
# Every trained bundle's inputs hang on these numbers: when a change to aco/features.py moves
# this digest, bump FEATURE_VERSION (old bundles must be refused, not silently misread).
PINNED = {1: "71840b0f38f4143851bae2bdad45f3e49012c1f31227b8634bdc191807f3f093"}


def features_digest(seed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    run = subprocess.run(
        [sys.executable, "-c", DIGEST_CODE], capture_output=True, text=True, check=True, env=env
    )
    return run.stdout.strip()


def test_features_are_the_same_in_every_process_whatever_the_hash_seed() -> None:
    assert len({features_digest(seed) for seed in ("0", "1", "12345")}) == 1


def test_feature_values_are_pinned_to_the_feature_version() -> None:
    assert features_digest("0") == PINNED[FEATURE_VERSION], (
        "request_features changed its numbers: bump FEATURE_VERSION and pin the new digest"
    )
