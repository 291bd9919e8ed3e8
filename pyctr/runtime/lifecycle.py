"""What the lifecycle flags of run/create add to a container's stored config (restart policy, healthcheck).

Pure: `validate_options` refuses bad values before anything is pulled or created (docker-cli's and dockerd's
words), `apply_to_document` writes them where Docker's inspect shows them (HostConfig.RestartPolicy,
Config.Healthcheck merged with the image's HEALTHCHECK).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyctr.runtime.spec import RunOptions


def validate_options(options: RunOptions) -> None:
    """Refuse what Docker refuses, in its order: the CLI's parse first, then the daemon's checks."""
    from pyctr.runtime import restart

    policy = restart.parse_restart_policy(options.restart)
    user_check(options)
    restart.check_auto_remove(policy, options.rm)


def user_check(options: RunOptions) -> dict | None:
    from pyctr.runtime.health import healthcheck_from_flags

    return healthcheck_from_flags(options.health_cmd, options.health_interval, options.health_timeout,
                                  options.health_start_period, options.health_retries, options.no_healthcheck)


def apply_to_document(document: dict, options: RunOptions, image_config: dict) -> dict:
    """Add the restart policy and the healthcheck to config.json's HostConfig and Config."""
    from pyctr.runtime.health import merge_healthcheck
    from pyctr.runtime.restart import parse_restart_policy

    document["HostConfig"]["RestartPolicy"] = parse_restart_policy(options.restart).to_dict()
    check = merge_healthcheck(image_config.get("Healthcheck"), user_check(options))
    if check:
        document["Config"]["Healthcheck"] = check
    return document
