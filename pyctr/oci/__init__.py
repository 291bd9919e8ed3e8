"""pyctr-runtime: an OCI runtime front-end with runc's command line (containerd, podman and CRI call it).

Modules: `cli` parses runc's flags (pure), `bundle` turns config.json into a plan (pure), `resources` turns
linux.resources into cgroup file writes (pure), `state` keeps one directory per container under --root,
`launch` is the only module that calls into `pyctr.runtime` (fork, the container's init, cgroups), `commands`
sequences each verb, `main` is the entry point (errors as runc prints and logs them).
"""

SUPPORTED_OCI = "1.0.2"  # the runtime-spec version pyctr-runtime implements and reports
