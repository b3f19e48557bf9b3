"""examples/config.real_models.yaml: the default config as a file, priced from the snapshot."""

from pathlib import Path

import pytest

from aco.config import ACOConfig, load_config
from aco.prices import load_price_snapshot

REAL_MODELS = Path(__file__).resolve().parents[2] / "examples" / "config.real_models.yaml"


def test_the_real_models_config_is_the_default_config() -> None:
    assert load_config(REAL_MODELS).replace(source_path=None) == ACOConfig()


def test_its_prices_are_the_snapshot_prices_per_1k_tokens() -> None:
    snapshot = load_price_snapshot()
    config = load_config(REAL_MODELS)
    for spec in config.tiers:
        price = snapshot.find(spec.model_id)
        assert price is not None, f"{spec.model_id} is not in the price snapshot"
        assert price.provider == spec.provider
        assert spec.cost_per_1k_input == pytest.approx(price.input * 1000, rel=1e-9)
        assert spec.cost_per_1k_output == pytest.approx(price.output * 1000, rel=1e-9)


def test_its_source_and_date_are_the_snapshots() -> None:
    snapshot = load_price_snapshot()
    text = REAL_MODELS.read_text(encoding="utf-8")
    assert snapshot.date in text
    assert snapshot.source.split(",")[0] in text  # "litellm 1.110.2"


def test_tiers_get_dearer_with_strength() -> None:
    prices = [spec.cost(1000, 1000) for spec in load_config(REAL_MODELS).tiers]
    assert prices == sorted(prices) and len(set(prices)) == len(prices)
