"""pyctr-runtime's errors: each is one line on stderr (and in --log), exit status 1, as runc reports them.
Kept apart from the modules that raise them so that the fast verbs (state, kill, delete) import nothing more."""


class ConfigError(Exception):
    """config.json asks for something invalid or unsupported."""


class LaunchError(Exception):
    """Creating, starting or exec'ing failed: what the container's init or a hook reported."""
