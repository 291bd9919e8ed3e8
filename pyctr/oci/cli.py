"""runc's command line, parsed the way urfave/cli (runc's flag library) parses it. Pure: no I/O.

Flags come before positional arguments (the first non-flag word ends them, as in urfave/cli v1), one or two
dashes, `--flag value` or `--flag=value`; a boolean flag takes no value unless written `--flag=false`.
"""

from __future__ import annotations

DEFAULT_ROOT = "/run/pyctr-runtime"


class CliError(Exception):
    """A bad command line: runc prints the message and exits 1."""


class Flag:
    """One flag: its names (long first), whether it takes a value, and whether it may repeat. (A plain class:
    dataclasses cost start-up, and every caller's `state` and `kill` pays it.)"""

    __slots__ = ("names", "takes_value", "repeat", "default", "key")

    def __init__(self, names: tuple[str, ...], takes_value: bool = False, repeat: bool = False,
                 default: object = None) -> None:
        self.names, self.takes_value, self.repeat, self.default = names, takes_value, repeat, default
        self.key = names[0].replace("-", "_")


def _bool(*names: str) -> Flag:
    return Flag(names, False, False, False)


def _value(*names: str, default: object = None) -> Flag:
    return Flag(names, True, False, default)


def _many(*names: str) -> Flag:
    return Flag(names, True, True, ())


GLOBAL_FLAGS = (
    _bool("debug"), _value("log", default=""), _value("log-format", default="text"),
    _value("root", default=DEFAULT_ROOT), _value("criu"), _bool("systemd-cgroup"), _value("rootless", default="auto"),
    _bool("version", "v"), _bool("help", "h"),
)
_CREATE = (_value("bundle", "b", default=""), _value("console-socket", default=""),
           _value("pid-file", default=""), _bool("no-pivot"), _bool("no-new-keyring"),
           _value("preserve-fds", default="0"), _value("pidfd-socket", default=""))
_RESOURCE_FLAGS = tuple(_value(name) for name in (
    "blkio-weight", "cpu-period", "cpu-quota", "cpu-share", "cpu-rt-period", "cpu-rt-runtime", "cpuset-cpus",
    "cpuset-mems", "memory", "memory-reservation", "memory-swap", "pids-limit", "l3-cache-schema",
    "mem-bw-schema"))

# command -> (flags, minimum positional arguments, maximum (None: any), usage)
COMMANDS: dict[str, tuple[tuple[Flag, ...], int, int | None, str]] = {
    "create": (_CREATE, 1, 1, "create [command options] <container-id>"),
    "run": (_CREATE + (_bool("detach", "d"), _bool("keep"), _bool("no-subreaper")), 1, 1,
            "run [command options] <container-id>"),
    "start": ((), 1, 1, "start <container-id>"),
    "state": ((), 1, 1, "state <container-id>"),
    "kill": ((_bool("all", "a"),), 1, 2, "kill [command options] <container-id> [signal]"),
    "delete": ((_bool("force", "f"),), 1, 1, "delete [command options] <container-id>"),
    "list": ((_value("format", "f", default="table"), _bool("quiet", "q")), 0, 0, "list [command options]"),
    "ps": ((_value("format", "f", default="table"),), 1, None, "ps [command options] <container-id> [ps options]"),
    "pause": ((), 1, 1, "pause <container-id>"),
    "resume": ((), 1, 1, "resume <container-id>"),
    "update": ((_value("resources", "r", default=""),) + _RESOURCE_FLAGS, 1, 1,
               "update [command options] <container-id>"),
    "spec": ((_value("bundle", "b", default=""), _bool("rootless")), 0, 0, "spec [command options]"),
    "features": ((), 0, 0, "features"),
    "exec": ((_value("console-socket", default=""), _value("pidfd-socket", default=""), _value("cwd", default=""),
              _many("env", "e"), _bool("tty", "t"), _value("user", "u", default=""),
              _many("additional-gids", "g"), _value("process", "p", default=""), _bool("detach", "d"),
              _value("pid-file", default=""), _value("process-label", default=""), _value("apparmor", default=""),
              _bool("no-new-privs"), _many("cap", "c"), _value("preserve-fds", default="0"), _value("cgroup"),
              _bool("ignore-paused")), 1, None, "exec [command options] <container-id> <command> [command options]"),
}


class Invocation:
    """A parsed command line: global options, the command, its options and positional arguments."""

    def __init__(self, globals_: dict[str, object], command: str = "", options: dict[str, object] | None = None,
                 args: list[str] | None = None) -> None:
        self.globals, self.command = globals_, command
        self.options: dict[str, object] = options or {}
        self.args: list[str] = args or []


_TRUE = ("true", "1", "t", "T", "TRUE", "True")
_FALSE = ("false", "0", "f", "F", "FALSE", "False")


def _parse_flags(words: list[str], flags: tuple[Flag, ...], where: str) -> tuple[dict[str, object], list[str]]:
    """Consume leading flags of `words`; return (values, the rest)."""
    by_name = {name: flag for flag in flags for name in flag.names}
    values: dict[str, object] = {flag.key: flag.default for flag in flags}
    i = 0
    while i < len(words):
        word = words[i]
        if word == "--":
            return values, words[i + 1:]
        if not word.startswith("-") or word == "-":
            break
        name, eq, inline = word.lstrip("-").partition("=")
        flag = by_name.get(name)
        if flag is None:
            raise CliError(f"flag provided but not defined: -{name}" + (f" ({where})" if where else ""))
        if flag.takes_value:
            if eq:
                value: object = inline
            elif i + 1 < len(words):
                i += 1
                value = words[i]
            else:
                raise CliError(f"flag needs an argument: -{name}")
            values[flag.key] = (*values[flag.key], value) if flag.repeat else value  # type: ignore[misc]
        elif eq:
            if inline not in _TRUE + _FALSE:
                raise CliError(f'invalid boolean value "{inline}" for -{name}')
            values[flag.key] = inline in _TRUE
        else:
            values[flag.key] = True
        i += 1
    return values, words[i:]


def parse(argv: list[str]) -> Invocation:
    """argv without the program name -> Invocation. Raises CliError with runc's wording."""
    global_values, rest = _parse_flags(argv, GLOBAL_FLAGS, "")
    invocation = Invocation(global_values)
    if global_values["version"] or global_values["help"] or not rest:
        return invocation
    command, words = rest[0], rest[1:]
    if command not in COMMANDS:
        raise CliError(f"No help topic for '{command}'")
    flags, least, most, usage = COMMANDS[command]
    if command in ("exec", "ps", "kill"):
        options, args = _parse_flags(words, flags, command)
    else:
        options, args = _parse_interleaved(words, flags, command)
    invocation.command, invocation.options, invocation.args = command, options, args
    _check_arity(command, args, least, most, usage, options)
    return invocation


def _parse_interleaved(words: list[str], flags: tuple[Flag, ...], where: str) -> tuple[dict[str, object], list[str]]:
    """Flags first, then arguments; a flag after the container id is still a flag (containerd writes
    `delete --force ID`, podman `create --bundle B --pid-file P ID`, some callers the id before the flags)."""
    options, rest = _parse_flags(words, flags, where)
    args: list[str] = []
    while rest:
        args.append(rest[0])
        more, rest = _parse_flags(rest[1:], flags, where)
        for key, value in more.items():
            default = next(f.default for f in flags if f.key == key)
            if value != default:
                options[key] = value
    return options, args


def _check_arity(command: str, args: list[str], least: int, most: int | None, usage: str,
                 options: dict[str, object]) -> None:
    if command == "exec" and options.get("process") and len(args) >= 1:
        return
    needed = 2 if command == "exec" else least
    if len(args) < needed:
        if needed == 1 and least == 1 and most == 1:
            raise CliError(f'"{command}" requires exactly 1 argument(s)')
        raise CliError(f'"{command}" requires a minimum of {needed} argument(s)')
    if most is not None and len(args) > most:
        if least == most:
            raise CliError(f'"{command}" requires exactly {most} argument(s)')
        raise CliError(f'"{command}" requires a maximum of {most} argument(s)')


SIGNALS = {
    "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6, "BUS": 7, "FPE": 8, "KILL": 9,
    "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15, "STKFLT": 16, "CHLD": 17,
    "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21, "TTOU": 22, "URG": 23, "XCPU": 24, "XFSZ": 25,
    "VTALRM": 26, "PROF": 27, "WINCH": 28, "IO": 29, "POLL": 29, "PWR": 30, "SYS": 31,
}


def parse_signal(text: str) -> int:
    """runc's ParseSignal: a number, or a name with or without SIG (any case); RTMIN+n too."""
    if text.isdigit():
        number = int(text)
        if 0 < number <= 64:
            return number
        raise CliError(f"unknown signal {text!r}")
    name = text.upper().removeprefix("SIG")
    if name in SIGNALS:
        return SIGNALS[name]
    for base, number in (("RTMIN", 34), ("RTMAX", 64)):
        if name == base:
            return number
        if name.startswith(base + "+") and base == "RTMIN" and name[6:].isdigit():
            return number + int(name[6:])
        if name.startswith(base + "-") and base == "RTMAX" and name[6:].isdigit():
            return number - int(name[6:])
    raise CliError(f"unknown signal {text!r}")
