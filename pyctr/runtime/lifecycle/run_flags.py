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
    validate_run_flags(options)


def user_check(options: RunOptions) -> dict | None:
    from pyctr.runtime.health import healthcheck_from_flags

    check = healthcheck_from_flags(options.health_cmd, options.health_interval, options.health_timeout,
                                   options.health_start_period, options.health_retries, options.no_healthcheck)
    if options.health_test:  # the API's exec form: the flags' durations, this test
        durations = {"Interval": 0, "Timeout": 0, "StartPeriod": 0, "Retries": 0}
        return {**(check or durations), "Test": list(options.health_test)}
    return check


def apply_to_document(document: dict, options: RunOptions, image_config: dict) -> dict:
    """Add the restart policy and the healthcheck to config.json's HostConfig and Config."""
    from pyctr.runtime.health import merge_healthcheck
    from pyctr.runtime.restart import parse_restart_policy

    document["HostConfig"]["RestartPolicy"] = parse_restart_policy(options.restart).to_dict()
    check = merge_healthcheck(image_config.get("Healthcheck"), user_check(options))
    if check:
        document["Config"]["Healthcheck"] = check
    return apply_run_flags(document, options)


# ------------------------------------------------------------------------------------------ extra run flags

ULIMIT_NAMES = {  # go-units ulimitNameMapping -> the resource's name for setrlimit
    "core": "RLIMIT_CORE", "cpu": "RLIMIT_CPU", "data": "RLIMIT_DATA", "fsize": "RLIMIT_FSIZE",
    "locks": "RLIMIT_LOCKS", "memlock": "RLIMIT_MEMLOCK", "msgqueue": "RLIMIT_MSGQUEUE", "nice": "RLIMIT_NICE",
    "nofile": "RLIMIT_NOFILE", "nproc": "RLIMIT_NPROC", "rss": "RLIMIT_RSS", "rtprio": "RLIMIT_RTPRIO",
    "rttime": "RLIMIT_RTTIME", "sigpending": "RLIMIT_SIGPENDING", "stack": "RLIMIT_STACK",
}
PULL_POLICIES = ("always", "missing", "never")


def parse_ulimit(text: str) -> dict:
    """go-units ParseUlimit: `nofile=1024[:2048]` -> {"Name", "Hard", "Soft"}; pflag's words around its errors."""
    from pyctr.errors import UsageError

    def bad(reason: str) -> UsageError:
        return UsageError(f'invalid argument "{text}" for "--ulimit" flag: {reason}')

    name, sep, values = text.partition("=")
    if not sep:
        raise bad(f"invalid ulimit argument: {text}")
    if name not in ULIMIT_NAMES:
        raise bad(f"invalid ulimit type: {name}")
    parts = values.split(":")
    if len(parts) > 2:
        raise bad(f"too many limit value arguments - {values}, can only have up to two, `soft[:hard]`")
    try:
        soft = int(parts[0], 10)
        hard = int(parts[1], 10) if len(parts) == 2 else soft
    except ValueError:
        raise bad(f'strconv.ParseInt: parsing "{values}": invalid syntax') from None
    if soft > hard:
        raise bad(f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")
    return {"Name": name, "Hard": hard, "Soft": soft}


def parse_expose(items: list[str]) -> dict:
    """`--expose 80`, `--expose 7000-7002/udp` -> Config.ExposedPorts keys (nat.ParsePortRange's words)."""
    from pyctr.errors import UsageError

    exposed: dict = {}
    for item in items:
        ports, _, proto = item.partition("/")
        proto = proto or "tcp"
        first, _, last = ports.partition("-")
        try:
            start, end = int(first), int(last or first)
        except ValueError:
            raise UsageError(f"invalid range format for --expose: {item}, error: invalid syntax") from None
        if not (0 < start <= end <= 65535):
            raise UsageError(f"invalid range format for --expose: {item}")
        for port in range(start, end + 1):
            exposed[f"{port}/{proto}"] = {}
    return exposed


def validate_run_flags(options: RunOptions) -> None:
    """The extra run/create flags, refused as Docker refuses them, before any pull."""
    from pyctr.errors import PyctrError, UsageError

    if options.gpus is not None:  # dockerd without a GPU device driver (nvidia-container-toolkit)
        raise PyctrError('could not select device driver "" with capabilities: [[gpu]]')
    if options.pull not in PULL_POLICIES:
        raise UsageError(f"invalid pull option: '{options.pull}': must be one of \"always\", \"missing\" or "
                         "\"never\"")
    if not -1000 <= options.oom_score_adj <= 1000:
        raise PyctrError(f"Invalid value {options.oom_score_adj}, range for oom score adj is [-1000, 1000]")
    for item in options.ulimits:
        parse_ulimit(item)
    parse_expose(options.expose)
    if options.cidfile and _exists(options.cidfile):
        raise PyctrError(f"Container ID file found, make sure the other container isn't running or delete "
                         f"{options.cidfile}")
    from pyctr.runtime.lifecycle.misc_flags import validate_misc_flags  # h-misc

    validate_misc_flags(options)


def _exists(path: str) -> bool:
    import os

    return os.path.lexists(path)


def apply_run_flags(document: dict, options: RunOptions) -> dict:
    """HostConfig/Config keys of the extra flags, and the spec's rlimits from --ulimit."""
    ulimits = [parse_ulimit(item) for item in options.ulimits]
    host = document["HostConfig"]
    if ulimits:
        host["Ulimits"] = ulimits
        rlimits = {r["type"]: r for r in document["Spec"]["process"].get("rlimits") or []}
        for u in ulimits:
            rlimits[ULIMIT_NAMES[u["Name"]]] = {"type": ULIMIT_NAMES[u["Name"]], "soft": u["Soft"], "hard": u["Hard"]}
        document["Spec"]["process"]["rlimits"] = list(rlimits.values())
    host["OomScoreAdj"] = options.oom_score_adj
    host["ContainerIDFile"] = options.cidfile or ""
    if options.expose:
        document["Config"]["ExposedPorts"] = {**(document["Config"].get("ExposedPorts") or {}),
                                              **parse_expose(options.expose)}
    from pyctr.runtime.lifecycle.misc_flags import apply_misc_flags  # h-misc

    return apply_misc_flags(document, options)


def image_for_run(config, options: RunOptions, out=None):
    """The image `run` uses under `--pull` (always | missing | never), quietly with -q."""
    import io
    import sys

    from pyctr.errors import NotFoundError
    from pyctr.image.store import ImageStore

    out = io.StringIO() if options.quiet else (out or sys.stderr)
    if options.pull == "always":
        from pyctr.image.pull import pull

        return pull(config, options.image, quiet=options.quiet, out=out)
    if options.pull == "never":
        try:
            return ImageStore(config.paths).resolve(options.image)
        except NotFoundError:
            from pyctr.image.reference import parse_reference

            raise NotFoundError(f"No such image: {parse_reference(options.image).familiar}") from None
    from pyctr.runtime.container import resolve_image

    return resolve_image(config, options.image, out=out)


def after_create(record, options: RunOptions) -> None:
    """--cidfile: the new container's id, written as Docker's CLI writes it."""
    if options.cidfile:
        from pyctr.errors import PyctrError

        try:
            with open(options.cidfile, "x") as f:
                f.write(record.id)
        except OSError as e:
            raise PyctrError(f"failed to create the container ID file: {e}") from None


def after_launch(spec_dict: dict, host_config: dict, pid: int) -> None:
    """--oom-score-adj: set on the container's first process; what it starts inherits it."""
    value = int(host_config.get("OomScoreAdj") or 0)
    if value:
        with open(f"/proc/{pid}/oom_score_adj", "w") as f:
            f.write(str(value))
