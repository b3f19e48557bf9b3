"""Request features known before a run: hashed n-grams and length/structure signals.

Written once here and reused by the lab (``aco_lab.features.build_features`` calls
``request_features`` per row), so training and run time compute the same numbers.

Design, and why:
- No vocabulary to ship: word n-grams (crc32) and byte n-grams (the bytes themselves) of
  the lowercased UTF-8 text are hashed into ``hash_buckets`` l2-normalised counts by
  Fibonacci hashing; never Python's salted ``hash()``, so a value depends only on the text
  and the spec, in every process and on every machine.
- Bounded work: few-shot prompts (RouterBench's repeated "Answer:" examples) carry a long,
  shared preamble. It is counted (examples, size) but not hashed: n-grams and content
  signals come from the final question only, cut to a head + tail window of bytes.
- Speed (a fixed number of numpy and bytes calls per request, no Python loop per byte):
  byte n-grams of every size come from one strided little-endian uint64 view of the window
  (shift, multiply, shift on a (sizes, positions) array); words come from
  ``bytes.translate`` + ``split`` and a C-level ``map(zlib.crc32, ...)``; whole-text work is
  limited to ``len``, ``str.count`` and ``str.rfind``.
- Nothing here reads an outcome: only the request text, its task type, a pre-run
  difficulty estimate and the prompt's input token count.
"""

from __future__ import annotations

import math
import zlib
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import xor
from typing import Any

import numpy as np

from aco.errors import ConfigError, FeatureVersionError

# Bump when any number request_features returns changes for the same inputs and spec.
FEATURE_VERSION = 1

DEFAULT_HASH_BUCKETS = 256  # power of two: buckets are the top bits of a multiplicative hash
DEFAULT_WORD_NGRAMS = (1, 2)  # word unigrams and bigrams
DEFAULT_CHAR_NGRAMS = (3, 5)  # byte 3-, 4- and 5-grams
DEFAULT_WINDOW_HEAD = 768  # bytes of the final question hashed from its start ...
DEFAULT_WINDOW_TAIL = 256  # ... and from its end, when it is longer than both
MAX_WINDOW = 65536  # bytes; an upper bound on window_head + window_tail
MAX_CHAR_NGRAM = 8  # byte n-grams are read 8 bytes at a time
CHARS_PER_TOKEN = 4.0  # input-token estimate when the prompt's token count is unknown

# Few-shot examples end with one of these answer markers (lowercased, literal for speed).
SHOT_MARKERS = ("answer:", "\na:", "\noutput:")
URGENCY_WORDS = (
    "urgent",
    "urgently",
    "asap",
    "immediately",
    "production",
    "outage",
    "critical",
    "emergency",
    "deadline",
    "blocker",
    "down",
)
RISK_WORDS = (
    "legal",
    "law",
    "lawsuit",
    "compliance",
    "regulatory",
    "regulation",
    "gdpr",
    "hipaa",
    "security",
    "vulnerability",
    "medical",
    "diagnosis",
    "patient",
    "payment",
    "payments",
    "refund",
    "contract",
    "contracts",
    "liability",
    "financial",
    "tax",
    "audit",
    "privacy",
    "confidential",
)
CODE_WORDS = (
    "def",
    "class",
    "return",
    "import",
    "function",
    "lambda",
    "const",
    "var",
    "public",
    "void",
    "select",
    "self",
    "elif",
    "async",
    "await",
    "struct",
)

SIGNAL_NAMES = (
    "chars_log",  # log1p(characters of the whole request)
    "words_log",  # log1p(whitespace-separated words, whole request)
    "lines_log",  # log1p(lines, whole request)
    "few_shot_examples",  # completed example blocks before the final question
    "preamble_chars_log",  # log1p(characters before the final question)
    "final_chars_log",  # log1p(characters of the final question)
    "final_words",  # words in the final-question window
    "numbers",  # digit runs in the final-question window ("2.5" counts 2)
    "question_marks",  # in the final-question window
    "mc_options",  # lines starting like "A)" / "(b)" / "c." in the window
    "code_backticks",  # ``` fences count 3 each
    "code_braces",  # { } [ ] ;
    "code_words",  # def, class, return, import, ...
    "urgency_words",  # urgent, asap, production, outage, critical, ...
    "risk_words",  # legal, compliance, security, medical, payment, contract, ...
    "non_ascii_ratio",  # (UTF-8 bytes - characters) / bytes of the final question
    "urls",  # "http" occurrences in the whole request
)
TASK_UNKNOWN = "task_type_unknown"  # a task type not seen in training
TASK_MISSING = "task_type_missing"  # no task type given
TAIL_NAMES = ("difficulty", "input_tokens_log", "input_tokens_estimated")
HASH_PREFIX = "hash_"

_CRC_BIGRAM_SEED = 0x5BD1E995  # xor-ed into the first word's crc so bigrams differ from words
_MASK64 = (1 << 64) - 1
_FIB_INT = 0x9E3779B97F4A7C15  # 2**64 / phi: buckets are the top bits of h * an odd multiplier
_WORD_BYTES = set(b"0123456789abcdefghijklmnopqrstuvwxyz_") | set(range(128, 256))
# bytes.translate tables: C-speed passes that replace regexes over the window.
_TO_WORDS = bytes(c if c in _WORD_BYTES else 32 for c in range(256))  # non-word bytes -> space
_TO_DIGITS = bytes(48 if 48 <= c <= 57 else 32 for c in range(256))  # digit runs survive
_TO_OPTIONS = bytes(97 if 97 <= c <= 104 else c for c in range(256))  # a..h -> a
_OPTION_PATTERNS = (b"\na)", b"\na.", b"\n(a)")
_BRACES = (b"{", b"}", b"[", b"]", b";")
_KEYWORD_GROUP = {
    w.encode(): g for g, words in enumerate((CODE_WORDS, URGENCY_WORDS, RISK_WORDS)) for w in words
}


def _char_hashing(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    # Per size n, as (sizes, 1) columns: the left shift that keeps the low n bytes of a
    # little-endian 8-byte read, and an odd multiplier of its own (sizes never share hashes).
    sizes = range(lo, hi + 1)
    shifts = np.array([[64 - 8 * n] for n in sizes], dtype=np.uint64)
    multipliers = np.array(
        [[(_FIB_INT * (2 * n + 1)) & _MASK64 | 1] for n in sizes], dtype=np.uint64
    )
    return shifts, multipliers


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """What request_features computes: settings, task types seen in training, names."""

    task_types: tuple[str, ...]
    hash_buckets: int = DEFAULT_HASH_BUCKETS
    word_ngrams: tuple[int, int] = DEFAULT_WORD_NGRAMS
    char_ngrams: tuple[int, int] = DEFAULT_CHAR_NGRAMS
    window_head: int = DEFAULT_WINDOW_HEAD
    window_tail: int = DEFAULT_WINDOW_TAIL
    version: int = FEATURE_VERSION
    names: tuple[str, ...] = ()  # derived; checked against the settings when given
    _task_index: Mapping[str, int] = field(init=False, repr=False, compare=False)
    _word_shift: np.uint32 = field(init=False, repr=False, compare=False)
    _gram_shift: np.uint64 = field(init=False, repr=False, compare=False)
    _char_hashing: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_feature_version(self.version)
        _validate_settings(self)
        names = _feature_names(self)
        if self.names and tuple(self.names) != names:
            raise ConfigError(
                "feature spec: names do not match its settings (edited by hand?); "
                "rebuild the spec with build_feature_spec"
            )
        object.__setattr__(self, "names", names)
        start = len(SIGNAL_NAMES)
        index = {t: start + i for i, t in enumerate(self.task_types)}
        object.__setattr__(self, "_task_index", index)
        bits = self.hash_buckets.bit_length() - 1
        object.__setattr__(self, "_word_shift", np.uint32(32 - bits))
        object.__setattr__(self, "_gram_shift", np.uint64(64 - bits))
        object.__setattr__(self, "_char_hashing", _char_hashing(*self.char_ngrams))

    @property
    def n_features(self) -> int:
        """Length of the vector request_features returns."""
        return len(self.names)

    @property
    def hash_offset(self) -> int:
        """Index of the first hashed n-gram bucket in the vector."""
        return len(self.names) - self.hash_buckets

    def to_dict(self) -> dict[str, Any]:
        """Plain data for a bundle (lists, ints, strings)."""
        return {
            "version": self.version,
            "task_types": list(self.task_types),
            "hash_buckets": self.hash_buckets,
            "word_ngrams": list(self.word_ngrams),
            "char_ngrams": list(self.char_ngrams),
            "window_head": self.window_head,
            "window_tail": self.window_tail,
            "names": list(self.names),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        """Rebuild a spec from to_dict's output; refuses another feature version."""
        if not isinstance(data, Mapping) or "version" not in data:
            raise ConfigError("feature spec: expected a mapping with a 'version' key")
        check_feature_version(data["version"])
        try:
            return cls(
                task_types=tuple(data["task_types"]),
                hash_buckets=int(data["hash_buckets"]),
                word_ngrams=tuple(data["word_ngrams"]),
                char_ngrams=tuple(data["char_ngrams"]),
                window_head=int(data["window_head"]),
                window_tail=int(data["window_tail"]),
                version=int(data["version"]),
                names=tuple(data.get("names", ())),
            )
        except KeyError as exc:
            raise ConfigError(f"feature spec: missing key {exc.args[0]!r}") from None


def check_feature_version(version: Any, where: str = "feature spec") -> None:
    """Refuse features computed by another version of this module, saying what to do."""
    if version != FEATURE_VERSION:
        raise FeatureVersionError(
            f"{where}: built with feature version {version!r}, this aco computes version "
            f"{FEATURE_VERSION}; retrain the router with this version of aco-lab, or install "
            "the aco version that built the bundle"
        )


def _validate_settings(spec: FeatureSpec) -> None:
    buckets = spec.hash_buckets
    if not isinstance(buckets, int) or not 2 <= buckets <= 1 << 20 or buckets & (buckets - 1):
        raise ConfigError(
            f"feature spec: hash_buckets: expected a power of two in 2..2**20, got {buckets!r}"
        )
    for key, top in (("word_ngrams", 2), ("char_ngrams", MAX_CHAR_NGRAM)):
        lo_hi = tuple(getattr(spec, key))
        if (
            len(lo_hi) != 2
            or not all(isinstance(n, int) for n in lo_hi)
            or not 1 <= lo_hi[0] <= lo_hi[1] <= top
        ):
            raise ConfigError(
                f"feature spec: {key}: expected (lo, hi) with 1 <= lo <= hi <= {top}, got {lo_hi!r}"
            )
    head, tail = spec.window_head, spec.window_tail
    if not (
        isinstance(head, int)
        and isinstance(tail, int)
        and head >= 16
        and tail >= 0
        and head + tail <= MAX_WINDOW
    ):
        raise ConfigError(
            f"feature spec: window_head, window_tail: expected head >= 16, tail >= 0, "
            f"head + tail <= {MAX_WINDOW} bytes, got {head!r}, {tail!r}"
        )
    types = spec.task_types
    if len(set(types)) != len(types) or not all(isinstance(t, str) for t in types):
        raise ConfigError(f"feature spec: task_types: expected distinct strings, got {types!r}")


def _feature_names(spec: FeatureSpec) -> tuple[str, ...]:
    task = tuple(f"task_type={t}" for t in spec.task_types) + (TASK_UNKNOWN, TASK_MISSING)
    width = len(str(spec.hash_buckets - 1))
    hashed = tuple(f"{HASH_PREFIX}{i:0{width}d}" for i in range(spec.hash_buckets))
    return SIGNAL_NAMES + task + TAIL_NAMES + hashed


def build_feature_spec(task_types: Sequence[str | None], **settings: Any) -> FeatureSpec:
    """A spec over the task types seen in training (sorted, None dropped) and settings."""
    seen = sorted({t for t in task_types if t is not None})
    return FeatureSpec(task_types=tuple(seen), **settings)


def split_few_shot(lower: str) -> tuple[int, int]:
    """(completed few-shot examples, index where the final question starts) of lowercased text."""
    found = [(lower.rfind(marker), marker) for marker in SHOT_MARKERS]
    found = [(start, marker) for start, marker in found if start >= 0]
    if not found:
        return 0, 0
    count = sum(lower.count(marker) for _, marker in found)  # only markers that occur
    last_start, marker = max(found)
    last_end = last_start + len(marker)
    if lower[last_end:].strip():
        completed_end = last_end  # every marker is answered; the question follows the last
    else:
        count -= 1  # the prompt ends with an open marker: the final question's own
        if count == 0:
            return 0, 0
        previous = [(lower.rfind(m, 0, last_start), m) for _, m in found]
        start, marker = max(previous)
        completed_end = start + len(marker)
    blank = lower.find("\n\n", completed_end)
    if blank < 0:
        return count, 0
    return count, blank + 2


def request_features(
    spec: FeatureSpec,
    request: str,
    task_type: str | None = None,
    difficulty: float | None = None,
    input_tokens: float | None = None,
) -> np.ndarray:
    """The float64 feature vector of one request (names: spec.names)."""
    if not isinstance(request, str):
        raise TypeError(f"request: expected a str, got {type(request).__name__}")
    lower = request.lower()
    shots, split = split_few_shot(lower)
    final = lower[split:] if split else lower
    data = final.encode("utf-8", "surrogatepass")
    n_bytes = len(data)
    head, tail = spec.window_head, spec.window_tail
    if n_bytes > head + tail:
        data = data[:head] + b"\0" + data[n_bytes - tail :]
    out = np.empty(len(spec.names), dtype=np.float64)
    window = _window_features(spec, data, out)
    newlines = lower.count("\n")
    out[: len(SIGNAL_NAMES)] = (
        math.log1p(len(lower)),
        math.log1p(lower.count(" ") + newlines + 1 if lower else 0),
        math.log1p(newlines + 1 if lower else 0),
        shots,
        math.log1p(split),
        math.log1p(len(final)),
        *window,
        (n_bytes - len(final)) / n_bytes if n_bytes else 0.0,  # extra bytes of multi-byte chars
        lower.count("http"),
    )
    _fill_context(spec, out, task_type, difficulty, input_tokens, len(request))
    return out


def _window_features(spec: FeatureSpec, data: bytes, out: np.ndarray) -> tuple[int, ...]:
    """The window's signals (final_words .. risk_words) and, into out, its n-gram counts."""
    words = data.translate(_TO_WORDS).split()
    _hash_ngrams(spec, data, words, out)
    return (
        len(words),
        len(data.translate(_TO_DIGITS).split()),
        data.count(b"?"),
        _mc_options(data),
        data.count(b"`"),
        sum(data.count(c) for c in _BRACES),
        *_keywords(words),
    )


def _mc_options(window: bytes) -> int:
    # Lines opening like "a)", "b.", "(c)": one translate and three literal counts.
    options = window.translate(_TO_OPTIONS)
    return sum(options.count(pattern) for pattern in _OPTION_PATTERNS)


def _keywords(words: list[bytes]) -> list[int]:
    counts = [0, 0, 0]
    for word in filter(_KEYWORD_GROUP.__contains__, words):  # C-level filter; hits are few
        counts[_KEYWORD_GROUP[word]] += 1
    return counts


def _hash_ngrams(spec: FeatureSpec, data: bytes, words: list[bytes], out: np.ndarray) -> None:
    """Count word and byte n-grams of the window into out's l2-normalised hash buckets."""
    unigrams = list(map(zlib.crc32, words))
    hashes = unigrams if spec.word_ngrams[0] == 1 else []
    if spec.word_ngrams[1] == 2 and len(words) > 1:
        seeds = map(xor, unigrams, repeat(_CRC_BIGRAM_SEED))  # operator.xor: a C call per item
        hashes = hashes + list(map(zlib.crc32, words[1:], seeds))
    parts = [np.frombuffer(array("I", hashes), dtype=np.uint32) >> spec._word_shift]
    # Every position's next 8 bytes as one little-endian uint64: a strided view, then one copy.
    buffer = b"\0" + data + bytes(8)
    reads = np.ndarray((len(data) + 1,), dtype="<u8", buffer=buffer, strides=(1,)).copy()
    shifts, multipliers = spec._char_hashing
    grams = reads[None, :] << shifts  # (sizes, positions): only the n-gram's bytes survive
    grams *= multipliers
    grams >>= spec._gram_shift
    parts.append(grams.ravel())
    counts = np.bincount(np.concatenate(parts).view(np.int64), minlength=spec.hash_buckets)
    norm = math.sqrt(int(counts @ counts)) or 1.0
    np.divide(counts, norm, out=out[spec.hash_offset :])


def _fill_context(
    spec: FeatureSpec,
    out: np.ndarray,
    task_type: str | None,
    difficulty: float | None,
    input_tokens: float | None,
    n_chars: int,
) -> None:
    set_task_type(spec, out, task_type)
    at = len(SIGNAL_NAMES) + len(spec.task_types) + 2
    out[at] = math.nan if difficulty is None or difficulty != difficulty else float(difficulty)
    estimated = input_tokens is None or input_tokens != input_tokens
    tokens = n_chars / CHARS_PER_TOKEN if estimated else float(input_tokens)
    out[at + 1] = math.log1p(max(tokens, 0.0))
    out[at + 2] = 1.0 if estimated else 0.0


def set_task_type(spec: FeatureSpec, out: np.ndarray, task_type: str | None) -> None:
    """Rewrite the task-type columns of a feature vector in place (the text is not hashed
    again): the runtime's features once it has inferred a missing task type."""
    start = len(SIGNAL_NAMES)
    n_tasks = len(spec.task_types)
    out[start : start + n_tasks + 2] = 0.0
    if task_type is None:
        out[start + n_tasks + 1] = 1.0
    else:
        out[spec._task_index.get(task_type, start + n_tasks)] = 1.0
