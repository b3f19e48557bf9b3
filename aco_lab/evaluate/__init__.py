"""Evaluating a router bundle: replay, estimates on logs, baselines, sweeps."""
