"""`pyctr attach`: the terminal to a running container's output and stdin, through its monitor's attach socket."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys

import click

from pyctr.commands import AppContext, pass_app

PROXIED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


@click.command()
@click.option("--detach-keys", default=None, help="Override the key sequence for detaching a container")
@click.option("--no-stdin", is_flag=True, help="Do not attach STDIN")
@click.option("--sig-proxy", type=bool, default=True, show_default=True,
              help="Proxy all received signals to the process")
@click.argument("container")
@pass_app
def attach(app: AppContext, detach_keys: str | None, no_stdin: bool, sig_proxy: bool, container: str) -> None:
    """Attach local standard input, output, and error streams to a running container."""
    from pyctr.runtime import attach as attaching
    from pyctr.runtime.state import ContainerStore

    keys = attaching.parse_detach_keys(detach_keys or attaching.DEFAULT_DETACH_KEYS)
    record = ContainerStore(app.config.paths).get(container)
    if not record.state.running:
        from pyctr.errors import ConflictError

        raise ConflictError("You cannot attach to a stopped container, start it first")
    code = attach_session(app, record, keys, with_stdin=not no_stdin, sig_proxy=sig_proxy)
    if code is not None:
        sys.exit(code)


def attach_session(app: AppContext, record, keys: bytes, *, with_stdin: bool, sig_proxy: bool) -> int | None:
    """The terminal on a started container's attach socket until its output ends (then its exit code) or the
    detach keys are typed (None: it runs on)."""
    from pyctr.runtime import container as lifecycle

    if attach_terminal(app, record, keys, with_stdin=with_stdin, sig_proxy=sig_proxy):
        return None
    return lifecycle.wait(app.config, record.id)


def attach_terminal(app: AppContext, record, keys: bytes, *, with_stdin: bool, sig_proxy: bool) -> bool:
    """Relay between this terminal and the container's attach socket; True when the detach keys were typed,
    False once its output ended. `attach`, and `run`/`start -a` with --detach-keys or --sig-proxy=false."""
    from pyctr.runtime import attach as attaching
    from pyctr.runtime.state import ContainerStore

    docker_config = record.config.get("Config") or {}
    tty = bool(docker_config.get("Tty"))
    with_stdin = with_stdin and bool(docker_config.get("OpenStdin"))
    store = ContainerStore(app.config.paths)

    def running() -> bool:  # right after a start, the monitor may not listen yet
        return store.get(record.id).state.running

    sock = attaching.wait_for_socket(record.directory, running)
    from pyctr import events

    events.record_container(app.config.root, record, "attach")
    previous = _proxy_signals(app, record.id) if sig_proxy and not tty else {}
    try:
        with _raw_terminal(tty and with_stdin):
            detached = _session(sock, with_stdin, attaching.DetachScanner(keys))
    finally:
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return detached


def _session(sock, with_stdin: bool, scanner) -> bool:
    """Relay until the container's output ends (False) or the detach keys are typed (True)."""
    from pyctr.runtime.attach import FrameReader

    reader = FrameReader()
    watched = [sock] + ([sys.stdin.fileno()] if with_stdin else [])
    outputs = {1: sys.stdout.buffer, 2: sys.stderr.buffer}
    while True:
        try:
            readable, _, _ = select.select(watched, [], [])
        except InterruptedError:
            continue
        if sock in readable:
            data = sock.recv(65536)
            if not data:
                return False
            for stream, payload in reader.feed(data):
                out = outputs.get(stream, sys.stdout.buffer)
                out.write(payload)
                out.flush()
        if with_stdin and sys.stdin.fileno() in readable:
            data = os.read(sys.stdin.fileno(), 65536)
            if not data:
                sock.shutdown(1)  # stdin's EOF (closes the container's stdin when it has StdinOnce)
                watched.remove(sys.stdin.fileno())
                continue
            forward, detached = scanner.feed(data)
            if forward:
                sock.sendall(forward)
            if detached:
                return True


def _proxy_signals(app: AppContext, container_id: str) -> dict:
    """Docker's --sig-proxy: a signal this command receives is sent to the container."""
    from pyctr.errors import PyctrError
    from pyctr.runtime import container as lifecycle

    def forward(signum, _frame) -> None:
        with contextlib.suppress(PyctrError):
            lifecycle.kill(app.config, container_id, signum)

    return {sig: signal.signal(sig, forward) for sig in PROXIED_SIGNALS}


@contextlib.contextmanager
def _raw_terminal(wanted: bool):
    """The local terminal in raw mode while attached to a tty container (keys go to the container as typed)."""
    if not wanted or not os.isatty(0):
        yield
        return
    import termios
    import tty

    saved = termios.tcgetattr(0)
    tty.setraw(0)
    try:
        yield
    finally:
        termios.tcsetattr(0, termios.TCSADRAIN, saved)
