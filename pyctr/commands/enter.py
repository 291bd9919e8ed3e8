"""Entering and inspecting running containers: `exec`, `top`, `cp` (Docker's flags and output).

Parsing and printing only; the work is in pyctr.runtime.exec, .top and .copy,
each imported inside its command so `pyctr exec` loads nothing it does not use.
"""

from __future__ import annotations

import sys

import click

from pyctr.commands import AppContext, pass_app

# Everything after the container is the command and its own flags (`exec c ls -l`).
EXEC_CONTEXT = {"allow_interspersed_args": False}


@click.command("exec", context_settings=EXEC_CONTEXT)
@click.option("-d", "--detach", is_flag=True, help="Detached mode: run command in the background")
@click.option("-e", "--env", "env", multiple=True, metavar="LIST", help="Set environment variables")
@click.option("--env-file", "env_files", multiple=True, metavar="FILE", help="Read in a file of environment variables")
@click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open even if not attached")
@click.option("--privileged", is_flag=True, help="Give extended privileges to the command")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY")
@click.option("-u", "--user", default=None, help="Username or UID (format: <name|uid>[:<group|gid>])")
@click.option("-w", "--workdir", default=None, help="Working directory inside the container")
@click.argument("container")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@pass_app
def exec_(app: AppContext, container: str, command: tuple[str, ...], **kw) -> None:
    """Run a command in a running container."""
    import os

    from pyctr.errors import ClientError, CommandCannotRun
    from pyctr.runtime.exec import EXEC_FAILED_PREFIX, ExecOptions, run_exec

    if kw["tty"] and kw["interactive"] and not kw["detach"] and not os.isatty(0):
        raise ClientError("the input device is not a TTY", exit_code=1)  # Docker's check and exit code
    options = ExecOptions(args=list(command), interactive=kw["interactive"], tty=kw["tty"], detach=kw["detach"],
                          env=list(kw["env"]), env_files=list(kw["env_files"]), user=kw["user"],
                          workdir=kw["workdir"], privileged=kw["privileged"])
    try:
        code = run_exec(app.config, container, options)
    except CommandCannotRun as e:
        if options.detach or not e.message.startswith(EXEC_FAILED_PREFIX):
            raise
        # Docker: the daemon writes why the process could not start into the attached stream, so the CLI shows
        # it on stdout, then exits with the exec's code (126).
        click.echo(e.message)
        code = e.exit_code
    # The CLI's main leaves through os._exit after flushing (no interpreter teardown) and tells the
    # server's client the code first (pyctr/server.py).
    sys.exit(code)


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("container")
@click.argument("ps_options", nargs=-1, type=click.UNPROCESSED)
@pass_app
def top(app: AppContext, container: str, ps_options: tuple[str, ...]) -> None:
    """Display the running processes of a container (host PIDs; ps options as for ps, default -ef)."""
    from pyctr.runtime.top import DEFAULT_PS_ARGS, container_top, format_top

    if container.startswith("-"):  # ps options pass through, but only after the container (Docker's top)
        from pyctr.commands.flags import unknown_flag

        raise unknown_flag(container, click.get_current_context())
    result = container_top(app.config, container, " ".join(ps_options) or DEFAULT_PS_ARGS)
    click.echo(format_top(result), nl=False)


@click.command()
@click.option("-a", "--archive", is_flag=True, help="Archive mode (copy all uid/gid information)")
@click.option("-L", "--follow-link", is_flag=True, help="Always follow symbol link in SRC_PATH")
@click.argument("src")
@click.argument("dest")
@pass_app
def cp(app: AppContext, src: str, dest: str, archive: bool, follow_link: bool) -> None:
    """Copy files/folders between a container and the local filesystem ("-" streams a tar on stdin/stdout).

    \b
    pyctr cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-
    pyctr cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH
    """
    from pyctr.runtime.copy import CopyOptions, run_cp

    run_cp(app.config, src, dest, CopyOptions(archive=archive, follow_link=follow_link),
           sys.stdin.buffer, sys.stdout.buffer)
