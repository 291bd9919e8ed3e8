"""A registry's redirect may only lead to another HTTP(S) URL: `file:///etc/passwd` is refused in one line."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pyctr.errors import RegistryError
from pyctr.image.registry import Endpoint, RegistryClient


class RedirectToFile(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(302)
        self.send_header("Location", "file:///etc/passwd")
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def registry():
    server = ThreadingHTTPServer(("127.0.0.1", 0), RedirectToFile)
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_a_redirect_to_a_file_url_is_refused_with_a_registry_error(registry: int) -> None:
    client = RegistryClient(Endpoint(f"127.0.0.1:{registry}", f"http://127.0.0.1:{registry}"), "lib/app", None)
    with pytest.raises(RegistryError, match=r"refusing a redirect from 127\.0\.0\.1:\d+ to a file: URL"):
        client.get_manifest("latest")
