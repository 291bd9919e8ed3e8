"""populate_private_memory (runtime/syscalls.py) stops between chunks once `stop` says a command waits, so a
spare worker never keeps a client waiting for the rest of its pre-copy (pyctr/server.py)."""

from __future__ import annotations

from pyctr.runtime.syscalls import POPULATE_CHUNK, populate_private_memory


def test_a_waiting_command_stops_it_before_any_chunk():
    assert populate_private_memory(stop=lambda: True) == 0


def test_it_stops_after_the_chunks_done_before_the_command_came():
    asked = []

    def stop() -> bool:
        asked.append(True)
        return len(asked) > 3

    done = populate_private_memory(stop=stop)
    assert len(asked) == 4  # asked before each chunk, and it stopped at the first "yes"
    assert 0 < done <= 3 * POPULATE_CHUNK
