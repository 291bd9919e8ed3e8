"""RunOptions from `run`/`create` flags: Docker's flag names, repeatable flags, and the command after the image."""

import click
import pytest

from pyctr.commands import container as cmd


def parse(*argv: str, command=cmd.run):
    """The RunOptions `pyctr run ARGV` would use, without running anything."""
    captured = {}

    def fake_run(app, detach=False, **kw):
        captured["options"] = cmd.run_options(detach, kw)

    fake = click.Command(command.name, params=command.params, callback=lambda **kw: fake_run(None, **kw),
                         context_settings=command.context_settings)
    fake.main(args=list(argv), standalone_mode=False)
    return captured["options"]


def test_minimal():
    o = parse("busybox")
    assert o.image == "busybox" and o.command == [] and not o.detach and o.network == "default"


def test_command_after_image_keeps_its_flags():
    o = parse("-d", "--rm", "busybox", "sh", "-c", "echo -n hi --rm")
    assert o.detach and o.rm and o.command == ["sh", "-c", "echo -n hi --rm"]


def test_repeatable_and_short_flags():
    o = parse("-e", "A=1", "--env", "B=2", "-v", "/a:/b", "-p", "8000:80", "-p", "53:53/udp", "-l", "x=y",
              "--cap-add", "NET_ADMIN", "--cap-drop", "ALL", "--dns", "1.1.1.1", "--add-host", "h:1.2.3.4",
              "-w", "/tmp", "-u", "1000:1000", "-h", "box", "--name", "n1", "-it", "busybox")
    assert o.env == ["A=1", "B=2"] and o.volumes == ["/a:/b"] and o.publish == ["8000:80", "53:53/udp"]
    assert o.labels == ["x=y"] and o.cap_add == ["NET_ADMIN"] and o.cap_drop == ["ALL"]
    assert o.dns == ["1.1.1.1"] and o.add_host == ["h:1.2.3.4"]
    assert (o.workdir, o.user, o.hostname, o.name, o.interactive, o.tty) == ("/tmp", "1000:1000", "box", "n1",
                                                                             True, True)


def test_limits_and_security():
    o = parse("-m", "64m", "--memory-swap", "-1", "--cpus", "0.5", "-c", "512", "--pids-limit", "10",
              "--read-only", "--privileged", "--security-opt", "no-new-privileges", "--init",
              "--stop-signal", "SIGUSR1", "--stop-timeout", "3", "--network", "none", "-P", "--entrypoint", "",
              "busybox")
    assert (o.memory, o.memory_swap, o.cpus, o.cpu_shares, o.pids_limit) == ("64m", "-1", "0.5", 512, 10)
    assert o.read_only and o.privileged and o.init and o.publish_all
    assert o.security_opt == ["no-new-privileges"] and o.stop_signal == "SIGUSR1" and o.stop_timeout == 3
    assert o.network == "none" and o.entrypoint == ""


def test_create_has_no_detach_flag():
    o = parse("--name", "x1", "busybox", "true", command=cmd.create)
    assert o.name == "x1" and o.command == ["true"] and not o.detach
    with pytest.raises(click.NoSuchOption):
        parse("-d", "busybox", command=cmd.create)
