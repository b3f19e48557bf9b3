"""`import aco` and every runtime module an agent uses must stay free of heavy libraries."""

import pkgutil
import subprocess
import sys

import pytest

import aco

HEAVY = ("polars", "pyarrow", "sklearn", "lightgbm", "matplotlib", "pandas", "dask", "distributed")
RUNTIME_MODULES = ["aco"] + [f"aco.{info.name}" for info in pkgutil.iter_modules(aco.__path__)]


@pytest.mark.parametrize("module", RUNTIME_MODULES)
def test_runtime_import_loads_no_heavy_library(module: str) -> None:
    code = f"import sys, {module}; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import {module} loaded {out.stdout.strip()}"


INTEGRATION_LIBRARIES = (
    "langchain_core",
    "litellm",
    "openai",
    "httpx",
    "opentelemetry",
    "langfuse",
    "langsmith",
)


@pytest.mark.parametrize(
    "module",
    [
        "aco",
        "aco.optimizer",
        "aco.integrations",
        "aco.integrations.calls",
        "aco.integrations.openai",
    ],
)
def test_integration_libraries_load_only_when_used(module: str) -> None:
    # aco.integrations.openai imports the SDK when a client is wrapped, not before.
    code = (
        f"import sys, {module}; "
        f"print(' '.join(m for m in {INTEGRATION_LIBRARIES!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import {module} loaded {out.stdout.strip()}"
