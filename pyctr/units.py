"""Docker's human-readable units (go-units): durations and sizes as `ps`, `images` and `stats` print them.

One home for them so every table agrees: `Up 3 minutes`, `1.23MB`, `1.5MiB`.
"""

from __future__ import annotations

_DECIMAL = ("B", "kB", "MB", "GB", "TB", "PB")
_BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


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
