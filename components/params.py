"""Reading params.yaml sections into plain values, with errors that name the key."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from components.errors import ParamsError


def load_params(path: str | Path) -> dict[str, Any]:
    """Return the whole params file as a mapping."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as handle:
            loaded = yaml.safe_load(handle)
    except FileNotFoundError:
        raise ParamsError("(file)", "not found", str(path)) from None
    except yaml.YAMLError as err:
        raise ParamsError("(file)", f"not valid YAML ({err})", str(path)) from None
    if not isinstance(loaded, dict):
        raise ParamsError("(file)", "expected a mapping of sections", str(path))
    return loaded


def section(params: Mapping[str, Any], name: str, path: str = "params.yaml") -> dict[str, Any]:
    """Return one stage's section of the params, which must be a mapping."""
    value = params.get(name)
    if not isinstance(value, dict):
        raise ParamsError(name, "expected a mapping for this stage's section", path)
    return value


def choice(value: Any, key: str, allowed: Sequence[str], path: str = "params.yaml") -> str:
    """Check that ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise ParamsError(key, f"expected one of {', '.join(allowed)}; found {value!r}", path)
    return str(value)


def fraction(value: Any, key: str, path: str = "params.yaml") -> float:
    """Check that ``value`` is a number in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ParamsError(key, f"expected a number from 0 to 1; found {value!r}", path)
    return float(value)


def number(value: Any, key: str, minimum: float, *, finite: bool = False) -> float:
    """Check that ``value`` is a number >= ``minimum`` (and finite, if asked)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (finite and not math.isfinite(value))
        or value < minimum
    ):
        raise ParamsError(key, f"expected a number >= {minimum}; found {value!r}")
    return float(value)


def whole(value: Any, key: str, minimum: int) -> int:
    """Check that ``value`` is a whole number >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ParamsError(key, f"expected a whole number >= {minimum}; found {value!r}")
    return value


def flag(value: Any, key: str) -> bool:
    """Check that ``value`` is true or false."""
    if not isinstance(value, bool):
        raise ParamsError(key, f"expected true or false; found {value!r}")
    return value


def names(value: Any, key: str, path: str = "params.yaml") -> tuple[str, ...] | None:
    """A list of column names, or None for ``auto``."""
    if value is None or value == "auto":
        return None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise ParamsError(
        key, f"expected 'auto', a column name or a list of them; found {value!r}", path
    )
