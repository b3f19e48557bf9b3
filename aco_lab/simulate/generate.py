"""Seeded simulator of realistic agent traces in trace format v1 (same seed -> same bytes).

The world (task types, latent difficulty, what each tier can do) is
aco_lab/simulate/world.py, the request wording aco_lab/simulate/request_templates.py, one
run's steps aco_lab/simulate/run.py. A router that
reads only the request text can learn the difficulty the text shows, never the rest, so it
beats fixed tiers without reaching the oracle.

Modes: `counterfactual` runs every request at each of `tiers`, each run staying at its tier
(runs share request_id, so routers can be trained and replayed, as on RouterBench); `logs` runs
each request once, at the tier a simple exploring rule chose, with the rule's probability of
that choice in `metadata.routing_propensity` (for inverse-propensity estimates), and a failed
verifier check may escalate the rest of the run one tier up (`escalated_from`), as a cascade
in production does. In both modes `predicted_tier` is the tier the run started at. Request i is
the same in both modes and for any `tiers`: each request and each run has its own seeded
generator.
"""

from __future__ import annotations

import gzip
import multiprocessing
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import msgspec

from aco import trace_format as tf
from aco.config import ACOConfig
from aco.errors import ConfigError, DataError
from aco.progress import Meter
from aco.rules import route_by_rules
from aco_lab.files import atomic_file
from aco_lab.simulate.request_templates import build_request
from aco_lab.simulate.run import RunSetting, build_run
from aco_lab.simulate.world import (
    HIDDEN_SD,
    LUCK_SD,
    PROFILES,
    TASK_TYPES,
    TASK_WEIGHTS,
    TIERS,
    VISIBLE_SD,
    SimRequest,
)

Mode = Literal["counterfactual", "logs"]
MODES: tuple[str, ...] = ("counterfactual", "logs")
SOURCE = "simulator"
ESTIMATE_SD = 0.08  # noise of the pre-run `difficulty` estimate, on the 0..1 scale
ESTIMATE_MISSING = 0.15  # share of requests without a difficulty estimate
START_EPOCH = 1767225600  # 2026-01-01T00:00:00Z: runs spread over the 30 days after it
SPAN_SECONDS = 30 * 86400
TIER_GAP_SECONDS = 45.0  # counterfactual runs of a request start one after another
EXPLORE = 0.10  # the logs-mode policy picks a uniformly random tier this often
# Counterfactual runs are graded like a benchmark (every outcome known); in logs, some runs were
# never labelled (no user feedback, no grader verdict): task_success null.
UNKNOWN_OUTCOME = {"counterfactual": 0.0, "logs": 0.08}
BLOCK_REQUESTS = 200  # requests per block of lines (a worker's unit of work)
GZIP_LEVEL = 6


@dataclass(frozen=True, slots=True)
class SimulationSummary:
    """What write_simulated_traces wrote."""

    path: str
    mode: str
    requests: int
    traces: int
    bytes: int  # size of the file written (compressed when gzip)


def build_sim_request(seed: int, index: int) -> SimRequest:
    """Request `index` of the simulation with this seed (the same whatever the mode and tiers)."""
    rng = random.Random(f"{seed}:{index}")
    task_type = rng.choices(TASK_TYPES, TASK_WEIGHTS)[0]
    visible = _clip(rng.gauss(PROFILES[task_type].difficulty, VISIBLE_SD))
    difficulty = _clip(visible + rng.gauss(0.0, HIDDEN_SD))
    text = build_request(rng, task_type, visible)
    estimate = None
    if rng.random() >= ESTIMATE_MISSING:  # known before the run: from the latent, never the outcome
        estimate = min(5, max(1, round(1 + 4 * (difficulty + rng.gauss(0.0, ESTIMATE_SD)))))
    return SimRequest(
        index=index,
        request_id=f"sim-{seed}-{index:07d}",
        task_type=task_type,
        text=text,
        visible=visible,
        difficulty=difficulty,
        luck=rng.gauss(0.0, LUCK_SD),
        estimate=estimate,
        start=rng.random() * SPAN_SECONDS,
        tokens=max(4, len(text) // 4),
    )


def generate_traces(
    n_requests: int,
    seed: int,
    config: ACOConfig | None = None,
    mode: Mode = "counterfactual",
    tiers: Sequence[int] | None = None,
) -> Iterator[dict]:
    """Yield the simulated traces (trace-format-v1 dicts), request by request."""
    config = config or ACOConfig()
    chosen = _check_args(n_requests, config, mode, tiers)
    yield from _traces(range(n_requests), seed, config, mode, chosen)


def write_simulated_traces(
    path: str | Path,
    n_requests: int,
    seed: int,
    config: ACOConfig | None = None,
    mode: Mode = "counterfactual",
    tiers: Sequence[int] | None = None,
    workers: int = 1,
) -> SimulationSummary:
    """Simulate and stream the traces to a JSONL file (gzip for *.gz), written atomically.

    workers > 1 simulates blocks of requests in that many processes; the bytes are the same.
    """
    config = config or ACOConfig()
    chosen = _check_args(n_requests, config, mode, tiers)
    jobs = [
        (start, min(start + BLOCK_REQUESTS, n_requests), seed, config, mode, chosen)
        for start in range(0, n_requests, BLOCK_REQUESTS)
    ]
    meter = Meter("simulating requests", n_requests, "requests")
    if workers > 1 and len(jobs) > 1:
        # spawn: a forked child of a process that loaded polars can deadlock.
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            size = _write_blocks(Path(path), _counted(pool.imap(_encode_block, jobs), jobs, meter))
    else:
        size = _write_blocks(Path(path), _counted(map(_encode_block, jobs), jobs, meter))
    traces = n_requests * (len(chosen) if mode == "counterfactual" else 1)
    return SimulationSummary(str(path), mode, n_requests, traces, size)


def _traces(
    indices: range, seed: int, config: ACOConfig, mode: str, chosen: list[int]
) -> Iterator[dict]:
    # Counterfactual runs stay at their tier: a cascade would blur what each tier can do alone.
    retries = config.max_retries if mode == "logs" else 0
    specs = {s.tier: s for s in config.tiers}
    setting = RunSetting(specs, config.max_cost_per_task, retries, UNKNOWN_OUTCOME[mode])
    for index in indices:
        request = build_sim_request(seed, index)
        if mode == "logs":
            rng = random.Random(f"{seed}:{index}:logs")
            tier, propensity = route_for_logs(request, config, chosen, rng)
            meta = {"sim_mode": mode, "sim_seed": seed, "routing_propensity": propensity}
            yield _trace(request, tier, f"{request.request_id}-log", 0.0, setting, rng, meta)
            continue
        for tier in chosen:
            rng = random.Random(f"{seed}:{index}:run{tier}")
            offset = (tier - 1) * TIER_GAP_SECONDS + rng.random() * 30.0
            meta = {"sim_mode": mode, "sim_seed": seed}
            yield _trace(request, tier, f"{request.request_id}-t{tier}", offset, setting, rng, meta)


def _counted(blocks: Iterator[bytes], jobs: list[tuple], meter: Meter) -> Iterator[bytes]:
    """The blocks, each counted on the meter (in requests) once it is written."""
    for (start, stop, *_), block in zip(jobs, blocks, strict=True):
        yield block
        meter.advance(stop - start)


def _encode_block(job: tuple) -> bytes:
    """The JSONL bytes of requests start..stop (a worker's unit of work)."""
    start, stop, seed, config, mode, chosen = job
    encoder = msgspec.json.Encoder()
    buffer = bytearray()
    for trace in _traces(range(start, stop), seed, config, mode, chosen):
        encoder.encode_into(trace, buffer, -1)
        buffer += b"\n"
    return bytes(buffer)


def route_for_logs(
    request: SimRequest, config: ACOConfig, tiers: Sequence[int], rng: random.Random
) -> tuple[int, float]:
    """The logging policy of logs mode: the runtime's rule-based router (aco.rules, given the
    task type), explored uniformly; (tier, propensity)."""
    wanted = route_by_rules(request.text, config, request.task_type).tier
    rule = min((t for t in tiers if t >= wanted), default=max(tiers))
    chosen = rng.choice(tiers) if rng.random() < EXPLORE else rule
    propensity = EXPLORE / len(tiers) + (1.0 - EXPLORE) * (chosen == rule)
    return chosen, propensity


def _trace(
    request: SimRequest,
    tier: int,
    trace_id: str,
    offset: float,
    setting: RunSetting,
    rng: random.Random,
    metadata: dict,
) -> dict:
    run = build_run(request, tier, setting, rng)
    return {
        tf.SCHEMA_VERSION_FIELD: tf.SCHEMA_VERSION,
        tf.TRACE_ID: trace_id,
        tf.REQUEST_ID: request.request_id,
        tf.REQUEST: request.text,
        tf.TASK_TYPE: request.task_type,
        tf.DIFFICULTY: request.estimate,
        tf.PREDICTED_TIER: tier,
        tf.TIMESTAMP: _timestamp(request.start + offset),
        tf.SOURCE: SOURCE,
        tf.STEPS: run.steps,
        tf.FINAL_OUTCOME: run.final_outcome,
        tf.TASK_SUCCESS: run.task_success,
        tf.TOTAL_COST: run.total_cost,
        tf.METADATA: metadata,
    }


def _check_args(
    n_requests: int, config: ACOConfig, mode: str, tiers: Sequence[int] | None
) -> list[int]:
    if not isinstance(n_requests, int) or isinstance(n_requests, bool) or n_requests < 0:
        raise DataError(f"--n: expected an int >= 0 (requests to simulate), got {n_requests!r}")
    if mode not in MODES:
        raise DataError(f"--mode: expected one of {', '.join(MODES)}, got {mode!r}")
    configured = sorted(spec.tier for spec in config.tiers)
    if configured != list(range(configured[0], configured[-1] + 1)):
        raise ConfigError(f"models: the simulator needs consecutive tiers, got {configured}")
    chosen = sorted(set(tiers)) if tiers else configured
    for tier in chosen:
        if tier not in configured or tier not in TIERS:
            raise ConfigError(f"--tiers: tier {tier} is not configured; choose among {configured}")
    return chosen


def _write_blocks(path: Path, blocks: Iterator[bytes]) -> int:
    """Stream blocks of lines to a temp file beside `path`, then rename it over `path`; bytes.

    A .gz name is gzip-compressed with a fixed header (no name, mtime 0): same lines, same bytes.
    """
    with atomic_file(path) as raw:
        gzipped = path.name.endswith(".gz")
        out = gzip.GzipFile("", "wb", GZIP_LEVEL, raw, mtime=0) if gzipped else raw
        for block in blocks:
            out.write(block)
        if gzipped:
            out.close()
        return raw.tell()


def _timestamp(seconds: float) -> str:
    whole = int(seconds)
    millis = int((seconds - whole) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(START_EPOCH + whole)) + f".{millis:03d}Z"


def _clip(x: float) -> float:
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x
