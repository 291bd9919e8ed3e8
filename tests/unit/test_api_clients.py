"""Pure parts of the Engine API that Compose (1.29 and v2) and testcontainers rely on, and the daemon's log of
failed requests (tests/integration/test_api_compose.py and test_api_testcontainers.py drive the real clients)."""

from __future__ import annotations

from pyctr.api.routes import error_log_line


def test_failed_requests_are_logged_as_dockerd_does():
    line = error_log_line("GET", "/v1.41/containers/x/json", 500, 'boom "quoted"', debug=False)
    assert line == ('level=error msg="Handler for GET /v1.41/containers/x/json returned error: boom \\"quoted\\"" '
                    "status=500")
    assert error_log_line("GET", "/v1.41/images/nope/json", 404, "No such image: nope", debug=False) is None
    debug = error_log_line("GET", "/v1.41/images/nope/json", 404, "No such image: nope", debug=True)
    assert debug is not None and debug.startswith("level=debug ") and debug.endswith("status=404")
