"""Click command definitions: parse flags, call the packages, print results.

Kept apart from pyctr/cli.py so each command module loads only when its
command runs. Nothing in image/, build/ or runtime/ imports from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import click

from pyctr.config import Config, load_config


@dataclass
class AppContext:
    """Global options, with the configuration loaded on first use."""

    root: str | None = None
    config_file: str | None = None
    debug: bool = False
    _overrides: dict = field(default_factory=dict)

    @cached_property
    def config(self) -> Config:
        return load_config(self.root, self.config_file, self.debug)


pass_app = click.make_pass_decorator(AppContext, ensure=True)
