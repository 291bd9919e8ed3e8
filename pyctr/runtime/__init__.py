"""Running containers: spec (the plan), then namespaces, rootfs, cgroups, network."""
