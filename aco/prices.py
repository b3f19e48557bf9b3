"""Model prices from a dated, checksummed snapshot: the cost of a call whose cost is missing.

The snapshot (aco/model_prices.json) is a subset of a public model price map, copied from the
package that ships it (scripts/build_price_snapshot.py) and never fetched at run time. Its
sha256 is pinned below and checked when it is loaded, so a changed file is refused.

Where a cost came from is written into the trace's metadata, since trace format v1 has no
per-call field for it: ``metadata.cost_sources`` maps each model call's cost field
(``"steps[2].model_call.cost"``) to one of COST_SOURCES, and ``metadata.price_snapshot``
names the snapshot (date, sha256) when any cost was priced from it. docs/integrations.md.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aco.errors import DataError

SNAPSHOT_PATH = Path(__file__).with_name("model_prices.json")
# The snapshot file's sha256, written by scripts/build_price_snapshot.py with the file.
SNAPSHOT_SHA256 = "fbd9299c8b62bb46d02fc144d4fed62cffd4f7a2f349518c5fd4ebdf9f7b920b"

# Where a call's cost came from (metadata.cost_sources values).
COST_REPORTED = "reported"  # given by the caller, the model provider or the imported export
COST_SNAPSHOT = "price_snapshot"  # tokens x this snapshot's list prices
COST_TIER_TABLE = "tier_table"  # tokens x the config's tier prices (model not in the snapshot)
COST_UNPRICED = "unpriced"  # no cost, and no tokens or no price to compute one: recorded as 0
COST_SOURCES = (COST_REPORTED, COST_SNAPSHOT, COST_TIER_TABLE, COST_UNPRICED)
COST_SOURCES_KEY = "cost_sources"  # metadata: {"steps[i].model_call.cost": source}
PRICE_SNAPSHOT_KEY = "price_snapshot"  # metadata: {"date", "sha256"} of the snapshot used


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """List prices of one model, USD per token."""

    model_id: str
    provider: str
    input: float
    output: float
    cached_input: float | None = None  # prompt-cache reads; None: billed as input

    def cost(self, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0) -> float:
        """USD for one call (the cached tokens are part of the input tokens)."""
        cached = min(cached_input_tokens, input_tokens)
        cached_rate = self.input if self.cached_input is None else self.cached_input
        return (
            (input_tokens - cached) * self.input
            + cached * cached_rate
            + output_tokens * self.output
        )


@dataclass(frozen=True, slots=True)
class PriceSnapshot:
    """A dated price map: model id -> ModelPrice."""

    date: str  # YYYY-MM-DD the prices were copied
    source: str  # where they were copied from
    sha256: str  # of the snapshot file
    models: Mapping[str, ModelPrice]

    def find(self, model_id: str, provider: str | None = None) -> ModelPrice | None:
        """The price of a model id as providers and SDKs spell it (case, provider prefix)."""
        bare = model_id.rsplit("/", 1)[-1]
        candidates = (
            model_id,
            model_id.lower(),
            f"{provider}/{model_id}" if provider else "",
            bare,
            bare.lower(),
        )
        for name in candidates:
            price = self.models.get(name)
            if price is not None:
                return price
        return None

    def stamp(self) -> dict[str, str]:
        """What a trace records about the snapshot it was priced from."""
        return {"date": self.date, "sha256": self.sha256}


@dataclass(frozen=True, slots=True)
class PricedCost:
    """A call's cost and where it came from (one of COST_SOURCES)."""

    cost: float
    source: str


@functools.cache
def load_price_snapshot(path: Path = SNAPSHOT_PATH, sha256: str | None = None) -> PriceSnapshot:
    """Read and checksum-check a snapshot (by default the one shipped with aco)."""
    expected = SNAPSHOT_SHA256 if sha256 is None else sha256
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise DataError(
            f"{path}: cannot read the price snapshot ({exc.strerror}); reinstall aco"
        ) from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected:
        raise DataError(
            f"{path}: sha256 {digest[:12]}... is not the pinned {expected[:12]}...; "
            f"the price snapshot was changed: reinstall aco, or rebuild it with "
            f"scripts/build_price_snapshot.py"
        )
    doc = json.loads(data)
    models = {
        name: ModelPrice(
            name, entry["provider"], entry["input"], entry["output"], entry.get("cached_input")
        )
        for name, entry in doc["models"].items()
    }
    return PriceSnapshot(doc["date"], doc["source"], digest, models)


def price_call(
    model_id: str,
    input_tokens: int | None,
    output_tokens: int | None,
    cached_input_tokens: int | None = None,
    *,
    provider: str | None = None,
    tier_prices: Any = None,
) -> PricedCost:
    """The cost of a call from its tokens: the snapshot's price, else `tier_prices` (a TierSpec).

    Without any token count, or without a price for the model, the cost is 0 and "unpriced".
    """
    if input_tokens is None and output_tokens is None:
        return PricedCost(0.0, COST_UNPRICED)
    tokens_in, tokens_out = input_tokens or 0, output_tokens or 0
    price = load_price_snapshot().find(model_id, provider)
    if price is not None:
        return PricedCost(
            price.cost(tokens_in, tokens_out, cached_input_tokens or 0), COST_SNAPSHOT
        )
    if tier_prices is not None:
        return PricedCost(tier_prices.cost(tokens_in, tokens_out), COST_TIER_TABLE)
    return PricedCost(0.0, COST_UNPRICED)


def cost_path(step_index: int) -> str:
    """The metadata.cost_sources key of a step's model call (0-based, as in messages)."""
    return f"steps[{step_index}].model_call.cost"


def cost_metadata(sources: Mapping[str, str]) -> dict[str, Any]:
    """The metadata entries recording where a trace's call costs came from."""
    out: dict[str, Any] = {COST_SOURCES_KEY: dict(sources)}
    if COST_SNAPSHOT in sources.values():
        out[PRICE_SNAPSHOT_KEY] = load_price_snapshot().stamp()
    return out
