"""Numbers in query parameters: a clear 400 (InvalidParameterValue) naming the parameter when one is not."""

from __future__ import annotations

from typing import TypeVar

from aiohttp import web

from hpgc.errors import InvalidParameterValue

N = TypeVar("N", int, float)


def number_param(request: web.Request, name: str, kind: type[N], default: N | None, lo: N, hi: N | None = None,
                 unit: str = "") -> N | None:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = kind(raw)
    except ValueError:
        what = "an integer" if kind is int else f"a number{unit}"
        raise InvalidParameterValue(f"parameter '{name}' must be {what}, got '{raw}'") from None
    if value < lo or (hi is not None and value > hi):
        bounds = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise InvalidParameterValue(f"parameter '{name}' must be {bounds}, got {value}")
    return value


def int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    value = number_param(request, name, int, default, lo, hi)
    assert value is not None  # the default is an int
    return value
