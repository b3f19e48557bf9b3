"""The five run controls, learned from traces and evaluated against their rule versions.

- cascade: which cheap models to call and when to accept or escalate (`cascade`);
- doom: stop a run whose chance of success has fallen too low (`doom`);
- tool gate: allow or deny a tool by its value for the task type (`tool_gate`);
- verifier budget: verify a DONE when a false DONE costs more than the check (`verifier_budget`);
- context budget: tokens per task type and tier, what to keep and what to drop (`context_budget`).

Each module learns a plain-data spec (stored as `bundle["controls"][name]`, applied at run time
by `aco.cascade` / `aco.learned_controls`) and evaluates it on held-out traces.
"""
