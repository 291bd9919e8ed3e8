"""The container lifecycle, one module per verb: create, start (detached or foreground), stop, kill, remove,
wait, and the teardown after an exit.

  config_document.py  what config.json holds (Docker's Config/HostConfig views, the spec, the options)
  create.py           `create`: the image resolved (pulled), the spec decided, the host files written
  launch.py           M's work around process.launch: cgroup, network, state; undone if the start fails
  detached.py         `start -d`: M in its own session, then the stdlib-only monitor (runtime/monitor.py)
  monitor_program.py  which interpreter and compiled program the monitor runs, and its cleanup callback
  foreground.py       `run` attached: the CLI is M, relays output and signals, then finishes
  teardown.py         `finish` (record the exit) and `teardown` (network, cgroup, mounts; --rm)
  kill.py, stop.py, wait.py, remove.py   the verbs on a running or stopped container
  concurrently.py     a function run in a thread and joined later
  misc_flags.py       (pure) --log-driver/--log-opt, --platform, --mac-address, --dns-search/-option, --link, -a
  links.py            legacy --link on the default bridge: checked at create, resolved at each start

Process model (docs/ARCHITECTURE.md). Detached: the CLI forks, the child
calls setsid and forks M, which launches the container C (M stays C's parent),
reports "started <pid>" or the start error to the CLI over a pipe, then execs
the stdlib-only monitor (monitor.py), which logs C's output, reaps it and runs
`pyctr _cleanup`. Foreground: the CLI itself is M and does the same work
in-process. Either way `finish()` records the exit and tears everything down.

The decisions live elsewhere (spec.make_spec, state.reconcile, names) and the kernel work in process/,
cgroups/ and network/. runtime/container.py re-exports every public name here for its importers.
"""
