"""Every endpoint module, imported once so their routes are registered (order: specific paths first)."""

from pyctr.api import containers, execs, images, system  # noqa: F401
