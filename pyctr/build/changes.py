"""`commit -c` / `import -c`: Dockerfile instructions applied to an image config, as dockerd's
BuildFromConfig does for the commands it allows there.

Pure: parsed and applied by the builder's own parser and instruction functions, so `-c 'ENV A=1'` means
exactly what `ENV A=1` means in a Dockerfile.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from pyctr.errors import BuildError, UsageError

# builder/dockerfile/builder.go validCommitCommands (Docker 20.10)
VALID_CHANGE_COMMANDS = ("cmd", "entrypoint", "healthcheck", "env", "expose", "label", "onbuild", "user", "volume",
                         "workdir")


def apply_changes(config: dict[str, Any], changes: list[str]) -> dict[str, Any]:
    """The image config's `config` section with each change applied in order; one-line errors as dockerd's."""
    from pyctr.build.instructions import BuildState, apply_instruction
    from pyctr.build.parser import parse_trigger

    state = BuildState(config=MappingProxyType(dict(config)))
    for change in changes:
        keyword = change.strip().split(None, 1)[0].lower() if change.strip() else ""
        if keyword not in VALID_CHANGE_COMMANDS:
            raise UsageError(f"{keyword} is not a valid change command")
        try:
            state, _ = apply_instruction(state, parse_trigger(change.strip()))
        except BuildError as e:
            raise UsageError(e.message.split(": ", 1)[-1] if e.message.startswith("Dockerfile:") else e.message) \
                from None
    return dict(state.config)
