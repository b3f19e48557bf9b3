"""Rebuild aco/model_prices.json from the price map an installed litellm ships, and pin its sha256.

The runtime never fetches prices: it reads this dated snapshot and checks its checksum
(aco/prices.py). To refresh it, upgrade litellm in the environment, then

    python scripts/build_price_snapshot.py [--date YYYY-MM-DD]

which rewrites aco/model_prices.json and the SNAPSHOT_SHA256 line of aco/prices.py; commit both.
Only chat models of the providers below are kept, with the four prices ACO reads.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib.metadata
import json
import re
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT = ROOT / "aco" / "model_prices.json"
PRICES_MODULE = ROOT / "aco" / "prices.py"
SOURCE_FILE = "model_prices_and_context_window_backup.json"
PROVIDERS = (
    "openai", "azure", "anthropic", "gemini", "vertex_ai-language-models",
    "vertex_ai-anthropic_models", "bedrock_converse", "mistral", "xai", "deepseek", "groq",
    "together_ai", "cohere_chat", "perplexity",
)  # fmt: skip
# Source key -> snapshot key (USD per token).
FIELDS = {
    "input_cost_per_token": "input",
    "output_cost_per_token": "output",
    "cache_read_input_token_cost": "cached_input",
}


def build_snapshot(source: dict, date: str, version: str) -> dict:
    """The snapshot document: header plus {model: {provider, input, output[, cached_input]}}."""
    models = {}
    for name, entry in sorted(source.items()):
        if entry.get("mode") != "chat" or entry.get("litellm_provider") not in PROVIDERS:
            continue
        prices = {
            FIELDS[k]: v
            for k, v in entry.items()
            if k in FIELDS and isinstance(v, int | float) and not isinstance(v, bool)
        }
        if "input" in prices and "output" in prices:
            models[name] = {"provider": entry["litellm_provider"], **prices}
    return {
        "date": date,
        "source": f"litellm {version}, {SOURCE_FILE} (MIT license)",
        "unit": "USD per token",
        "models": models,
    }


def main() -> None:
    """Write the snapshot and pin its checksum in aco/prices.py."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--date",
        default=datetime.date.today().isoformat(),
        help="the snapshot's date (default: today)",
    )
    args = parser.parse_args()
    source = json.loads(resources.files("litellm").joinpath(SOURCE_FILE).read_text("utf-8"))
    snapshot = build_snapshot(source, args.date, importlib.metadata.version("litellm"))
    data = (json.dumps(snapshot, indent=1, sort_keys=True) + "\n").encode("utf-8")
    SNAPSHOT.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    code = PRICES_MODULE.read_text("utf-8")
    code = re.sub(
        r'^SNAPSHOT_SHA256 = "[0-9a-f]*"',
        f'SNAPSHOT_SHA256 = "{digest}"',
        code,
        count=1,
        flags=re.MULTILINE,
    )
    PRICES_MODULE.write_text(code, "utf-8")
    print(f"{SNAPSHOT}: {len(snapshot['models'])} models, {len(data):,} bytes, sha256 {digest}")


if __name__ == "__main__":
    main()
