"""pyctr-runtime: an OCI runtime front-end with runc's command line (containerd, podman and CRI call it).

Modules: `cli` parses runc's flags (pure), `bundle` turns config.json into a plan (pure), `resources` turns
linux.resources into cgroup file writes (pure), `state` keeps one directory per container under --root,
`launch` is the only module that calls into `pyctr.runtime` (fork, the container's init), `cgroupfs` makes,
joins and removes the container's cgroup with plain file I/O, `commands` sequences each verb, `main` is the
entry point (errors as runc prints and logs them). `jsonlite` is json without `import json`.

Every verb is a cold start a caller waits for (containerd and podman run one process per create, start,
state, kill, delete), so what each verb imports is kept to what it uses: tests/unit/test_oci_cli.py checks
that the repeated verbs and `create` load none of the slow stdlib modules (json, re, typing, dataclasses,
pathlib, contextlib, subprocess, socket).
"""

SUPPORTED_OCI = "1.0.2"  # the runtime-spec version pyctr-runtime implements and reports
