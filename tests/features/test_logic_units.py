"""Unit conversion table of logic mode."""

from __future__ import annotations

import pytest

from cove.errors import InvalidRequest
from cove.features.logic.units import convert


@pytest.mark.parametrize(("value", "a", "b", "out"), [
    (3, "km", "m", "3000"), (1, "mile", "km", "1.609344"), (90, "minutes", "hours", "1.5"),
    (100, "C", "F", "212"), (32, "fahrenheit", "celsius", "0"), (0, "K", "C", "-273.15"),
    (2, "lbs", "kg", "0.90718474"), (1, "gallon", "l", "3.785411784"), (36, "km/h", "m/s", "10"),
    ("1,000", "g", "kg", "1"), (1, "acre", "m2", "4046.8564224"), (1, "ft", "in", "12"),
])
def test_convert(value: object, a: str, b: str, out: str) -> None:
    assert convert(value, a, b) == out  # type: ignore[arg-type]


@pytest.mark.parametrize(("value", "a", "b", "param"), [
    (1, "parsec", "m", "unit"), (1, "kg", "m", "unit"), (1, "C", "m", "unit"),
    ("ten", "m", "km", "value"),
])
def test_convert_refuses(value: object, a: str, b: str, param: str) -> None:
    with pytest.raises(InvalidRequest) as e:
        convert(value, a, b)  # type: ignore[arg-type]
    assert e.value.param == param
