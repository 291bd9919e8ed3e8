"""The exec shim's pure parts: the command line it is given and how its report becomes Docker's error."""

from __future__ import annotations

import errno

import pytest

from pyctr.errors import CommandCannotRun, CommandNotFound, RuntimeFailure
from pyctr.runtime import execshim
from pyctr.runtime.process import sequence


def test_shim_argv_puts_the_mark_the_report_fd_and_the_path_before_the_command():
    assert execshim.shim_argv(3, "/bin/sh", ["sh", "-c", "echo hi"]) == \
        ["pyctr-exec-shim", "3", "/bin/sh", "sh", "-c", "echo hi"]


@pytest.mark.parametrize(("number", "kind", "message"), [
    (errno.ENOENT, CommandNotFound, 'exec: "cmd": no such file or directory'),
    (errno.ENOEXEC, CommandCannotRun, 'exec: "cmd": exec format error'),
    (errno.EACCES, CommandCannotRun, 'exec: "cmd": permission denied'),
    (errno.ETXTBSY, CommandCannotRun, 'exec: "cmd": text file busy'),
])
def test_a_shim_report_is_the_error_the_init_raised_for_that_errno(number, kind, message):
    failure = execshim.shim_failure({"errno": number}, "cmd")
    direct = sequence.exec_error("cmd", OSError(number, "ignored"))
    assert isinstance(failure, kind) and failure.message == message
    assert (type(direct), direct.exit_code) == (kind, failure.exit_code)
    assert failure.exit_code == (127 if number == errno.ENOENT else 126)


@pytest.mark.parametrize("report", [
    {"kind": "CommandNotFound", "message": "m"}, {"errno": "2"}, {"errno": True}, {"errno": 0}, {"errno": -2}, {}])
def test_other_reports_are_not_the_shims(report):
    assert execshim.shim_failure(report, "cmd") is None


def test_a_missing_shim_fails_closed_with_a_clear_error(tmp_path):
    with pytest.raises(RuntimeFailure, match="exec shim .* cannot be read .*make install"):
        execshim.load_sealed_copy(str(tmp_path / "exec-shim"))
    (tmp_path / "exec-shim").write_bytes(b"#!/bin/sh\n")
    with pytest.raises(RuntimeFailure, match="is not a program"):
        execshim.load_sealed_copy(str(tmp_path / "exec-shim"))

