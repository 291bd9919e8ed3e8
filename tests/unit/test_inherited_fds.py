"""process/inherited.py: a forked child gives up what it inherited, and no object of its (multithreaded) parent
can close or use a descriptor the child opens afterwards (issue 16: the API daemon's starts and execs failed
with "OSError: [Errno 9] Bad file descriptor" after a pull left a socket in the daemon's garbage)."""

from __future__ import annotations

import gc
import os
import socket
import threading
from collections.abc import Callable

import pytest

from pyctr.runtime.process.inherited import disown_inherited_fds, numbers_to_disown


def in_forked_child(work: Callable[[int], str]) -> str:
    """Run `work(report_fd)` in a forked child (the report pipe is kept) and return the text it reports."""
    report_r, report_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the forked child
        try:
            text = work(report_w)
        except BaseException as e:  # noqa: BLE001 - reported to the test
            text = f"{type(e).__name__}: {e}"
        os.write(report_w, text.encode())
        os._exit(0)
    os.close(report_w)
    with open(report_r, "rb") as f:
        text = f.read().decode()
    os.waitpid(pid, 0)
    return text


class Cycle:
    """An object in a reference cycle holding an open socket: garbage only the cyclic collector finalizes
    (as the registry connection the HTTP client leaves behind)."""

    def __init__(self) -> None:
        self.me = self
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)


def _keep_all_but_reports(keep: int) -> None:
    os.closerange(3, keep)
    os.closerange(keep + 1, 65536)


def _pipes_survive_collection(give_up: Callable[[int], None], garbage_fd: int) -> Callable[[int], str]:
    """The child gives up what it inherited, opens pipes until one takes the garbage socket's number (it does
    once that number is free), lets its collector run and reports any of its own fds that got closed."""
    def work(report: int) -> str:
        give_up(report)
        opened: list[int] = []
        while len(opened) < 2 * garbage_fd and garbage_fd not in opened:
            opened += os.pipe()
        gc.collect()  # the child's collector meets the parent's garbage
        closed = [fd for fd in opened if not _is_open(fd)]
        return f"closed {closed}" if closed else "ok"
    return work


@pytest.fixture
def garbage_socket():
    """An open socket in uncollected garbage, made by another thread, at the lowest free number."""
    gc.disable()
    try:
        made: list[int] = []

        def make() -> None:
            made.append(Cycle().sock.fileno())  # the Cycle is garbage as soon as this returns

        thread = threading.Thread(target=make)
        thread.start()
        thread.join()
        yield made[0]
    finally:
        gc.enable()
        gc.collect()


def test_the_parents_garbage_cannot_close_a_pipe_the_child_made(garbage_socket):
    give_up = lambda report: disown_inherited_fds(keep=(report,))  # noqa: E731
    assert in_forked_child(_pipes_survive_collection(give_up, garbage_socket)) == "ok"


def test_freeing_the_numbers_instead_lets_the_garbage_close_the_childs_pipe(garbage_socket):
    """The hazard the rule removes, shown with the closerange the daemon's children used before."""
    outcome = in_forked_child(_pipes_survive_collection(_keep_all_but_reports, garbage_socket))
    assert outcome == f"closed [{garbage_socket}]"


def test_a_cached_object_of_the_parent_never_reaches_the_childs_descriptors():
    cached = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # a module-level cache, say
    try:
        def work(report: int) -> str:
            disown_inherited_fds(keep=(report,))
            read_end, write_end = os.pipe2(os.O_NONBLOCK)
            try:
                cached.send(b"stale")
            except OSError:
                pass  # its placeholder is no socket: an error, never a write into the child's pipe
            cached.close()  # closes its own placeholder, not the child's pipe
            os.write(write_end, b"x")
            return repr(os.read(read_end, 64))

        assert in_forked_child(work) == "b'x'"
    finally:
        cached.close()


def test_an_inherited_pipe_is_let_go_so_its_reader_sees_eof():
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    hold_r, hold_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the forked child
        disown_inherited_fds(keep=(hold_r,))
        os.read(hold_r, 1)  # stays alive until the test has read its EOF
        os._exit(0)
    os.close(write_end)
    os.close(hold_r)
    try:
        assert os.read(read_end, 1) == b""  # the child holds no copy of the write end
    finally:
        os.close(hold_w)
        os.close(read_end)
        os.waitpid(pid, 0)


def test_the_child_keeps_what_it_was_told_to_and_its_stdio():
    def work(report: int) -> str:
        disown_inherited_fds(keep=(report,))
        kept = os.fstat(report)
        null = os.stat(os.devnull)
        others = [int(n) for n in os.listdir("/proc/self/fd") if int(n) > 2 and int(n) != report]
        placeholders = all((os.fstat(n).st_rdev, os.get_inheritable(n)) == (null.st_rdev, False)
                           for n in others if _is_open(n))
        return f"{kept.st_nlink >= 0} {placeholders} {all(_is_open(n) for n in (0, 1, 2))}"

    assert in_forked_child(work) == "True True True"


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def test_numbers_to_disown():
    listed = ["0", "1", "2", "3", "5", "7", "9", "12", "self"]
    assert numbers_to_disown(listed, keep={5}, placeholder=9) == [3, 7, 12]
    assert numbers_to_disown(["0", "1", "2"], keep=(), placeholder=3) == []
