"""The per-container health ticker: a standalone, stdlib-only script (like monitor.py, it never imports pyctr).

Run detached as `python -I -S health_ticker.py PID INTERVAL_S PROBE_ARGV...` by the launch of a container that
has a healthcheck. Every INTERVAL_S (after the previous probe ended, as Docker's timer) it runs PROBE_ARGV, the
hidden `pyctr _health` command through the `pyctr` client, which probes the container in a warm server's worker
and records the result; it leaves as soon as the container's process exits. What stays resident per container
is a bare interpreter (~2 MiB), not pyctr.
"""

import posix as os
import select
import sys


def main(argv):
    pid, interval = int(argv[0]), float(argv[1])
    probe = argv[2:]
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return 0
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    while not poller.poll(max(1, int(interval * 1000))):
        child = os.fork()
        if child == 0:
            try:
                os.execv(probe[0], probe)
            finally:
                os._exit(127)
        while True:
            try:
                os.waitpid(child, 0)
                break
            except InterruptedError:
                continue
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
