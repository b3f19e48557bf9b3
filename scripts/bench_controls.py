"""The learned run controls: held-out figures against their rule versions, and their speed.

    .venv/bin/python scripts/bench_controls.py [--sim N] [--seed 0] [--shared ../shared/data]
                                               [--calls 5000] [--splits 1]

For each data set (simulated counterfactual traces, and RouterBench and tau-bench when
--shared holds them), the requests are split in half by request (aco_lab.traces.split, --seed);
the controls are learned on one half (`learn_controls`) and replayed on the other beside
their rule versions (`evaluate_controls`). --splits N repeats RouterBench's cascade on N
splits (seeds seed..seed+N-1) and prints each and the mean, because one half of 1,598
prompts moves the success ratio by about a point from split to split; on each split the
cascade is learned once and its operating point chosen in several ways (CASCADE_VARIANTS:
out of fold at the 95% target, the default; out of fold within a budget of 20% of the top's
cost; in sample, the earlier default; other targets and budgets), each replayed on the
held-out half.

    .venv/bin/python scripts/bench_controls.py --cascade-only --splits 12 [--seed 0]
    .venv/bin/python scripts/bench_controls.py --curve 12 [--seed 0]
    .venv/bin/python scripts/bench_controls.py --kfold 5 --splits 3 [--seed 0]

--cascade-only prints only the --splits part for RouterBench's cascade.

--curve N prints only RouterBench's held-out trade-off curve on N splits: the cascade's
policies at 40 values per success around the chosen one (`cascade_curve_specs`, fitted on the
training half) replayed on the held-out half, and the success their upper envelope reaches at
20% of the top's cost (linear between points). It looks at held-out outcomes, so it is a
diagnostic of what the evidence allows, not a result.

--kfold K prints only RouterBench's cascade cross-validated by request on --splits seeds: K
cascades, each learned on K-1 folds and replayed on the fold it did not see, so every request
is replayed once (more training data per cascade than a half split; totals over all requests).

Speed: per decision, median over --calls calls, learned and rule versions timed in the same
run, interleaved (the learned cascade scores several answers; the rule reads one).
"""

from __future__ import annotations

import argparse
import itertools
import logging
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from aco.cascade import Answer
from aco.config import ACOConfig, load_config
from aco.controls import Controls, read_answer_signals
from aco.rules import read_cues
from aco_lab.controls.cascade import (
    CascadeSettings,
    cascade_curve_specs,
    learn_cascade,
    learn_cascades,
)
from aco_lab.controls.cascade_data import build_cascade_data
from aco_lab.controls.cascade_replay import learned_chooser, replay
from aco_lab.controls.suite import evaluate_controls, learn_controls, restrict_tables
from aco_lab.report.controls import build_controls_sections
from aco_lab.report.document import Document, render_markdown
from aco_lab.traces.reading import TraceTables, read_traces
from aco_lab.traces.split import assign_splits


def halves(tables: TraceTables, seed: int) -> tuple[TraceTables, TraceTables]:
    """Training and held-out halves, split by request."""
    parts = assign_splits(
        tables.runs["request_id"].unique().to_list(), [("train", 0.5), ("eval", 0.5)], seed=seed
    )
    return restrict_tables(tables, set(parts["train"])), restrict_tables(tables, set(parts["eval"]))


def bench_quality(name: str, tables: TraceTables, config: ACOConfig, seed: int) -> dict:
    """Learn on one half, evaluate on the other; print the report sections; the controls."""
    train, held = halves(tables, seed)
    start = time.perf_counter()
    controls = learn_controls(train, config, seed)
    learned_in = time.perf_counter() - start
    start = time.perf_counter()
    ev = evaluate_controls(controls, held, config)
    evaluated_in = time.perf_counter() - start
    print(f"\n# {name}: {train.runs.height} training runs, {held.runs.height} held-out runs")
    print(
        f"learned {', '.join(controls) or 'nothing'} in {learned_in:.1f}s; "
        f"evaluated in {evaluated_in:.1f}s\n"
    )
    print(render_markdown(Document(name, build_controls_sections(ev))))
    return controls


# Ways of choosing the cascade's operating point, learned once per split (learn_cascades): the
# first three are printed split by split, all of them as means.
CASCADE_VARIANTS = {
    "out of fold (default)": CascadeSettings(),
    "out of fold, budget 20%": CascadeSettings(max_cost_ratio=0.20),
    "in sample (the earlier default)": CascadeSettings(operating_point="in_sample"),
    **{
        f"out of fold, target {t:.0%}": CascadeSettings(target_success_ratio=t)
        for t in (0.93, 0.94, 0.96)
    },
    **{
        f"out of fold, budget {b:.0%}": CascadeSettings(max_cost_ratio=b)
        for b in (0.18, 0.22, 0.25)
    },
}
SHOWN_PER_SPLIT = 3


def bench_cascade_splits(tables: TraceTables, config: ACOConfig, seed: int, splits: int) -> None:
    """The learned cascade on several request splits: held-out success and cost against the
    top, for each way of choosing the operating point (CASCADE_VARIANTS)."""
    data = build_cascade_data(tables, config)
    # Budgets the target does not fit in warn on every split; the lines below say so.
    logging.getLogger("aco_lab.controls.cascade_point").setLevel(logging.ERROR)
    rows: dict[str, list[tuple[float, float]]] = {name: [] for name in CASCADE_VARIANTS}
    for s in range(seed, seed + splits):
        parts = assign_splits(data.request_ids, [("train", 0.5), ("eval", 0.5)], seed=s)
        train, held = data.select(set(parts["train"])), data.select(set(parts["eval"]))
        start = time.perf_counter()
        specs = learn_cascades(train, seed=s, settings=list(CASCADE_VARIANTS.values()))
        learned_in = time.perf_counter() - start
        for k, (name, spec) in enumerate(zip(CASCADE_VARIANTS, specs, strict=True)):
            _, summary = replay("learned", held, learned_chooser(spec))
            rows[name].append((summary.success_ratio, summary.cost_ratio))
            point = spec["train"]["operating_point"]
            if k < SHOWN_PER_SPLIT:
                print(
                    f"split seed {s}, {name}: {summary.success_ratio:.1%} of the top's "
                    f"success at {summary.cost_ratio:.1%} of its cost ({summary.requests} "
                    f"held-out requests; chosen on {point['rule'].replace('_', ' ')} figures "
                    f"{point['success_ratio']:.1%} at {point['cost_ratio']:.1%}"
                    f"{'' if point['reached'] else ', short of the target'})"
                )
        print(
            f"split seed {s}: {len(specs)} operating points learned in {learned_in:.1f}s",
            flush=True,
        )
    print(
        f"\n| operating point | held-out success, mean of {splits} | cost | success range "
        f"| splits below 95% | cost range |\n|---|---|---|---|---|---|"
    )
    for name, figures in rows.items():
        success, cost = [r[0] for r in figures], [r[1] for r in figures]
        print(
            f"| {name} | {statistics.mean(success):.1%} | {statistics.mean(cost):.1%} | "
            f"{min(success):.1%}-{max(success):.1%} | {sum(x < 0.95 for x in success)} | "
            f"{min(cost):.1%}-{max(cost):.1%} |"
        )


def bench_cascade_curve(
    tables: TraceTables, config: ACOConfig, seed: int, splits: int, at_cost: float = 0.20
) -> None:
    """Held-out success of the cascade's trade-off curve at `at_cost` of the top's cost."""
    data = build_cascade_data(tables, config)
    reached = []
    for s in range(seed, seed + splits):
        parts = assign_splits(data.request_ids, [("train", 0.5), ("eval", 0.5)], seed=s)
        train, held = data.select(set(parts["train"])), data.select(set(parts["eval"]))
        points = []
        for spec in cascade_curve_specs(train, seed=s):
            _, summary = replay("learned", held, learned_chooser(spec))
            points.append((summary.cost_ratio, summary.success_ratio))
        reached.append(envelope_at(points, at_cost))
        print(
            f"split seed {s}: the held-out curve reaches {reached[-1]:.1%} of the top's "
            f"success at {at_cost:.0%} of its cost"
        )
    print(
        f"mean over {splits} splits: {statistics.mean(reached):.1%} "
        f"({min(reached):.1%}-{max(reached):.1%}); "
        f"{sum(r < 0.95 for r in reached)} of {splits} below 95%"
    )


def bench_cascade_kfold(
    tables: TraceTables, config: ACOConfig, seed: int, folds: int, repeats: int
) -> None:
    """The learned cascade cross-validated by request: learned on k-1 folds, replayed on the
    fold it did not see, every request replayed once; totals over the k folds, per repeat."""
    data = build_cascade_data(tables, config)
    for s in range(seed, seed + repeats):
        parts = assign_splits(
            data.request_ids, [(f"fold{k}", 1 / folds) for k in range(folds)], seed=s
        )
        totals = [0.0, 0.0, 0.0, 0.0]  # successes, cost, the top's successes, the top's cost
        for k in range(folds):
            held_ids = set(parts[f"fold{k}"])
            spec = learn_cascade(data.select(set(data.request_ids) - held_ids), seed=s)
            _, summary = replay("learned", data.select(held_ids), learned_chooser(spec))
            for i, value in enumerate(
                (summary.successes, summary.cost, summary.top_successes, summary.top_cost)
            ):
                totals[i] += value
        print(
            f"split seed {s}, {folds}-fold: {totals[0] / totals[2]:.1%} of the top's success "
            f"at {totals[1] / totals[3]:.1%} of its cost ({data.n_requests} requests, each "
            f"replayed once by a cascade that did not learn from it)"
        )


def envelope_at(points: list[tuple[float, float]], cost: float) -> float:
    """Success of the upper envelope of (cost, success) points at a cost, linear between
    points (the last point's success beyond them, nan before the first)."""
    envelope: list[tuple[float, float]] = []
    for point in sorted(points, key=lambda p: (p[0], -p[1])):
        if not envelope or point[1] > envelope[-1][1]:
            envelope.append(point)
    for (c0, s0), (c1, s1) in itertools.pairwise(envelope):
        if c0 <= cost <= c1:
            return s0 + (s1 - s0) * (cost - c0) / (c1 - c0)
    return envelope[-1][1] if cost > envelope[-1][0] else float("nan")


def _median_us(fn, calls: int) -> float:  # noqa: ANN001
    times = []
    for _ in range(calls):
        start = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - start)
    return statistics.median(times) / 1000


def bench_speed(controls: dict, config: ACOConfig, calls: int) -> None:
    """Median microseconds per decision, learned against rules, interleaved in rounds."""
    learned, rules = Controls(config, controls), Controls(config)
    policy = learned._cascade_policy  # noqa: SLF001 - the learned cascade itself
    task = next(t for t in controls["cascade"]["policies"] if t != "*")
    sequence = controls["cascade"]["policies"][task]["sequence"]
    options = controls["cascade"]["options"]
    answers = [Answer(m, options[m]["tier"], "B", -0.2, -1.5) for m in sequence[:2]]
    signals = read_answer_signals([-0.2, -1.5, -0.01], "B")
    cues = read_cues("Fix the failing unit test in the parser module", "coding")
    cases = {
        "cascade step": (lambda: policy.step(task, answers), lambda: rules.cascade(signals, 1)),
        "doom check": (
            lambda: learned.doom(0.3, 1, 4, failures=2, task_type="coding", tier=3),
            lambda: rules.doom(0.3, 1, 4),
        ),
        "tool gate": (
            lambda: learned.gate("web_search", "coding"),
            lambda: rules.gate("web_search", "coding"),
        ),
        "verify": (
            lambda: learned.verify("medium", 0.6, task_type="coding", tier=3),
            lambda: rules.verify("medium", 0.6),
        ),
        "context budget": (
            lambda: learned.context_budget(cues, 3),
            lambda: rules.context_budget(cues, 3),
        ),
    }
    print(f"\n# speed: median microseconds per decision over {calls} calls (5 rounds, interleaved)")
    print("| decision | learned | rules | ratio |\n|---|---:|---:|---:|")
    for name, (learned_fn, rule_fn) in cases.items():
        a, b = [], []
        for _ in range(5):
            a.append(_median_us(learned_fn, calls // 5))
            b.append(_median_us(rule_fn, calls // 5))
        la, rb = statistics.median(a), statistics.median(b)
        print(f"| {name} | {la:.1f} | {rb:.1f} | {la / rb:.1f}x |")


def main() -> None:
    """Run the benchmark and print its figures (markdown) on stdout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sim", type=int, default=2000, help="simulated requests")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--splits", type=int, default=1)
    parser.add_argument(
        "--kfold",
        type=int,
        default=0,
        help="only RouterBench's cascade, cross-validated with this many folds (on --splits seeds)",
    )
    parser.add_argument(
        "--cascade-only", action="store_true", help="only RouterBench's cascade on --splits splits"
    )
    parser.add_argument(
        "--curve",
        type=int,
        default=0,
        help="only RouterBench's held-out trade-off curve, on this many splits",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(
        f"machine: {platform.machine()}, Python {platform.python_version()}, "
        f"{platform.system()}; command: {' '.join(sys.argv)}"
    )
    from aco_lab.simulate.generate import write_simulated_traces

    router = args.shared / "routerbench-dev"
    if args.curve:
        bench_cascade_curve(
            read_traces([router / "traces.jsonl.gz"]),
            load_config(router / "config.yaml"),
            args.seed,
            args.curve,
        )
        return
    if args.cascade_only:
        bench_cascade_splits(
            read_traces([router / "traces.jsonl.gz"]),
            load_config(router / "config.yaml"),
            args.seed,
            args.splits,
        )
        return
    if args.kfold:
        bench_cascade_kfold(
            read_traces([router / "traces.jsonl.gz"]),
            load_config(router / "config.yaml"),
            args.seed,
            args.kfold,
            args.splits,
        )
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sim.jsonl.gz"
        write_simulated_traces(path, args.sim, seed=args.seed, config=ACOConfig())
        sim_controls = bench_quality(
            f"simulated ({args.sim} requests x 5 tiers)",
            read_traces([path]),
            ACOConfig(),
            args.seed,
        )
    if (router / "traces.jsonl.gz").exists():
        config = load_config(router / "config.yaml")
        tables = read_traces([router / "traces.jsonl.gz"])
        bench_quality("RouterBench", tables, config, args.seed)
        bench_cascade_splits(tables, config, args.seed, args.splits)
    tau = args.shared / "tau-bench-airline" / "traces.jsonl.gz"
    if tau.exists():
        bench_quality("tau-bench airline", read_traces([tau]), ACOConfig(), args.seed)
    bench_speed(sim_controls, ACOConfig(), args.calls)


if __name__ == "__main__":
    main()
