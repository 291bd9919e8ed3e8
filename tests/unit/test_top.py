"""`pyctr top` parsing and formatting: Docker's parsePSOutput and the CLI's tabwriter table."""

from __future__ import annotations

import pytest

from pyctr.errors import RuntimeFailure, UsageError
from pyctr.runtime.top import TopResult, fields_ascii, format_top, parse_ps_output, ps_argv, validate_ps_args

PS_EF = """\
UID          PID    PPID  C STIME TTY          TIME CMD
root           1       0  0 03:05 ?        00:00:01 /sbin/init
root        9640    9637  0 03:29 ?        00:00:00 sleep 1000
root        9700    9640  0 03:30 pts/0    00:00:00 sh -c echo  two   spaces
user        9800       1  0 03:31 ?        00:00:00 unrelated
"""


def test_keeps_only_the_containers_pids_and_joins_the_command():
    result = parse_ps_output(PS_EF, [9640, 9700])
    assert result.titles == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert result.processes == [
        ["root", "9640", "9637", "0", "03:29", "?", "00:00:00", "sleep 1000"],
        ["root", "9700", "9640", "0", "03:30", "pts/0", "00:00:00", "sh -c echo two spaces"],
    ]


def test_thread_lines_follow_their_process():
    output = "PID TID CMD\n10 - a\n- 11 -\n20 - b\n- 21 -\n"
    assert parse_ps_output(output, [10]).processes == [["10", "-", "a"], ["-", "11", "-"]]


def test_missing_pid_column_or_garbage_pid_fails():
    with pytest.raises(RuntimeFailure, match="Couldn't find PID field"):
        parse_ps_output("USER COMMAND\nroot sh\n", [1])
    with pytest.raises(RuntimeFailure, match="Unexpected pid"):
        parse_ps_output("PID CMD\nabc sh\n", [1])


def test_format_is_dockers_tabwriter():
    text = format_top(TopResult(["UID", "PID", "CMD"], [["root", "9640", "sleep 1000"]]))
    assert text == ("UID" + " " * 17 + "PID" + " " * 17 + "CMD\n"
                    "root" + " " * 16 + "9640" + " " * 16 + "sleep 1000\n")


def test_long_cells_get_three_spaces_of_padding():
    text = format_top(TopResult(["USER", "CMD"], [["a-very-long-user-name-here", "x"]]))
    assert text.splitlines()[1] == "a-very-long-user-name-here   x"
    assert text.splitlines()[0] == "USER" + " " * 25 + "CMD"


def test_ps_is_asked_for_the_pids_first():
    assert ps_argv("-ef", [3, 4]) == (["ps", "-ef", "-q", "3,4"], ["ps", "-ef"])
    assert ps_argv("-o  pid,comm", []) == (["ps", "-o", "pid,comm"], ["ps", "-o", "pid,comm"])


def test_renaming_the_pid_column_is_refused():
    validate_ps_args("-o pid=PID,comm")
    with pytest.raises(UsageError, match='specifying "ppid=PID" is not allowed'):
        validate_ps_args("-o ppid=PID")


def test_fields_split_on_ascii_whitespace_only():
    assert fields_ascii("a\u00a0b  c\t d") == ["a\u00a0b", "c", "d"]
