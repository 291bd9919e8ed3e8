"""Docker's human-readable units (go-units): durations and sizes as `ps`, `images` and `stats` print them.

One home for them so every table agrees: `Up 3 minutes`, `1.23MB`, `1.5MiB`.
"""

from __future__ import annotations

import math
import re

_DECIMAL = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def human_duration(seconds: float) -> str:
    """go-units HumanDuration, which Docker uses for CREATED and STATUS."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def _scaled(value: float, base: int, units: tuple[str, ...]) -> tuple[float, str]:
    i = 0
    while value >= base and i < len(units) - 1:
        value /= base
        i += 1
    return value, units[i]


def human_size(size: float, precision: int = 3) -> str:
    """go-units HumanSizeWithPrecision (decimal units): "1.23MB"."""
    value, unit = _scaled(float(size), 1000, _DECIMAL)
    return f"{value:.{precision}g}{unit}"


def bytes_size(size: float) -> str:
    """go-units BytesSize (binary units): "1.5MiB"."""
    value, unit = _scaled(float(size), 1024, _BINARY)
    return f"{value:.4g}{unit}"


_GO_FLOAT = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_DECIMAL_MULTIPLIER = {"k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4, "p": 1000**5}
_BINARY_MULTIPLIER = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def ram_in_bytes(text: str) -> int:
    """go-units RAMInBytes (`-m 512m`, `--shm-size 1g`): binary multiples; ValueError as Docker words it."""
    return _parse_size(text, _BINARY_MULTIPLIER)


def from_human_size(text: str) -> int:
    """go-units FromHumanSize: the same syntax with decimal multiples (`1kB` is 1000)."""
    return _parse_size(text, _DECIMAL_MULTIPLIER)


def _parse_size(text: str, multipliers: dict[str, int]) -> int:
    """go-units parseSize: a number, at most one space, then an optional b/k/kb/kib-style suffix.

    Leading or trailing blanks are refused (`-m " 32 "`), as Docker refuses them.
    """
    number, space, suffix = text.partition(" ")
    if not space:
        cut = max(text.rfind(c) for c in "0123456789.")
        if cut == -1:
            raise ValueError(f"invalid size: '{text}'")
        number, suffix = text[: cut + 1], text[cut + 1:]
    if not _GO_FLOAT.match(number):
        raise ValueError(f'strconv.ParseFloat: parsing "{number}": invalid syntax')
    size = float(number)
    if math.isinf(size):
        raise ValueError(f'strconv.ParseFloat: parsing "{number}": value out of range')
    if size < 0:
        raise ValueError(f"invalid size: '{text}'")
    if not suffix:
        return go_int64(size)
    lower = suffix.lower()
    if len(lower) > 3 or (lower[0] == "b" and len(lower) > 1):
        raise ValueError(f"invalid suffix: '{lower if len(lower) <= 3 else suffix}'")
    if lower[0] == "b":
        return go_int64(size)
    if lower[0] not in multipliers or (len(lower) == 2 and lower[1] != "b") or (len(lower) == 3 and lower[1:] != "ib"):
        raise ValueError(f"invalid suffix: '{lower}'")
    return go_int64(size * multipliers[lower[0]])


INT64_MIN = -(1 << 63)


def go_int64(value: float) -> int:
    """Go's int64(float64) on amd64 (CVTTSD2SQ): a value int64 cannot hold becomes math.MinInt64.

    go-units converts so without a check, which is how Docker ends up with a negative size for `1e30` or
    `99999999999999999999` (dockerd then refuses it, e.g. "SHM size can not be less than 0"); pyctr keeps that
    value so that the same checks refuse it, rather than asking the kernel for an absurd tmpfs or limit."""
    if not math.isfinite(value) or not INT64_MIN <= value < -INT64_MIN:
        return INT64_MIN
    return int(value)
