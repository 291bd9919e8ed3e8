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


def test_every_label_filter_must_match_as_compose_expects():
    """compose lists a service's containers with project AND service AND oneoff labels: ORing them made
    docker-compose 1.29 number the second service `_2` and `ps` list every container twice."""
    from pyctr.runtime import ps

    def item(name: str, labels: dict) -> ps.PsItem:
        return ps.PsItem(id=name.ljust(64, "0"), name=name, image="busybox", argv=["sh"], created=1.0,
                         status="running", started=1.0, labels=labels)

    web = item(name="p_web_1", labels={"com.docker.compose.project": "p", "com.docker.compose.service": "web"})
    client = item(name="p_client_1", labels={"com.docker.compose.project": "p", "com.docker.compose.service": "client"})
    both = {"label": ["com.docker.compose.project=p", "com.docker.compose.service=web"]}
    assert [i.name for i in ps.select_items([web, client], show_all=True, filters=both)] == ["p_web_1"]
    assert ps.select_items([web, client], show_all=True, filters={"label": ["com.docker.compose.oneoff"]}) == []
    names = {"name": ["p_web", "p_client"]}  # other keys: any value
    assert len(ps.select_items([web, client], show_all=True, filters=names)) == 2


def test_init_is_not_part_of_the_recorded_command():
    """dockerd puts docker-init only in front of the OCI process; Path/Args (ps, inspect, compose ps) keep the
    user's command."""
    from pyctr.runtime.lifecycle.config_document import shown_command
    from pyctr.runtime.spec import INIT_PATH

    assert shown_command([INIT_PATH, "--", "sh", "-c", "true"], init=True) == ["sh", "-c", "true"]
    assert shown_command([INIT_PATH, "--", "sh"], init=False) == [INIT_PATH, "--", "sh"]
    assert shown_command(["sleep", "1"], init=True) == ["sleep", "1"]


def test_list_command_is_dockerds_unquoted_text():
    """GET /containers/json's Command is dockerd's text (the client quotes it): compose v2 and the docker CLI
    showed it quoted twice."""
    from pyctr.runtime.ps import daemon_command

    assert daemon_command(["sh", "-c", "echo hi > /x", "plain"]) == "sh -c 'echo hi > /x' plain"
    assert daemon_command(["/bin/my prog"]) == "/bin/my prog"
    assert daemon_command([]) == ""
