"""Unit conversion for logic mode: a small built-in table (no dependency, no data files).

Linear units are stored as a factor to the SI base of their dimension (metre, kilogram,
second, cubic metre, metre per second, square metre); temperatures (C, F, K) are affine and
handled apart. Factors are exact (:class:`fractions.Fraction`), from the SI brochure and the
international yard and pound agreement (1959): 1 in = 0.0254 m, 1 lb = 0.45359237 kg,
1 US gal = 231 in^3.
"""

from __future__ import annotations

from fractions import Fraction as F

from cove.errors import InvalidRequest

_IN = F("0.0254")
_FT = 12 * _IN
_MI = 5280 * _FT
_GAL = 231 * _IN**3
_LB = F("0.45359237")

# unit -> (dimension, factor to the SI base unit)
UNITS: dict[str, tuple[str, F]] = {
    "mm": ("length", F(1, 1000)), "cm": ("length", F(1, 100)), "m": ("length", F(1)),
    "km": ("length", F(1000)), "in": ("length", _IN), "ft": ("length", _FT),
    "yd": ("length", 3 * _FT), "mi": ("length", _MI),
    "mg": ("mass", F(1, 10**6)), "g": ("mass", F(1, 1000)), "kg": ("mass", F(1)),
    "t": ("mass", F(1000)), "oz": ("mass", _LB / 16), "lb": ("mass", _LB),
    "s": ("time", F(1)), "min": ("time", F(60)), "h": ("time", F(3600)),
    "day": ("time", F(86400)), "week": ("time", F(7 * 86400)),
    "ml": ("volume", F(1, 10**6)), "l": ("volume", F(1, 1000)), "m3": ("volume", F(1)),
    "gal": ("volume", _GAL), "qt": ("volume", _GAL / 4), "cup": ("volume", _GAL / 16),
    "m/s": ("speed", F(1)), "km/h": ("speed", F(1000, 3600)), "mph": ("speed", _MI / 3600),
    "ft/s": ("speed", _FT),
    "m2": ("area", F(1)), "cm2": ("area", F(1, 10**4)), "km2": ("area", F(10**6)),
    "ha": ("area", F(10**4)), "acre": ("area", 43560 * _FT**2), "ft2": ("area", _FT**2),
}
ALIASES = {
    "millimeter": "mm", "centimeter": "cm", "meter": "m", "metre": "m", "kilometer": "km",
    "kilometre": "km", "inch": "in", "inches": "in", "foot": "ft", "feet": "ft", "yard": "yd",
    "mile": "mi", "milligram": "mg", "gram": "g", "kilogram": "kg", "tonne": "t",
    "ounce": "oz", "pound": "lb", "lbs": "lb", "second": "s", "sec": "s", "minute": "min",
    "hour": "h", "hr": "h", "days": "day", "liter": "l", "litre": "l", "milliliter": "ml",
    "gallon": "gal", "quart": "qt", "cups": "cup", "kph": "km/h", "kmh": "km/h",
    "miles per hour": "mph", "celsius": "c", "fahrenheit": "f", "kelvin": "k",
    "°c": "c", "°f": "f", "acres": "acre", "hectare": "ha", "m^2": "m2", "m^3": "m3",
}
TEMPERATURE = {"c", "f", "k"}


def unit_name(unit: str) -> str:
    """The canonical name of ``unit`` (case-insensitive; plurals and aliases accepted).

    Raises:
        InvalidRequest: an unknown unit (``param`` names it).
    """
    u = " ".join(unit.strip().lower().split())
    for cand in (u, u[:-1] if u.endswith("s") else u, u[:-2] if u.endswith("es") else u):
        cand = ALIASES.get(cand, cand)
        if cand in UNITS or cand in TEMPERATURE:
            return cand
    raise InvalidRequest(f"unknown unit {unit!r}; known: {', '.join(sorted(UNITS))}, C, F, K",
                         param="unit")


def _to_kelvin(v: F, u: str) -> F:
    return v + F("273.15") if u == "c" else (v - 32) * F(5, 9) + F("273.15") if u == "f" else v


def _from_kelvin(v: F, u: str) -> F:
    return v - F("273.15") if u == "c" else (v - F("273.15")) * F(9, 5) + 32 if u == "f" else v


def convert(value: str | float, from_unit: str, to_unit: str) -> str:
    """``value`` in ``from_unit`` expressed in ``to_unit``, exactly where possible:
    ``convert(3, "km", "m")`` -> ``"3000"``; ``convert(1, "mi", "km")`` -> ``"1.609344"``.
    The result is a decimal text (at most 10 decimals, trailing zeros dropped).

    Raises:
        InvalidRequest: unknown units, units of different dimensions, or a value that is not
            a number.
    """
    try:
        v = F(str(value).replace(",", "").strip())
    except (ValueError, ZeroDivisionError) as e:
        raise InvalidRequest(f"not a number: {value!r}", param="value") from e
    a, b = unit_name(from_unit), unit_name(to_unit)
    if a in TEMPERATURE or b in TEMPERATURE:
        if not (a in TEMPERATURE and b in TEMPERATURE):
            raise InvalidRequest(f"cannot convert {from_unit} to {to_unit}", param="unit")
        out = _from_kelvin(_to_kelvin(v, a), b)
    else:
        (da, fa), (db, fb) = UNITS[a], UNITS[b]
        if da != db:
            raise InvalidRequest(f"cannot convert {from_unit} ({da}) to {to_unit} ({db})",
                                 param="unit")
        out = v * fa / fb
    return decimal_text(out)


def decimal_text(x: F) -> str:
    """``x`` as a decimal text rounded to 10 places, without trailing zeros (``"2.5"``)."""
    scaled = round(x * 10**10)
    sign, whole, frac = "-" if scaled < 0 else "", *divmod(abs(scaled), 10**10)
    text = f"{sign}{whole}.{frac:010d}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text
