"""Benchmark: the Dask engine (a local cluster of --workers processes) against the local engine.

    .venv/bin/python scripts/bench_dask.py --ingest-only /work/bench/sim-logs-1000000-7.jsonl \
        --traces 30000 --traces 100000 --cache-dir /work/bench --keep /work/bench/dask-run

Inputs: `--traces N` is N simulated traces in logs mode (one run per request, at the tier an
exploring rule chose; ~2.2 KB each), cached as CACHE/sim-logs-N-7.jsonl, the file
scripts/bench_ingest.py caches (simulated once, not timed); `--input A,B` is one input of
any trace files; `--ingest-only A,B` is one that is ingested only.
Each input is ingested and trained on by both engines, each command run as the user runs it,
in a fresh process:

    aco-lab ingest TRACES --out DS --force --on-error skip --json [--engine dask --workers N]
    aco-lab train TRACES --out MODELS --seed 1 --model lgbm --no-controls --json [--engine dask]

(`--model lgbm`: one candidate, cross-validated and refitted, six LightGBM fits; `--model
auto` fits five more candidates five times each. `--no-controls`: the run controls are learned
by the client in both engines, the same work.)
Figures per command: wall time (the local cluster's start included), CPU time of the whole
process tree (user + system, workers included), and peak resident memory sampled from /proc
every 100 ms: of the command's own process (for Dask: the client, with the scheduler and the
nannies), of its largest worker process, and of the whole tree at once; the 1-minute load
average before and after (the machine may be shared). The start-up of a local cluster alone
is measured on a 1,000-trace file. Quality: both bundles are evaluated on the same evaluation
split, counterfactual traces of other requests (every request at every tier, another seed;
`evaluate_bundle`, replay): success and cost per request against always using the top tier,
and the log loss and Brier score of the calibrated P(success) on every observed
(request, tier) cell. Ingest equality: both datasets' manifest counts and rejected lines.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from aco.bundle import load_bundle
from aco.config import ACOConfig
from aco_lab.evaluate.bundle_inputs import bundle_config, bundle_info
from aco_lab.evaluate.evaluation import build_evaluation
from aco_lab.evaluate.results import EvalOptions
from aco_lab.simulate.generate import write_simulated_traces
from aco_lab.traces.reading import read_traces

ACO_LAB = str(Path(sys.executable).with_name("aco-lab"))
TIERS = 5  # counterfactual traces per request (the evaluation split)
SEED = 7  # of the simulated logs
SAMPLE_S = 0.1


@dataclass
class Peaks:
    """Peak resident memory (bytes) of a process, of each of its descendants, and of the tree."""

    pid: int
    own: int = 0
    workers: dict[int, int] = field(default_factory=dict)
    tree: int = 0

    def sample(self) -> None:
        own = _rss(self.pid)
        total = own
        self.own = max(self.own, own)
        for child in _descendants(self.pid):
            rss = _rss(child)
            total += rss
            self.workers[child] = max(self.workers.get(child, 0), rss)
        self.tree = max(self.tree, total)


def _rss(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        return int(status.split("VmRSS:")[1].split()[0]) * 1024
    except (OSError, IndexError, ValueError):
        return 0


def _descendants(pid: int) -> list[int]:
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                children = [int(c) for c in (task / "children").read_text().split()]
                found += children
                stack += children
        except OSError:
            continue
    return found


def run_measured(args: list[str]) -> dict:
    """Run a command; its wall and CPU time, peak memory, and stdout (JSON)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peaks = Peaks(process.pid)
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peaks.sample()
            time.sleep(SAMPLE_S)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = process.communicate()
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if process.returncode:
        raise SystemExit(f"{' '.join(args)} failed:\n{err[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "own_mb": peaks.own / 2**20,
        "worker_mb": max(peaks.workers.values(), default=0) / 2**20,
        "tree_mb": peaks.tree / 2**20,
        "stdout": out,
    }


def engine_args(engine: str, workers: int, ingest: bool) -> list[str]:
    if engine == "local":
        return []
    return ["--engine", "dask"] + (["--workers", str(workers)] if ingest else [])


def quality(bundle: str, eval_runs: pl.DataFrame) -> dict:
    """The bundle replayed on the evaluation runs: vs the top tier, and calibration. (The
    baselines fitted on the bundle's training traces are left out: they are not compared.)"""
    path = Path(bundle)
    payload = load_bundle(path)
    ev = build_evaluation(
        payload,
        bundle_info(path, payload),
        bundle_config(payload),
        eval_runs,
        EvalOptions(compare_models=()),
        (),
        0,
        None,
    )
    top = next(b for b in ev.baselines if b.name == f"tier {TIERS} only")
    p, y = (np.asarray(a, dtype=np.float64) for a in ev.reliability)
    q = np.clip(p, 1e-15, 1 - 1e-15)
    return {
        "success_vs_top": ev.router.success_rate / top.success_rate,
        "cost_vs_top": ev.router.cost_per_request / top.cost_per_request,
        "log_loss": float(-np.mean(y * np.log(q) + (1 - y) * np.log1p(-q))),
        "brier": float(np.mean((p - y) ** 2)),
        "requests": ev.router.n_requests,
    }


def simulated_logs(n_traces: int, cache_dir: Path) -> Path:
    """n_traces simulated in logs mode, cached by size (scripts/bench_ingest.py's file)."""
    path = cache_dir / f"sim-logs-{n_traces}-{SEED}.jsonl"
    if not path.exists():
        start = time.perf_counter()
        write_simulated_traces(path, n_traces, SEED, config=ACOConfig(), mode="logs", workers=2)
        print(
            f"simulated {n_traces:,} traces ({path.stat().st_size / 1e6:,.0f} MB) in "
            f"{time.perf_counter() - start:.0f} s",
            flush=True,
        )
    return path


def files_arg(text: str) -> list[Path]:
    return [Path(part) for part in text.split(",")]


def count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 24), b""))


def bench_size(
    traces: list[Path],
    folder: Path,
    eval_runs: pl.DataFrame,
    workers: int,
    train: bool = True,
    model: str = "lgbm",
) -> dict:
    """Both engines on the trace files `traces` (one input of several files)."""
    n_traces = sum(count_lines(path) for path in traces)
    files = [str(path) for path in traces]
    results: dict = {
        "input": files,
        "traces": n_traces,
        "mb": sum(path.stat().st_size for path in traces) / 1e6,
    }
    for engine in ("local", "dask"):
        load = os.getloadavg()[0]
        out = folder / f"ds-{engine}-{n_traces}"
        ingest = run_measured(
            [
                ACO_LAB,
                "ingest",
                *files,
                "--out",
                str(out),
                "--force",
                "--on-error",
                "skip",
                "--json",
                *engine_args(engine, workers, True),
            ]
        )
        results[engine] = {
            "ingest": ingest,
            "load_at_start": load,
            "manifest": json.loads((out / "manifest.json").read_text())["counts"],
            "rejected": (out / "rejected.jsonl").read_bytes(),
        }
        if train:
            models = folder / f"models-{engine}-{n_traces}"
            shutil.rmtree(models, ignore_errors=True)
            trained = run_measured(
                [
                    ACO_LAB,
                    "train",
                    *files,
                    "--out",
                    str(models),
                    "--seed",
                    "1",
                    "--model",
                    model,
                    "--no-controls",
                    "--json",
                    *engine_args(engine, workers, False),
                ]
            )
            bundle = json.loads(trained["stdout"])["path"]
            results[engine] |= {"train": trained, "quality": quality(bundle, eval_runs)}
        results[engine]["load_at_end"] = os.getloadavg()[0]
        print_engine(n_traces, engine, results[engine])
    same = (
        results["local"]["manifest"] == results["dask"]["manifest"]
        and results["local"]["rejected"] == results["dask"]["rejected"]
    )
    print(
        f"{n_traces:,} traces: ingest counts and rejected lines equal: {same} "
        f"({results['local']['manifest']})",
        flush=True,
    )
    return results


def print_engine(n: int, engine: str, r: dict) -> None:
    for stage in ("ingest", "train"):
        if stage not in r:
            continue
        m = r[stage]
        print(
            f"{n:>10,} {engine:>5} {stage:>6}: wall {m['wall_s']:7.1f} s, "
            f"CPU {m['cpu_s']:7.1f} s, peak MB: command {m['own_mb']:6,.0f}, "
            f"largest worker {m['worker_mb']:6,.0f}, tree {m['tree_mb']:6,.0f}",
            flush=True,
        )
    q = r.get("quality")
    if q is None:
        return
    print(
        f"{n:>10,} {engine:>5} bundle: success {q['success_vs_top']:.4f} of top at cost "
        f"{q['cost_vs_top']:.4f}, log loss {q['log_loss']:.4f}, Brier {q['brier']:.4f} "
        f"({q['requests']:,} eval requests); load {r['load_at_start']:.1f} -> "
        f"{r['load_at_end']:.1f}",
        flush=True,
    )


def startup(folder: Path, workers: int) -> None:
    """The local cluster's start-up: the same 1,000-trace ingest on both engines."""
    small = folder / "small.jsonl"
    write_simulated_traces(small, 200, seed=1, config=ACOConfig())
    for engine in ("local", "dask"):
        m = run_measured(
            [
                ACO_LAB,
                "ingest",
                str(small),
                "--out",
                str(folder / "ds-small"),
                "--force",
                "--json",
                *engine_args(engine, workers, True),
            ]
        )
        print(
            f"start-up, 1,000 traces, {engine:>5} ingest: wall {m['wall_s']:.1f} s, "
            f"CPU {m['cpu_s']:.1f} s, tree peak {m['tree_mb']:,.0f} MB",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--traces",
        type=int,
        action="append",
        default=[],
        help="simulated logs of this many traces (repeat; default 1,000,000)",
    )
    parser.add_argument(
        "--input",
        type=files_arg,
        action="append",
        default=[],
        help="trace files to run, comma-separated: one input (repeat)",
    )
    parser.add_argument(
        "--ingest-only",
        type=files_arg,
        action="append",
        default=[],
        help="trace files to ingest only, not train on (repeat)",
    )
    parser.add_argument("--workers", type=int, default=2, help="local Dask workers")
    parser.add_argument("--model", default="lgbm", help="aco-lab train --model")
    parser.add_argument("--eval-requests", type=int, default=20_000)
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "aco-bench",
        help="simulated inputs and the evaluation split, kept and reused",
    )
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="write datasets, bundles and the JSON figures here and keep them",
    )
    args = parser.parse_args()
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="aco-bench-dask-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(
        f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, load "
        f"{os.getloadavg()[0]:.1f}; files in {folder}",
        flush=True,
    )
    inputs = [[simulated_logs(n, args.cache_dir)] for n in args.traces] + args.input
    if not inputs and not args.ingest_only:
        inputs = [[simulated_logs(1_000_000, args.cache_dir)]]
    if inputs:
        startup(folder, args.workers)
    eval_file = args.cache_dir / f"eval-counterfactual-{args.eval_requests}.jsonl"
    if not eval_file.exists():
        write_simulated_traces(eval_file, args.eval_requests, seed=12345, config=ACOConfig())
    eval_runs = read_traces([eval_file]).runs
    all_results = [
        bench_size(path, folder, eval_runs, args.workers, train=False) for path in args.ingest_only
    ]
    all_results += [
        bench_size(path, folder, eval_runs, args.workers, model=args.model) for path in inputs
    ]
    for r in all_results:
        for engine in ("local", "dask"):
            r[engine].pop("rejected")
            for stage in ("ingest", "train"):
                r[engine].get(stage, {}).pop("stdout", None)
    (folder / f"bench_dask-{os.getpid()}.json").write_text(json.dumps(all_results, indent=2))
    if not args.keep:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
