"""score_router: the lab's batch scoring decides a missing task type as the runtime does."""

import numpy as np

from aco.bundle import load_bundle
from aco.config import ACOConfig
from aco.router import Router
from aco_lab.evaluate.router_scores import score_router
from aco_lab.simulate.generate import build_sim_request
from tests.aco_lab.eval_case import eval_case  # noqa: F401 (fixture)

HAND_WRITTEN = [
    "Fix the auth bug in production",
    "zqx vbnm wert plokij",
    "Check our privacy policy for GDPR issues",
]


def test_missing_task_types_are_inferred_as_the_runtime_infers_them(eval_case) -> None:  # noqa: F811
    router = Router.load(eval_case.bundle)
    payload = load_bundle(eval_case.bundle)
    requests = [build_sim_request(21, i).text for i in range(150)] + HAND_WRITTEN
    n = len(requests)
    scores = score_router(
        payload, ACOConfig(), requests, [None] * n, np.full(n, np.nan), np.full(n, np.nan)
    )
    decisions = [router.decide(r) for r in requests]
    assert list(scores.task_types) == [d.task_type for d in decisions]
    assert np.allclose(scores.p, [d.probabilities for d in decisions])
    novel = ["unlike the training requests" in d.reason for d in decisions]
    assert all(novel[-len(HAND_WRITTEN) :]) and not all(novel)  # both paths are compared
    assert None in scores.task_types  # and the "no cue" outcome
