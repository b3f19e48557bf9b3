"""The optional C module ``aco._native`` (aco/_native.c), or None.

It holds the per-request hot loops (a request's window features, LightGBM trees swept over
the tiers) and computes the same numbers as the numpy code beside each caller; tests keep
the two paths equal. None when it was not built (no C compiler at install time) or when
``ACO_PURE_PYTHON=1`` asks for the numpy path.
"""

from __future__ import annotations

import os
from types import ModuleType

native: ModuleType | None
try:
    from aco import _native as native
except ImportError:  # pragma: no cover - every install with a C compiler builds it
    native = None
if os.environ.get("ACO_PURE_PYTHON"):
    native = None
