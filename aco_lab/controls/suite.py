"""All five controls at once: learn them for a bundle, evaluate them on held-out traces.

`learn_controls(tables, config, seed)` returns the plain-data dict `aco-lab train` stores as
`bundle["controls"]`; a control the traces cannot teach (no counterfactual runs for the
cascade, no multi-step runs for the doom check, no tool calls for the gate, ...) is left out
and the runtime keeps its rule version. `evaluate_controls(controls, tables, config)` replays
each learned control beside its rule version on traces the bundle did not train on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from aco.config import ACOConfig
from aco.errors import DataError
from aco.progress import stage
from aco_lab.controls.cascade import CascadeSettings, learn_cascade
from aco_lab.controls.cascade_data import build_cascade_data
from aco_lab.controls.cascade_replay import (
    CascadeDecisionLine,
    CascadeSummary,
    agreement_chooser,
    learned_chooser,
    per_task_type_chooser,
    replay,
    rules_chooser,
    single_chooser,
    tier_models,
)
from aco_lab.controls.context_budget import (
    ContextResult,
    evaluate_context_budget,
    learn_context_budget,
)
from aco_lab.controls.doom import DoomResult, evaluate_doom, learn_doom
from aco_lab.controls.tool_gate import GateResult, evaluate_gate, learn_gate
from aco_lab.controls.verifier_budget import (
    VerifierResult,
    VerifierSettings,
    evaluate_verifier,
    learn_verifier,
)
from aco_lab.traces import schema as S
from aco_lab.traces.reading import TraceTables

log = logging.getLogger(__name__)

CONTROL_NAMES = ("cascade", "doom", "gate", "verify", "context_budget")


@dataclass(frozen=True, slots=True)
class ControlSettings:
    """Settings of the learned controls (each control's own dataclass holds its details)."""

    cascade: CascadeSettings = CascadeSettings()
    cascade_pool: str = "traces"  # cascade options: every model in the traces, or "tiers"


def learn_controls(
    tables: TraceTables, config: ACOConfig, seed: int, settings: ControlSettings = ControlSettings()
) -> dict[str, dict]:
    """Every control the traces can teach, as plain data keyed by control name."""
    learners: dict[str, Callable[[], dict]] = {
        "cascade": lambda: learn_cascade(
            build_cascade_data(tables, config, settings.cascade_pool), seed, settings.cascade
        ),
        "doom": lambda: learn_doom(tables, seed),
        "gate": lambda: learn_gate(tables),
        # The call-rate cap is the config's alert line: verifying more would raise the alert.
        "verify": lambda: learn_verifier(
            tables, VerifierSettings(max_call_rate=config.alerts.max_verifier_call_rate)
        ),
        "context_budget": lambda: learn_context_budget(tables),
    }
    controls = {}
    for name, learn in learners.items():
        stage(f"learning the {name} control")
        start = time.perf_counter()
        try:
            controls[name] = learn()
        except DataError as exc:
            log.info("controls: %s not learned (rules stay): %s", name, exc)
            continue
        log.info("controls: learned %s in %.1fs", name, time.perf_counter() - start)
    return controls


@dataclass(frozen=True, slots=True)
class ControlsEvaluation:
    """Each learned control against its rule version on held-out traces."""

    cascade: tuple[CascadeSummary, ...] = ()  # the learned cascade first, then baselines
    cascade_lines: tuple[CascadeDecisionLine, ...] = ()  # the learned cascade's decisions
    doom: tuple[DoomResult, ...] = ()
    gate: tuple[GateResult, ...] = ()
    verify: tuple[VerifierResult, ...] = ()
    context_budget: tuple[ContextResult, ...] = ()
    skipped: dict[str, str] = field(default_factory=dict)  # control -> why not evaluated


def evaluate_controls(
    controls: Mapping[str, Any], tables: TraceTables, config: ACOConfig
) -> ControlsEvaluation:
    """Replay every learned control and its rule version on these (held-out) traces."""
    found: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    evaluators = {
        "cascade": lambda spec: evaluate_cascade(spec, tables, config),
        "doom": lambda spec: (evaluate_doom(spec, tables, config),),
        "gate": lambda spec: (evaluate_gate(spec, tables, config),),
        "verify": lambda spec: (evaluate_verifier(spec, tables, config),),
        "context_budget": lambda spec: (evaluate_context_budget(spec, tables, config),),
    }
    for name, evaluate in evaluators.items():
        if name not in controls:
            skipped[name] = "not learned (the training traces could not teach it)"
            continue
        stage(f"replaying the {name} control")
        try:
            found[name] = evaluate(controls[name])
        except DataError as exc:
            skipped[name] = str(exc)
    cascade = found.get("cascade", ((), ()))
    return ControlsEvaluation(
        cascade=tuple(cascade[0]),
        cascade_lines=tuple(cascade[1]),
        **{name: tuple(found[name][0]) for name in CONTROL_NAMES[1:] if name in found},
        skipped=skipped,
    )


def evaluate_cascade(
    spec: Mapping[str, Any], tables: TraceTables, config: ACOConfig, pool: str = "traces"
) -> tuple[list[CascadeSummary], list[CascadeDecisionLine]]:
    """The learned cascade and its baselines replayed on counterfactual held-out traces."""
    data = build_cascade_data(tables, config, pool)
    if spec["top"] not in data.options:
        raise DataError(
            f"cascade: the evaluation traces have no run of the top model "
            f"{spec['top']}; evaluate on counterfactual traces of the same models"
        )
    lines, learned = replay("learned cascade", data, learned_chooser(spec))
    summaries = [learned]
    tiers = tier_models(data, config)
    cheap = [tiers[t] for t in sorted(tiers)[:2]]
    per_type = spec["baseline_per_task_type"]
    for name, chooser, needs in (  # each baseline, and the models it needs in the traces
        ("rule cascade (aco.controls)", rules_chooser(data, config), list(tiers.values())),
        (
            f"agreement cascade ({' + '.join(cheap)} agree, else top)",
            agreement_chooser(cheap, data.top),
            [*cheap, data.top],
        ),
        (
            "best model per task type (chosen on training)",
            per_task_type_chooser(per_type),
            list(per_type.values()),
        ),
        (f"top model only ({data.top})", single_chooser(data.top), [data.top]),
    ):
        if all(m in data.options for m in needs):
            summaries.append(replay(name, data, chooser)[1])
    return summaries, lines


def restrict_tables(tables: TraceTables, request_ids: set[str] | None) -> TraceTables:
    """The tables of some requests only (all of them for None)."""
    if request_ids is None:
        return tables
    runs = tables.runs.filter(pl.col(S.REQUEST_ID).is_in(pl.Series(sorted(request_ids)).implode()))
    traces = runs[S.TRACE_ID].implode()
    return TraceTables(
        runs,
        tables.steps.filter(pl.col(S.TRACE_ID).is_in(traces)),
        tables.tool_calls.filter(pl.col(S.TRACE_ID).is_in(traces)),
    )
