"""Container commands with Docker's flags and output: run, create, start, stop, restart, kill, rm, ps, logs,
wait, inspect, stats, port, and the hidden `_cleanup` the monitor calls when a container exits.

Parsing and printing only; the lifecycle is pyctr.runtime.container. Heavy
modules (image store, network) are imported inside the commands that need them.
"""

from __future__ import annotations

import os
import sys
import time

import click

from pyctr.commands import AppContext, pass_app
from pyctr.errors import ClientError, NotFoundError, PyctrError
from pyctr.output import table

RUN_CONTEXT = {"allow_interspersed_args": False}
EXIT_INSPECT_TEMPLATE = 64  # docker-cli's inspect.Inspect: a template that does not parse is StatusError 64


def _multiple(option: str, *names: str, **kw):
    return click.option(option, *names, multiple=True, **kw)


def container_options(f):
    """The flags `run` and `create` share (Docker's names and short forms)."""
    decorators = [
        _multiple("-e", "--env", "env", metavar="LIST", help="Set environment variables"),
        _multiple("--env-file", "env_files", metavar="FILE", help="Read in a file of environment variables"),
        click.option("--entrypoint", default=None, help="Overwrite the default ENTRYPOINT of the image"),
        click.option("-w", "--workdir", default=None, help="Working directory inside the container"),
        click.option("-u", "--user", default=None, help="Username or UID (format: <name|uid>[:<group|gid>])"),
        click.option("-h", "--hostname", default=None, help="Container host name"),
        click.option("--name", default=None, help="Assign a name to the container"),
        _multiple("-v", "--volume", "volumes", metavar="LIST", help="Bind mount a volume"),
        click.option("--read-only", is_flag=True, help="Mount the container's root filesystem as read only"),
        click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY"),
        click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open even if not attached"),
        click.option("--rm", is_flag=True, help="Automatically remove the container when it exits"),
        _multiple("--cap-add", metavar="LIST", help="Add Linux capabilities"),
        _multiple("--cap-drop", metavar="LIST", help="Drop Linux capabilities"),
        click.option("--privileged", is_flag=True, help="Give extended privileges to this container"),
        _multiple("--security-opt", metavar="LIST", help="Security Options"),
        click.option("-m", "--memory", default=None, help="Memory limit"),
        click.option("--memory-swap", default=None, help="Swap limit equal to memory plus swap: '-1' for unlimited"),
        click.option("--cpus", default=None, help="Number of CPUs"),
        click.option("-c", "--cpu-shares", type=int, default=None, help="CPU shares (relative weight)"),
        click.option("--pids-limit", type=int, default=None, help="Tune container pids limit (-1 for unlimited)"),
        click.option("--network", "--net", "network", default="default", help="Connect a container to a network"),
        _multiple("-p", "--publish", metavar="LIST", help="Publish a container's port(s) to the host"),
        click.option("-P", "--publish-all", is_flag=True, help="Publish all exposed ports to random ports"),
        _multiple("--dns", metavar="LIST", help="Set custom DNS servers"),
        _multiple("--add-host", metavar="LIST", help="Add a custom host-to-IP mapping (host:ip)"),
        click.option("--init", is_flag=True, help="Run an init inside the container"),
        click.option("--stop-signal", default=None, help="Signal to stop the container"),
        click.option("--stop-timeout", type=int, default=None, help="Timeout (in seconds) to stop a container"),
        _multiple("-l", "--label", "labels", metavar="LIST", help="Set meta data on a container"),
        _multiple("--group-add", metavar="LIST", help="Add additional groups to join"),
        # volumes (p15-vol)
        _multiple("--mount", "mounts", metavar="mount", help="Attach a filesystem mount to the container"),
        _multiple("--tmpfs", metavar="LIST", help="Mount a tmpfs directory"),
        _multiple("--volumes-from", metavar="LIST", help="Mount volumes from the specified container(s)"),
        # networks (p15-net)
        _multiple("--network-alias", "--net-alias", "network_aliases", metavar="LIST",
                  help="Add network-scoped alias for the container"),
        click.option("--ip", default=None, help="IPv4 address (e.g., 172.30.100.104)"),
        # lifecycle (p15-life)
        click.option("--restart", default="no", help="Restart policy to apply when a container exits"),
        click.option("--health-cmd", default=None, help="Command to run to check health"),
        click.option("--health-interval", default=None, help="Time between running the check (ms|s|m|h)"),
        click.option("--health-timeout", default=None, help="Maximum time to allow one check to run (ms|s|m|h)"),
        click.option("--health-start-period", default=None,
                     help="Start period for the container to initialize before starting health-retries countdown"),
        click.option("--health-retries", type=int, default=0, help="Consecutive failures needed to report unhealthy"),
        click.option("--no-healthcheck", is_flag=True, help="Disable any container-specified HEALTHCHECK"),
        _multiple("--ulimit", "ulimits", metavar="ULIMIT", help="Ulimit options"),
        click.option("--cidfile", default=None, help="Write the container ID to the file"),
        click.option("--pull", default="missing", help='Pull image before running ("always"|"missing"|"never")'),
        click.option("--gpus", default=None, help="GPU devices to add to the container (not supported)"),
        click.option("--oom-score-adj", type=int, default=0, help="Tune host's OOM preferences (-1000 to 1000)"),
        _multiple("--expose", metavar="LIST", help="Expose a port or a range of ports"),
        click.option("-q", "--quiet", is_flag=True, help="Suppress the pull output"),
        # kernel flags (p15-ns)
        _multiple("--device", "devices", metavar="LIST", help="Add a host device to the container"),
        click.option("--ipc", default="", help="IPC mode to use"),
        click.option("--pid", default="", help="PID namespace to use"),
        click.option("--uts", default="", help="UTS namespace to use"),
        click.option("--cgroupns", default="", help="Cgroup namespace to use (host|private)"),
        click.option("--userns", default="", help="User namespace to use"),
        _multiple("--sysctl", "sysctls", metavar="map", help="Sysctl options"),
        click.option("--shm-size", default=None, help="Size of /dev/shm"),
        click.option("--oom-kill-disable", is_flag=True, help="Disable OOM Killer"),
        click.option("--memory-reservation", default=None, help="Memory soft limit"),
        click.option("--cpuset-cpus", default=None, help="CPUs in which to allow execution (0-3, 0,1)"),
        click.option("--blkio-weight", default=None,
                     help="Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)"),
        # h-misc
        _multiple("-a", "--attach", "attach", metavar="LIST", help="Attach to STDIN, STDOUT or STDERR"),
        click.option("--log-driver", default="", help="Logging driver for the container"),
        _multiple("--log-opt", "log_opts", metavar="LIST", help="Log driver options"),
        click.option("--platform", default="", help="Set platform if server is multi-platform capable"),
        click.option("--mac-address", default="", help="Container MAC address (e.g., 92:d0:c6:0a:29:33)"),
        _multiple("--dns-search", metavar="LIST", help="Set custom DNS search domains"),
        _multiple("--dns-option", "--dns-opt", "dns_options", metavar="LIST", help="Set DNS options"),
        _multiple("--link", "links", metavar="LIST", help="Add link to another container"),
        click.argument("image"),
        click.argument("command", nargs=-1, type=click.UNPROCESSED),
    ]
    for decorator in reversed(decorators):
        f = decorator(f)
    return f


def run_options(detach: bool, kw: dict):
    """RunOptions from the parsed flags (kept pure for tests/unit/test_run_options.py)."""
    from pyctr.runtime.spec import RunOptions

    return RunOptions(
        image=kw["image"], command=list(kw["command"]), entrypoint=kw["entrypoint"], env=list(kw["env"]),
        env_files=list(kw["env_files"]), workdir=kw["workdir"], user=kw["user"], hostname=kw["hostname"],
        name=kw["name"], volumes=list(kw["volumes"]), read_only=kw["read_only"], tty=kw["tty"],
        interactive=kw["interactive"], detach=detach, rm=kw["rm"], cap_add=list(kw["cap_add"]),
        cap_drop=list(kw["cap_drop"]), privileged=kw["privileged"], security_opt=list(kw["security_opt"]),
        memory=kw["memory"], memory_swap=kw["memory_swap"], cpus=kw["cpus"], cpu_shares=kw["cpu_shares"],
        pids_limit=kw["pids_limit"], network=kw["network"], publish=list(kw["publish"]),
        publish_all=kw["publish_all"], dns=list(kw["dns"]), add_host=list(kw["add_host"]), init=kw["init"],
        stop_signal=kw["stop_signal"], stop_timeout=kw["stop_timeout"], labels=list(kw["labels"]),
        group_add=list(kw["group_add"]),
        # volumes (p15-vol)
        mounts=list(kw.get("mounts") or ()), tmpfs=list(kw.get("tmpfs") or ()),
        volumes_from=list(kw.get("volumes_from") or ()),
        network_aliases=list(kw["network_aliases"]), ip=kw["ip"],
        # lifecycle (p15-life)
        restart=kw["restart"], health_cmd=kw["health_cmd"],
        health_interval=flag_duration("--health-interval", kw["health_interval"]),
        health_timeout=flag_duration("--health-timeout", kw["health_timeout"]),
        health_start_period=flag_duration("--health-start-period", kw["health_start_period"]),
        health_retries=kw["health_retries"], no_healthcheck=kw["no_healthcheck"], ulimits=list(kw["ulimits"]),
        cidfile=kw["cidfile"], pull=kw["pull"], gpus=kw["gpus"], oom_score_adj=kw["oom_score_adj"],
        expose=list(kw["expose"]), quiet=kw["quiet"],
        # kernel flags (p15-ns)
        devices=list(kw.get("devices") or ()), ipc=kw.get("ipc") or "", pid=kw.get("pid") or "",
        uts=kw.get("uts") or "", cgroupns=kw.get("cgroupns") or "", userns=kw.get("userns") or "",
        sysctls=list(kw.get("sysctls") or ()), shm_size=kw.get("shm_size"),
        oom_kill_disable=bool(kw.get("oom_kill_disable")), memory_reservation=kw.get("memory_reservation"),
        cpuset_cpus=kw.get("cpuset_cpus"), blkio_weight=_blkio_weight(kw.get("blkio_weight")),
        # h-misc
        attach=list(kw.get("attach") or ()), log_driver=kw.get("log_driver") or "",
        log_opts=list(kw.get("log_opts") or ()), platform=kw.get("platform") or "",
        mac_address=kw.get("mac_address") or "", dns_search=list(kw.get("dns_search") or ()),
        dns_options=list(kw.get("dns_options") or ()), links=list(kw.get("links") or ()),
        detach_keys=kw.get("detach_keys"), sig_proxy=kw.get("sig_proxy", True),
    )


def _blkio_weight(text: str | None) -> int | None:
    from pyctr.runtime.kernel_flags import parse_uint16_flag

    return parse_uint16_flag("--blkio-weight", text)


def flag_duration(flag: str, value: str | None) -> int:
    """A Go duration flag (pflag's DurationVar) in ns; pflag's words when it does not parse."""
    if value is None:
        return 0
    from pyctr.build.instructions import parse_duration
    from pyctr.errors import BuildError, UsageError

    sign, text = (-1, value[1:]) if value.startswith("-") else (1, value.removeprefix("+"))
    try:
        return 0 if text == "0" else sign * parse_duration(text)
    except BuildError as e:
        raise UsageError(f'invalid argument "{value}" for "{flag}" flag: {e.message}') from None


@click.command(context_settings=RUN_CONTEXT)
@click.option("-d", "--detach", is_flag=True, help="Run container in background and print container ID")
@click.option("--detach-keys", default=None, help="Override the key sequence for detaching a container")
@click.option("--sig-proxy", type=bool, default=True, is_flag=False, flag_value=True,
              help="Proxy received signals to the process (default true)")
@container_options
@pass_app
def run(app: AppContext, detach: bool, **kw) -> None:
    """Create and run a new container from an image."""
    from pyctr.runtime import container

    options = run_options(detach, kw)
    if options.tty and options.interactive and not detach and not os.isatty(0):
        raise ClientError("the input device is not a TTY", exit_code=1)  # Docker's check, before anything is made
    _warn_oom_kill_disable(options)
    record = container.create(app.config, options)
    if detach:
        container.start_detached(app.config, record)
        click.echo(record.id)
        return
    if options.detach_keys is not None or not options.sig_proxy:
        # Detachable, or left running when this command is interrupted (--sig-proxy=false: a signal ends the
        # command, not the container): started under its monitor, this terminal attached to it, as Docker's.
        from pyctr.runtime.attach import DEFAULT_DETACH_KEYS

        keys = options.detach_keys or DEFAULT_DETACH_KEYS
        sys.exit(_start_attached(app, record, keys, options.interactive, options.sig_proxy))
    from pyctr.runtime.lifecycle.misc_flags import attached_streams

    _, out, err = attached_streams(options)
    code = container.run_foreground(app.config, record, interactive=options.interactive, keep_log=not options.rm,
                                    streams=(out, err))
    sys.exit(code)


def _start_attached(app: AppContext, record, detach_keys: str, interactive: bool, sig_proxy: bool = True) -> int:
    """`run`/`start -a` with --detach-keys or --sig-proxy=false: the container runs under its monitor (so it
    outlives this command when the keys are typed or a signal ends it) and this terminal is on its attach
    socket; the exit code, or 0 once detached."""
    from pyctr.commands.attach import attach_terminal
    from pyctr.runtime import attach as attaching
    from pyctr.runtime import container
    from pyctr.runtime.state import ContainerStore

    keys = attaching.parse_detach_keys(detach_keys)
    store = ContainerStore(app.config.paths)
    container.start_detached(app.config, record, wait_for_attach=True)
    record = store.get(record.id)
    started_at = record.state.started_at  # both it and the exit file: RFC 3339 with nanoseconds
    if attach_terminal(app, record, keys, with_stdin=interactive, sig_proxy=sig_proxy):
        return 0
    code = _exit_code_left(store, record.id, started_at)
    return code if code is not None else container.wait(app.config, record.id)


def _exit_code_left(store, container_id: str, started_at, timeout: float = 2.0) -> int | None:
    """The exit code the monitor writes (`exitcode`) right after the output ends and before its cleanup, read
    while it is there: a --rm container's record is gone soon after. None if it does not show up in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = store.read_exit_file(container_id)
        if left is not None and (not started_at or left[1] >= started_at):
            return left[0]
        if not store.directory(container_id).exists():
            return None
        time.sleep(0.001)
    return None


@click.command(context_settings=RUN_CONTEXT)
@container_options
@pass_app
def create(app: AppContext, **kw) -> None:
    """Create a new container (prints its id)."""
    from pyctr.runtime import container

    options = run_options(False, kw)
    _warn_oom_kill_disable(options)
    record = container.create(app.config, options)
    click.echo(record.id)


def _warn_oom_kill_disable(options) -> None:
    """docker-cli's own warning, before it asks for the create (p15-ns)."""
    if options.oom_kill_disable and not options.memory:
        click.echo("WARNING: Disabling the OOM killer on containers without setting a '-m/--memory' limit may be "
                   "dangerous.", err=True)


def _for_each(refs: tuple[str, ...], action, *, forgive_missing: bool = False, summary: str | None = None) -> None:
    """Docker's multi-container commands: act on each, report each failure as docker-cli words it, exit 1 at
    the end if any failed. `forgive_missing` is `rm -f`: a missing container is reported but not a failure.
    `summary` is a last line naming the failed ones (start's `Error: failed to start containers: a, b`)."""
    from pyctr.errors import cli_error_line, cli_exit_code

    command = click.get_current_context().info_name
    failed: list[tuple[str, PyctrError]] = []
    for ref in refs:
        try:
            action(ref)
        except PyctrError as e:
            click.echo(cli_error_line(command, e), err=True)
            if not (forgive_missing and isinstance(e, NotFoundError)):
                failed.append((ref, e))
    if failed:
        if summary is not None:
            click.echo(f"{summary}{', '.join(ref for ref, _ in failed)}", err=True)
        sys.exit(cli_exit_code(command, failed[-1][1]))


@click.command()
@click.option("-a", "--attach", is_flag=True, help="Attach STDOUT/STDERR and forward signals")
@click.option("-i", "--interactive", is_flag=True, help="Attach container's STDIN")
@click.option("--detach-keys", default=None, help="Override the key sequence for detaching a container")
@click.argument("containers", nargs=-1, required=True)
@pass_app
def start(app: AppContext, attach: bool, interactive: bool, detach_keys: str | None,
          containers: tuple[str, ...]) -> None:
    """Start one or more stopped containers."""
    from pyctr.runtime import container
    from pyctr.runtime.state import ContainerStore

    store = ContainerStore(app.config.paths)
    if attach or interactive:
        if len(containers) > 1:
            raise PyctrError("you cannot start and attach multiple containers at once")
        from pyctr.runtime.restart import reset_for_user_start

        record = store.get(containers[0])
        reset_for_user_start(store, record.id)
        record = store.get(record.id)
        if detach_keys is not None:
            sys.exit(_start_attached(app, record, detach_keys, interactive))
        sys.exit(container.run_foreground(app.config, record, interactive=interactive))

    def one(ref: str) -> None:
        record = store.get(ref)
        if not record.state.running:
            from pyctr.runtime.restart import reset_for_user_start

            reset_for_user_start(store, record.id)  # a user's start begins a new restart manager (Docker)
            container.start_detached(app.config, store.get(record.id))
        click.echo(ref)

    _for_each(containers, one, summary="Error: failed to start containers: ")  # docker-cli's start.go


@click.command()
@click.option("-t", "--time", "timeout", type=int, default=None, help="Seconds to wait for stop before killing it")
@click.option("-s", "--signal", "sig", default=None, help="Signal to send to the container")
@click.argument("containers", nargs=-1, required=True)
@pass_app
def stop(app: AppContext, timeout: int | None, sig: str | None, containers: tuple[str, ...]) -> None:
    """Stop one or more running containers."""
    from pyctr.runtime import container

    def one(ref: str) -> None:
        container.stop(app.config, ref, timeout, sig)
        click.echo(ref)

    _for_each(containers, one)


@click.command()
@click.option("-t", "--time", "timeout", type=int, default=None, help="Seconds to wait for stop before killing it")
@click.argument("containers", nargs=-1, required=True)
@pass_app
def restart(app: AppContext, timeout: int | None, containers: tuple[str, ...]) -> None:
    """Restart one or more containers."""
    from pyctr.runtime import container

    def one(ref: str) -> None:
        container.restart(app.config, ref, timeout)
        click.echo(ref)

    _for_each(containers, one)


@click.command()
@click.option("-s", "--signal", "sig", default="KILL", help="Signal to send to the container")
@click.argument("containers", nargs=-1, required=True)
@pass_app
def kill(app: AppContext, sig: str, containers: tuple[str, ...]) -> None:
    """Kill one or more running containers."""
    from pyctr.runtime import container

    container.parse_signal(sig)  # a bad signal is refused before anything is killed

    def one(ref: str) -> None:
        container.kill(app.config, ref, sig)
        click.echo(ref)

    _for_each(containers, one)


@click.command()
@click.option("-f", "--force", is_flag=True, help="Force the removal of a running container (uses SIGKILL)")
@click.option("-v", "--volumes", is_flag=True, help="Remove anonymous volumes associated with the container")
@click.argument("containers", nargs=-1, required=True)
@pass_app
def rm(app: AppContext, force: bool, volumes: bool, containers: tuple[str, ...]) -> None:
    """Remove one or more containers."""
    from pyctr.runtime import container

    def one(ref: str) -> None:
        container.remove(app.config, ref, force=force, volumes=volumes)
        click.echo(ref)

    _for_each(containers, one, forgive_missing=force)  # docker-cli's rm: `-f` ignores errdefs.IsNotFound


@click.command()
@click.argument("containers", nargs=-1, required=True)
@pass_app
def wait(app: AppContext, containers: tuple[str, ...]) -> None:
    """Block until one or more containers stop, then print their exit codes."""
    from pyctr.runtime import container

    _for_each(containers, lambda ref: click.echo(container.wait(app.config, ref)))


@click.command()
@click.option("-a", "--all", "show_all", is_flag=True, help="Show all containers (default shows just running)")
@click.option("-q", "--quiet", is_flag=True, help="Only display container IDs")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output")
@click.option("--format", "fmt", default=None, help="Format output: table (default), json, or a Go template")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output based on conditions provided")
@click.option("-n", "--last", type=int, default=-1, help="Show n last created containers (includes all states)")
@click.option("-l", "--latest", is_flag=True, help="Show the latest created container (includes all states)")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes")
@pass_app
def ps(app: AppContext, show_all: bool, quiet: bool, no_trunc: bool, fmt: str | None, filters: tuple[str, ...],
       last: int, latest: bool, size: bool) -> None:
    """List containers."""
    from pyctr.runtime import ps as psfmt
    from pyctr.runtime.listing import ps_items, with_sizes
    from pyctr.runtime.state import ContainerStore

    parsed = psfmt.parse_filters(filters)
    fmt = ps_format(fmt, quiet, size)
    table.check(fmt)
    store = ContainerStore(app.config.paths)
    records = store.list_running() if psfmt.running_only(show_all=show_all, filters=parsed, last=last,
                                                         latest=latest) else store.list_for_listing()
    items = psfmt.select_items(ps_items(records), show_all=show_all, filters=parsed, last=last, latest=latest)
    if size:
        items = with_sizes(app.config.paths, items)
    now = time.time()
    contexts = [psfmt.ps_context(i, psfmt.ps_row(i, now, trunc=not no_trunc)) for i in items]
    click.echo(table.write(fmt, contexts, psfmt.HEADERS), nl=False)


def ps_format(fmt: str | None, quiet: bool, size: bool) -> str:
    """docker-cli's NewContainerFormat: `table` (the default) and `raw` obey -q and -s; a custom format is as given."""
    from pyctr.runtime import ps as psfmt

    fmt = fmt or "table"
    if fmt == "table":
        return "{{.ID}}" if quiet else psfmt.DEFAULT_FORMAT + ("\\t{{.Size}}" if size else "")
    if fmt == "raw":
        return "container_id: {{.ID}}" if quiet else psfmt.RAW_FORMAT + ("size: {{.Size}}\\n" if size else "")
    return fmt


@click.command()
@click.option("-f", "--follow", is_flag=True, help="Follow log output")
@click.option("-n", "--tail", default="all", help='Number of lines to show from the end of the logs (default "all")')
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps")
@click.option("--since", default=None,
              help="Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m for 42 minutes)")
@click.option("--until", default=None,
              help="Show logs before a timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m for 42 minutes)")
@click.option("--details", is_flag=True, help="Show extra details provided to logs")
@click.argument("container")
@pass_app
def logs(app: AppContext, follow: bool, tail: str, timestamps: bool, since: str | None, until: str | None,
         details: bool, container: str) -> None:
    """Fetch the logs of a container."""
    from pyctr.runtime import logs as logfile
    from pyctr.runtime.state import ContainerStore

    since_ns = logfile.time_bound_ns("since", since)  # refused before the container is looked up, as docker-cli
    until_ns = logfile.time_bound_ns("until", until)
    store = ContainerStore(app.config.paths)
    record = store.get(container)
    from pyctr.runtime.lifecycle.misc_flags import check_logs_readable

    check_logs_readable(record.config.get("HostConfig") or {})  # --log-driver none
    path = logfile.log_path(record.directory, record.id)
    if details:  # dockerd's --details: the slower entry-by-entry path (rarely used)
        _logs_with_details(store, record.id, path, tail, timestamps, follow, since_ns, until_ns)
        return
    following = follow and not (until_ns is not None and until_ns <= time.time_ns())

    def running() -> bool:
        try:
            return store.get(record.id).state.running
        except NotFoundError:
            return False

    logfile.stream_logs(path, sys.stdout, sys.stderr, tail=logfile.parse_tail(tail), timestamps=timestamps,
                        since_ns=since_ns, until_ns=until_ns, running=running if following else None)


def _logs_with_details(store, container_id: str, path, tail: str, timestamps: bool, follow: bool,
                       since_ns: int | None, until_ns: int | None) -> None:
    from pyctr.runtime import logs as logfile

    entries, offset = logfile.tail_entries(path, logfile.parse_tail(tail))
    _print_entries(logfile.within(entries, since_ns, until_ns), timestamps, True)
    if not follow or (until_ns is not None and until_ns <= time.time_ns()):
        return

    def running() -> bool:
        try:
            return store.get(container_id).state.running
        except NotFoundError:
            return False

    for entry in logfile.follow(path, offset, running):
        kept = logfile.within([entry], since_ns, until_ns)
        if not kept:
            at = logfile.entry_time_ns(entry.time)
            if until_ns is not None and at is not None and at > until_ns:
                return
        _print_entries(kept, timestamps, True)


def _print_entries(entries, timestamps: bool, details: bool = False) -> None:
    """`--details`: dockerd puts the entry's log attributes and a space before each line; pyctr's json-file
    entries have none (no --log-opt labels/env), so the space alone, as Docker prints it then."""
    out, err = sys.stdout, sys.stderr
    for e in entries:
        stream = err if e.stream == "stderr" else out
        if details:
            stream.write(f"{e.time} " if timestamps else "")
            stream.write(" " + e.text)
        else:
            stream.write(e.render(timestamps))
        stream.flush()


@click.command()
@click.option("-f", "--format", "fmt", default=None, help="Format output using a Go template")
@click.option("--type", "kind", type=click.Choice(["container", "image"]), default=None,
              help="Return JSON for specified type")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes")
@click.argument("names", nargs=-1, required=True)
@pass_app
def inspect(app: AppContext, fmt: str | None, kind: str | None, size: bool, names: tuple[str, ...]) -> None:
    """Return low-level information on containers or images."""
    import json

    from pyctr.output import template

    compiled = inspect_template(fmt)
    found, missing = [], []
    for name in names:
        obj = _inspect_one(app, name, kind)
        if obj is None:
            missing.append(name)
        else:
            found.append(obj)
    errors = []
    if compiled:
        text, errors = template.inspect_lines(fmt, found)
        click.echo(text, nl=False)
    else:
        click.echo(json.dumps(found, indent=4, ensure_ascii=False))
    what = {"container": "container", "image": "image"}.get(kind or "", "object")  # docker-cli's wording
    for name in missing:
        click.echo(f"Error: No such {what}: {name}", err=True)
    for error in errors:
        click.echo(f"Error: {error}", err=True)
    if missing or errors:
        sys.exit(1)


def inspect_template(fmt: str | None):
    """Parse an inspect `--format` before looking anything up; a parse error exits 64 as docker-cli's does."""
    from pyctr.output import template

    if not fmt:
        return None
    try:
        return template.parse(fmt)
    except template.TemplateError as e:
        raise template.TemplateError(e.message, exit_code=EXIT_INSPECT_TEMPLATE) from None


def _inspect_one(app: AppContext, name: str, kind: str | None) -> dict | None:
    from pyctr.runtime.inspect import container_inspect
    from pyctr.runtime.state import ContainerStore

    if kind in (None, "container"):
        try:
            record = ContainerStore(app.config.paths).get(name)
            return container_inspect(record.config, record.state.to_dict(), record.directory)
        except NotFoundError:
            pass
    if kind in (None, "image"):
        from pyctr.image.store import ImageStore

        try:
            return ImageStore(app.config.paths).resolve(name).inspect()
        except NotFoundError:
            return None
    return None


@click.command()
@click.option("--no-stream", is_flag=True, help="Disable streaming stats and only pull the first result")
@click.option("-a", "--all", "show_all", is_flag=True, help="Show all containers (default shows just running)")
@click.option("--format", "fmt", default=None, help="json or a Go template")
@click.argument("containers", nargs=-1)
@pass_app
def stats(app: AppContext, no_stream: bool, show_all: bool, fmt: str | None, containers: tuple[str, ...]) -> None:
    """Display resource usage statistics of containers."""
    from pyctr.runtime import ps as psfmt
    from pyctr.runtime.state import ContainerStore
    from pyctr.runtime.stats import sample_stats

    fmt = fmt or psfmt.STATS_FORMAT
    if fmt == "table":
        fmt = psfmt.STATS_FORMAT
    table.check(fmt)  # a bad template fails before anything is sampled, rows or not (Go parses first)
    store = ContainerStore(app.config.paths)
    records = [store.get(c) for c in containers] if containers else (
        store.list() if show_all else store.list_running())
    while True:
        contexts = [psfmt.stats_context(psfmt.stats_row(s)) for s in sample_stats(records)]
        text = table.write(fmt, contexts, psfmt.STATS_HEADERS)
        if no_stream:
            click.echo(text, nl=False)
            return
        click.echo("\033[2J\033[H" + text, nl=False)
        records = [store.get(r.id) for r in records]


@click.command()
@click.argument("container")
@click.argument("private_port", required=False)
@pass_app
def port(app: AppContext, container: str, private_port: str | None) -> None:
    """List port mappings or a specific mapping for the container."""
    from pyctr.runtime.state import ContainerStore

    record = ContainerStore(app.config.paths).get(container)
    ports = (record.state.network or {}).get("Ports", []) if record.state.running else []
    lines = []
    for p in ports:
        key = f"{p['ContainerPort']}/{p.get('Protocol', 'tcp')}"
        if private_port and private_port not in (key, str(p["ContainerPort"])):
            continue
        target = f"{p.get('HostIp') or '0.0.0.0'}:{p['HostPort']}"
        lines.append(target if private_port else f"{key} -> {target}")
    if private_port and not lines:
        raise NotFoundError(f"No public port '{private_port}' published for {container}")
    for line in lines:
        click.echo(line)


@click.command(name="_cleanup", hidden=True)
@click.option("--exit-code", type=int, default=255)
@click.option("--finished-at", default=None)
@click.argument("container_id")
@pass_app
def cleanup(app: AppContext, exit_code: int, finished_at: str | None, container_id: str) -> None:
    """Internal: record a container's exit and tear it down (the monitor runs this)."""
    from pyctr.runtime import container

    container.finish(app.config, container_id, exit_code, finished_at)
