"""pyctr: a container runtime with a Docker-compatible command line."""

__version__ = "0.1.0"
API_VERSION = "1.41"  # the Docker Engine API level whose behaviour pyctr follows
