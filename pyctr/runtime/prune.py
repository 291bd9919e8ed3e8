"""`container prune` (and the container part of `system prune`): remove stopped containers, Docker's filters.

`parse_prune_filters` and `prunable` decide (pure); `prune_containers` removes through the ordinary `rm`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyctr.errors import PyctrError

if TYPE_CHECKING:
    from pyctr.config import Config

VALID_FILTERS = ("until", "label", "label!")


def parse_prune_filters(filters: tuple[str, ...] | list[str], now: float | None = None) -> dict[str, list]:
    """`--filter until=24h`, `label=k`, `label=k=v`, `label!=k[=v]` as dockerd's prune takes them."""
    from pyctr.runtime.logs import time_bound_ns

    parsed: dict[str, list] = {}
    for item in filters:
        if "=" not in item:
            raise PyctrError(f"Invalid filter '{item}'")
        key, value = item.split("=", 1)
        if key not in VALID_FILTERS:
            raise PyctrError(f"Invalid filter '{key}'")
        if key == "until":
            try:
                parsed.setdefault(key, []).append(time_bound_ns("until", value, now) / 1e9)
            except PyctrError as e:
                raise PyctrError(f"Unable to parse filter value {value}: {e.message}") from None
            continue
        parsed.setdefault(key, []).append(value)
    return parsed


def _label_matches(labels: dict, spec: str) -> bool:
    key, sep, value = spec.partition("=")
    return key in labels and (not sep or labels[key] == value)


def prunable(status: str, created: float, labels: dict, filters: dict[str, list]) -> bool:
    """A stopped container matching every filter (pure)."""
    if status in ("running", "paused", "restarting"):
        return False
    if any(created >= until for until in filters.get("until", [])):
        return False
    if filters.get("label") and not all(_label_matches(labels, spec) for spec in filters["label"]):
        return False
    return not any(_label_matches(labels, spec) for spec in filters.get("label!", []))


def prune_containers(config: Config, filters: dict[str, list]) -> tuple[list[str], int]:
    """Remove every prunable container; (ids removed, bytes of their writable layers reclaimed)."""
    from pyctr.image.store import directory_size
    from pyctr.output.timefmt import parse_rfc3339
    from pyctr.runtime.container import remove
    from pyctr.runtime.state import ContainerStore

    removed, reclaimed = [], 0
    for record in ContainerStore(config.paths).list():
        labels = (record.config.get("Config") or {}).get("Labels") or {}
        if not prunable(record.state.status, parse_rfc3339(record.created), labels, filters):
            continue
        size = directory_size(record.directory / "rootfs" / "upper")
        try:
            remove(config, record.id)
        except PyctrError:
            continue  # started meanwhile, or removed by someone else: not ours to report
        removed.append(record.id)
        reclaimed += size
    return removed, reclaimed
