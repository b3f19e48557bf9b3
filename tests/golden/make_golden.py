"""Regenerate the golden router bundle and its expected decisions (run by hand, then commit).

    .venv/bin/python tests/golden/make_golden.py

Only when the bundle format or FEATURE_VERSION changes on purpose: the golden files exist so
that every future runtime is checked against decisions recorded by this one.
"""

import json
import shutil
import tempfile
from pathlib import Path

from aco.config import ACOConfig
from aco.router import Router
from aco_lab.simulate.generate import build_sim_request, write_simulated_traces
from aco_lab.train.router import TrainOptions, train_router

HERE = Path(__file__).resolve().parent
SEED = 11
N_REQUESTS = 120  # small: the bundle stays a few tens of KB
N_DECISIONS = 40


def main() -> None:
    """Train on a seeded simulated sample, keep the bundle, record the decisions."""
    with tempfile.TemporaryDirectory() as tmp:
        traces = Path(tmp) / "golden_sample.jsonl"
        write_simulated_traces(traces, N_REQUESTS, seed=SEED, config=ACOConfig())
        for old in HERE.glob("router_bundle_v*"):
            old.unlink()
        info, _ = train_router([traces], ACOConfig(), TrainOptions(seed=SEED), Path(tmp) / "out")
        shutil.copy(info.path, HERE / info.path.name)
        shutil.copy(info.manifest_path, HERE / info.manifest_path.name)
    router = Router.load(HERE / info.path.name)
    lines = []
    for i in range(N_DECISIONS):
        req = build_sim_request(SEED + 1, i)  # requests the bundle never trained on
        task_type = None if i % 4 == 0 else req.task_type  # every 4th: the type is predicted
        tokens = None if i % 5 == 0 else req.tokens
        d = router.decide(req.text, task_type=task_type, input_tokens=tokens)
        lines.append(
            {
                "request": req.text,
                "task_type": task_type,
                "input_tokens": tokens,
                "tier": d.tier,
                "model_id": d.model_id,
                "confidence": d.confidence,
                "cost_estimate": d.cost_estimate,
                "decided_task_type": d.task_type,
                "probabilities": list(d.probabilities),
            }
        )
    text = "".join(json.dumps(line, sort_keys=True) + "\n" for line in lines)
    (HERE / "expected_decisions.jsonl").write_text(text, encoding="utf-8")
    print(f"wrote {info.path.name} and {len(lines)} decisions")


if __name__ == "__main__":
    main()
