"""Every endpoint module, imported once so their routes are registered (order: specific paths first)."""

from pyctr.api import containers, events, execs, images, networks, stats, system, volumes  # noqa: F401
