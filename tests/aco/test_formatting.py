"""aco.formatting: the one way shares, money and counts are written for people."""

import pytest

from aco.formatting import format_count, format_money, format_share


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0.6582762786951268, "65.8%"),  # what `aco-lab report` used to print raw
        (0.0, "0.0%"),
        (1.0, "100.0%"),
        (0.00049, "0.0%"),
        (0.0005, "0.1%"),
        (0.12345, "12.3%"),
        (0.9999, "100.0%"),
        (1.5, "150.0%"),  # a ratio above the top tier's, e.g. success vs top
        (-0.25, "-25.0%"),
    ],
)
def test_share_is_a_percentage_with_one_decimal(value: float, shown: str) -> None:
    assert format_share(value) == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (8.023e-05, "$0.0000802"),  # was `$8.023e-05`: never an exponent
        (1e-09, "$0.000000001"),
        (0.0, "$0"),
        (0.5, "$0.5"),
        (0.25, "$0.25"),
        (0.123456, "$0.123"),
        (0.0123456, "$0.0123"),
        (0.999, "$0.999"),
        (0.9996, "$1.00"),  # rounds up to a dollar: written as dollars
        (1.0, "$1.00"),
        (1.5, "$1.50"),
        (7931.157, "$7,931.16"),
        (1234567.891, "$1,234,567.89"),
        (-0.0123, "-$0.0123"),
        (-2.5, "-$2.50"),
    ],
)
def test_money_is_dollars_in_cents_or_three_significant_digits(value: float, shown: str) -> None:
    assert format_money(value) == shown


@pytest.mark.parametrize("value", [10.0**-k for k in range(1, 13)] + [3.3e-7, 9.99e-5])
def test_money_never_writes_an_exponent(value: float) -> None:
    assert "e" not in format_money(value)
    assert float(format_money(value)[1:]) == pytest.approx(value, rel=5e-3)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0, "0"),
        (999, "999"),
        (1000, "1,000"),
        (200000, "200,000"),
        (1234567, "1,234,567"),
    ],
)
def test_count_has_thousands_separators(value: int, shown: str) -> None:
    assert format_count(value) == shown
