"""`pyctr top`: the container's processes as the host's `ps` shows them, Docker's way.

Docker's daemon (daemon/top_unix.go) runs `ps <args>` on the host (default
"-ef"), finds the PID column in the header and keeps the lines whose PID is in
the container's cgroup; the CLI prints the titles and rows through a
tabwriter (min width 20, padding 3). The PIDs are therefore host PIDs. The
parsing and formatting here are pure; `container_top` only reads the cgroup
and runs ps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyctr.errors import ConflictError, RuntimeFailure, UsageError

if TYPE_CHECKING:
    from pyctr.config import Config

DEFAULT_PS_ARGS = "-ef"
_PS_KEY_VALUE = re.compile(r"\s+([^\s]*)=\s*(PID[^\s]*)")
_ASCII_SPACE = re.compile(r"[ \t\n\v\f\r]+")
MIN_WIDTH = 20
PADDING = 3


@dataclass(frozen=True)
class TopResult:
    titles: list[str]
    processes: list[list[str]]


def validate_ps_args(ps_args: str) -> None:
    """Docker refuses renaming the PID column (`-o pid=PID` is fine, `-o ppid=PID` is not)."""
    for key, value in _PS_KEY_VALUE.findall(ps_args):
        if key != "pid":
            raise UsageError(f'specifying "{key}={value}" is not allowed')


def ps_argv(ps_args: str, pids: list[int]) -> tuple[list[str], list[str]]:
    """(argv with "-q <pids>" to let ps do the filtering, argv without it: some options cannot take -q)."""
    base = ["ps", *[a for a in ps_args.split(" ") if a]]
    if not pids:
        return base, base
    return base + ["-q", ",".join(str(p) for p in pids)], base


def fields_ascii(line: str) -> list[str]:
    """Split on ASCII whitespace only (a command's arguments may hold other whitespace)."""
    return [f for f in _ASCII_SPACE.split(line) if f]


def parse_ps_output(output: str, pids: list[int]) -> TopResult:
    """Docker's parsePSOutput: keep the container's lines (and the thread lines "-" that follow them)."""
    lines = output.split("\n")
    titles = fields_ascii(lines[0]) if lines else []
    if "PID" not in titles:
        raise RuntimeFailure("Couldn't find PID field in ps output")
    pid_index = titles.index("PID")
    wanted = set(pids)
    processes: list[list[str]] = []
    previous_kept = False
    for line in lines[1:]:
        fields = fields_ascii(line)
        if not fields:
            continue
        if len(fields) <= pid_index:
            previous_kept = False
            continue
        if fields[pid_index] == "-":
            if previous_kept:
                processes.append(_fit(fields, len(titles)))
            continue
        try:
            pid = int(fields[pid_index])
        except ValueError:
            raise RuntimeFailure(f"Unexpected pid '{fields[pid_index]}'") from None
        previous_kept = pid in wanted
        if previous_kept:
            processes.append(_fit(fields, len(titles)))
    return TopResult(titles, processes)


def _fit(fields: list[str], columns: int) -> list[str]:
    """As many fields as titles: the overhanging ones (a command's arguments) join into the last."""
    return fields[:columns - 1] + [" ".join(fields[columns - 1:])]


def format_top(result: TopResult) -> str:
    """docker top's output: each row's cells joined by tabs through Go's tabwriter (minwidth 20, padding 3)."""
    from pyctr.output.table import tabwrite

    rows = [result.titles] + result.processes
    return tabwrite("".join("\t".join(row) + "\n" for row in rows), minwidth=MIN_WIDTH, padding=PADDING)


# ------------------------------------------------------------------------------------------ doing


def container_top(config: Config, ref: str, ps_args: str = DEFAULT_PS_ARGS) -> TopResult:
    """The container's processes (host PIDs, from its cgroup) as `ps <ps_args>` shows them."""
    from pyctr.runtime.cgroups import open_cgroup
    from pyctr.runtime.state import ContainerStore, process_alive

    validate_ps_args(ps_args)
    record = ContainerStore(config.paths).get(ref)
    state = record.state
    if not state.running or not process_alive(state.pid, state.pid_start_time):
        raise ConflictError(f"Error response from daemon: Container {record.id} is not running")
    pids = open_cgroup(record.id).pids() or [state.pid]
    return parse_ps_output(run_ps(ps_args, pids), pids)


def run_ps(ps_args: str, pids: list[int]) -> str:
    """The host's ps, first told which pids (faster), again without -q if ps refuses the combination."""
    import subprocess

    with_pids, without = ps_argv(ps_args, pids)
    for argv in (with_pids, without):
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, errors="replace", check=False)
        except FileNotFoundError:
            raise RuntimeFailure("ps is not installed on the host (Debian package procps)") from None
        if proc.returncode == 0:
            return proc.stdout
    raise RuntimeFailure(f"Error running ps: {proc.stderr.strip() or 'exit ' + str(proc.returncode)}")
